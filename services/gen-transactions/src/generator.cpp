// gen_transactions (see generator.hpp).
#include "generator.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/common/backoff.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/http/client.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <limits>
#include <memory>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>
#include <unistd.h>

namespace txp::gen {

namespace {

using clock_type = std::chrono::steady_clock;

struct planned {
    std::size_t user;  // whose token posts it
    std::int64_t wallet;
    std::optional<std::int64_t> to_wallet;
    std::string type;
    std::int64_t amount;
};

struct accepted_tx {
    std::string id;
    std::size_t user;
};

// The wallets transactions go to, each with the index of the user that owns it.
struct owned_wallet {
    std::int64_t id;
    std::size_t user;
};

// Transaction i of the run, the same for a given seed whichever thread draws it.
planned plan_one(const options& o, const std::vector<owned_wallet>& wallets, std::uint64_t i) {
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + i);
    std::size_t choices = wallets.size() + (o.missing_wallet ? 1 : 0);
    std::uniform_int_distribution<std::size_t> pick(0, choices - 1);
    std::uniform_int_distribution<std::int64_t> amount(o.min_amount, o.max_amount);
    unsigned total = o.mix[0] + o.mix[1] + o.mix[2] + o.mix[3];
    std::uniform_int_distribution<unsigned> kind(0, total ? total - 1 : 0);
    static const char* types[] = {"deposit", "withdrawal", "payment", "transfer"};
    planned p;
    auto w = pick(rng);
    unsigned k = kind(rng), t = 0;
    while (t < 3 && k >= o.mix[t]) k -= o.mix[t++];
    p.type = types[t];
    p.amount = amount(rng);
    if (w < wallets.size()) {
        p.user = wallets[w].user;
        p.wallet = wallets[w].id;
    } else {
        p.user = 0;
        p.wallet = *o.missing_wallet;
    }
    if (p.type == "transfer") {
        if (wallets.size() < 2) {
            p.type = "deposit";
        } else {
            std::size_t to;
            do to = pick(rng) % wallets.size();
            while (wallets[to].id == p.wallet);
            p.to_wallet = wallets[to].id;
        }
    }
    return p;
}

// Every wallet a user owns, through the API (paginated).
std::vector<std::int64_t> wallets_of(const options& o, http::connection& conn, const std::string& token) {
    std::vector<std::int64_t> out;
    std::string cursor;
    for (;;) {
        http::client_request r;
        r.url = o.gateway + "/v1/wallets?limit=100" + (cursor.empty() ? "" : "&cursor=" + cursor);
        r.headers = {{"Authorization", "Bearer " + token}};
        auto res = conn.fetch(r);
        if (res.status != 200) throw std::runtime_error("GET /v1/wallets answered HTTP " + std::to_string(res.status));
        auto doc = json::parse(res.body);
        for (const auto& w : doc["wallets"].GetArray()) {
            if (std::string(w["currency"].GetString()) == o.currency && std::string(w["status"].GetString()) == "active") {
                out.push_back(w["id"].GetInt64());
            }
        }
        if (!doc["next_cursor"].IsString()) return out;
        cursor = doc["next_cursor"].GetString();
    }
}

// "2026-11-22T18:01:02.123456Z" as microseconds since the epoch; 0 when malformed.
std::int64_t iso_us(const std::string& t) {
    std::tm tm{};
    int us = 0;
    if (t.size() < 20 || !strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    if (t.size() > 20 && t[19] == '.') {
        std::string frac = t.substr(20, t.find('Z', 20) - 20);
        frac.resize(6, '0');
        us = std::atoi(frac.c_str());
    }
    return static_cast<std::int64_t>(timegm(&tm)) * 1000000 + us;
}

std::string login(const options& o, const std::string& user) {
    http::client_request r;
    r.method = "POST";
    r.url = o.gateway + "/v1/auth/login";
    json::writer w;
    w.start_object().kv("username", user).kv("password", o.password).end_object();
    r.body = w.str();
    auto res = http::fetch(r);
    if (res.status != 200) {
        throw std::runtime_error("login as " + user + " refused (HTTP " + std::to_string(res.status) +
                                 "): run `api-gateway seed-demo`, or pass --user/--password");
    }
    auto doc = json::parse(res.body);
    auto token = json::optional_string(doc, "token");
    if (!token) token = json::optional_string(doc, "access_token");
    if (!token) throw std::runtime_error("login answer has no token");
    return *token;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto idx = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) ;
    if (idx > 0) --idx;
    return v[std::min(idx, v.size() - 1)];
}

void publish_poison(const options& o, summary& s) {
    amqp::connection_options co;
    co.set_endpoints(o.amqp_url);
    co.connection_name = "gen_transactions poison";
    amqp::publisher pub(co, amqp::txp_topology());
    std::vector<amqp::outgoing> msgs;
    static const char* bodies[] = {
        "{\"transaction_id\": \"oops\", \"type\": \"deposit\"",  // truncated JSON
        "{\"transaction_id\":\"00000000-0000-4000-8000-000000000000\",\"type\":\"deposit\",\"wallet_id\":101,"
        "\"amount\":-5,\"currency\":\"USD\",\"sequence\":1,\"accepted_at\":\"now\"}",  // negative amount
        "{\"transaction_id\":\"00000000-0000-4000-8000-000000000001\",\"type\":\"deposit\",\"wallet_id\":101,"
        "\"amount\":1.5,\"currency\":\"USD\",\"sequence\":1,\"accepted_at\":\"now\"}",  // a float
        "{\"hello\":\"world\"}",  // not a transaction at all
    };
    for (std::uint64_t i = 0; i < o.poison; ++i) {
        amqp::outgoing m;
        m.exchange = amqp::commands_exchange;
        m.routing_key = "ledger.transaction";
        m.body = bodies[i % (sizeof bodies / sizeof bodies[0])];
        m.props.message_id = ids::uuid_v4();
        m.props.type = "ledger.transaction.v1";
        m.props.app_id = "gen_transactions-poison";
        m.props.timestamp = ids::unix_seconds();
        msgs.push_back(std::move(m));
    }
    auto results = pub.publish(msgs, std::chrono::seconds(15));
    for (const auto& r : results) s.poison_published += r.status == amqp::publish_status::confirmed;
}

}  // namespace

summary run(const options& o) {
    summary s;
    std::vector<std::string> tokens;
    for (const auto& u : o.users) tokens.push_back(login(o, u));
    std::vector<owned_wallet> wallets;
    if (o.all_wallets) {
        http::connection conn(o.gateway);
        for (std::size_t u = 0; u < tokens.size(); ++u) {
            for (auto id : wallets_of(o, conn, tokens[u])) wallets.push_back({id, u});
        }
        if (wallets.empty()) throw std::runtime_error("the users own no active " + o.currency + " wallet");
    } else {
        // User i % users owns wallet i (the demo users own wallets 101-105).
        for (std::size_t i = 0; i < o.wallets.size(); ++i) wallets.push_back({o.wallets[i], i % o.users.size()});
    }
    s.wallets_used = wallets.size();
    const std::uint64_t cap = o.duration_s > 0 && o.count == 0 ? std::numeric_limits<std::uint64_t>::max() : o.count;

    std::mutex mu;
    std::vector<accepted_tx> accepted;
    std::atomic<std::uint64_t> next{0}, done{0};
    std::atomic<bool> time_up{false};
    auto start = clock_type::now();
    const auto end_at = start + std::chrono::seconds(o.duration_s);
    bool tty = o.progress && ::isatty(STDERR_FILENO);

    std::unique_ptr<std::FILE, int (*)(std::FILE*)> accepted_file(nullptr, &std::fclose);
    if (!o.accepted_out.empty()) {
        accepted_file.reset(std::fopen(o.accepted_out.c_str(), "w"));
        if (!accepted_file) throw std::runtime_error("cannot write " + o.accepted_out);
    }
    std::FILE* const accepted_out = accepted_file.get();

    // One transaction: sent until it has an answer other than 503, always the same request with
    // the same Idempotency-Key, so that a request whose answer was lost (the gateway killed
    // after its commit, a connection cut) is neither lost nor accepted twice: the gateway
    // answers the retry with the original outcome. Between tries the thread pauses (backoff):
    // with the gateway down a try fails at once, and without a pause the threads would spin.
    auto post_one = [&](http::connection& conn, backoff& pause, const http::client_request& r, std::size_t user,
                        const std::string& key) {
        const auto first_sent = clock_type::now();
        const auto give_up_at = first_sent + std::chrono::seconds(o.retry_for_s);
        for (bool first = true;; first = false) {
            std::optional<http::client_response> res;
            try {
                res = conn.fetch(r);
            } catch (const std::exception&) {
            }
            const auto t1 = clock_type::now();
            const bool answered = res && res->status != 503;
            const bool give_up = !answered && t1 >= give_up_at;
            {
                std::lock_guard lk(mu);
                if (!first) ++s.resent;
                if (!answered) ++(res ? s.unavailable : s.transport_errors);
                if (answered || give_up) ++s.attempted;
                if (give_up) ++(res ? s.refused_by_status[res->status] : s.unanswered);
                if (answered && (res->status == 202 || res->status == 200)) {
                    auto doc = json::parse(res->body);
                    auto id = json::optional_string(doc, "transaction_id");
                    if (!id) id = json::optional_string(doc, "id");
                    accepted.push_back({id.value_or(""), user});
                    s.accept_ms.push_back(std::chrono::duration<double, std::milli>(t1 - first_sent).count());
                    if (accepted_out != nullptr) {
                        std::fprintf(accepted_out, "%s %s\n", id.value_or("").c_str(), key.c_str());
                        std::fflush(accepted_out);
                    }
                } else if (answered) {
                    ++s.refused_by_status[res->status];
                }
            }
            if (answered) {
                pause.reset();
                return;
            }
            if (give_up) return;
            std::this_thread::sleep_for(pause.next_delay());
        }
    };

    auto poster = [&] {
        http::connection conn(o.gateway);
        backoff pause(std::chrono::milliseconds(o.backoff_initial_ms), std::chrono::milliseconds(o.backoff_max_ms));
        for (;;) {
            if (o.duration_s > 0 && clock_type::now() >= end_at) {
                time_up = true;
                return;
            }
            auto i = next.fetch_add(1);
            if (i >= cap) return;
            if (o.rate > 0) {
                auto due = start + std::chrono::microseconds(static_cast<std::int64_t>(1e6 * static_cast<double>(i) / o.rate));
                std::this_thread::sleep_until(due);
            }
            const auto p = plan_one(o, wallets, i);
            json::writer w;
            w.start_object().kv("wallet_id", p.wallet).kv("type", p.type).kv("amount", p.amount).kv("currency", o.currency);
            if (p.to_wallet) w.kv("to_wallet_id", *p.to_wallet);
            w.kv("description", "gen_transactions #" + std::to_string(i)).end_object();
            const auto key = ids::uuid_v4();
            http::client_request r;
            r.method = "POST";
            r.url = o.gateway + "/v1/transactions";
            r.body = w.str();
            r.headers = {{"Authorization", "Bearer " + tokens[p.user]}, {"Idempotency-Key", key}};
            post_one(conn, pause, r, p.user, key);
            ++done;
        }
    };
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < std::max(1u, o.concurrency); ++t) threads.emplace_back(poster);

    // Progress: a bar on a terminal, plain lines otherwise.
    auto finished_posting = [&] { return o.duration_s > 0 ? (time_up.load() || done.load() >= cap) : done.load() >= cap; };
    std::uint64_t last_line = 0;
    auto last_tick = start;
    while (!finished_posting()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!o.progress) continue;
        auto d = done.load();
        auto now = clock_type::now();
        if (o.duration_s > 0) {
            auto elapsed = std::chrono::duration<double>(now - start).count();
            if (tty) {
                int width = 30, filled = std::min(width, static_cast<int>(width * elapsed / o.duration_s));
                std::fprintf(stderr, "\r  posting [%s%s] %llu in %.0f s", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                             std::string(static_cast<std::size_t>(width - filled), ' ').c_str(),
                             static_cast<unsigned long long>(d), elapsed);
            } else if (now - last_tick >= std::chrono::seconds(10)) {
                std::fprintf(stderr, "gen_transactions: posted %llu in %.0f s\n", static_cast<unsigned long long>(d), elapsed);
                last_tick = now;
            }
        } else if (tty) {
            int width = 30, filled = static_cast<int>(width * d / std::max<std::uint64_t>(1, cap));
            std::fprintf(stderr, "\r  posting [%s%s] %llu/%llu", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                         std::string(static_cast<std::size_t>(width - filled), ' ').c_str(),
                         static_cast<unsigned long long>(d), static_cast<unsigned long long>(cap));
        } else if (d >= last_line + std::max<std::uint64_t>(1, cap / 10)) {
            std::fprintf(stderr, "gen_transactions: posted %llu/%llu\n", static_cast<unsigned long long>(d),
                         static_cast<unsigned long long>(cap));
            last_line = d;
        }
    }
    for (auto& t : threads) t.join();
    if (o.progress && tty) {
        std::fprintf(stderr, "\r  posting [%s] %llu posted%20s\n", std::string(30, '#').c_str(),
                     static_cast<unsigned long long>(done.load()), "");
    }
    auto posted_at = clock_type::now();
    s.accepted = accepted.size();
    accepted_file.reset();

    if (o.poison > 0) publish_poison(o, s);

    if (o.wait) {
        // Outcomes are read back with GET /v1/transactions/{id}. Reading them while the workers
        // still apply would take the CPU they need on a small machine (a GET costs the
        // database about as much as applying a transaction), and so distort what is measured:
        // first only the newest accepted transaction is watched, every 100 ms, and when it is
        // final (workers apply roughly in acceptance order) a few threads read them all, oldest
        // first. One still queued goes to the back of the line and its thread pauses.
        // Latencies come from the server's created_at and finished_at, not from this polling.
        constexpr auto repoll_after = std::chrono::milliseconds(100);
        struct tx_state {
            std::string status, reason, created_at, finished_at;
            bool final() const { return status == "completed" || status == "rejected" || status == "failed"; }
        };
        auto read_state = [&](http::connection& conn, const accepted_tx& tx) {
            tx_state st;
            http::client_request r;
            r.url = o.gateway + "/v1/transactions/" + tx.id;
            r.headers = {{"Authorization", "Bearer " + tokens[tx.user]}};
            try {
                auto res = conn.fetch(r);
                if (res.status == 200) {
                    auto doc = json::parse(res.body);
                    st.status = json::optional_string(doc, "status").value_or("");
                    st.reason = json::optional_string(doc, "reason").value_or("");
                    st.created_at = json::optional_string(doc, "created_at").value_or("");
                    st.finished_at = json::optional_string(doc, "finished_at").value_or("");
                }
            } catch (const std::exception&) {
            }
            return st;
        };
        auto deadline = clock_type::now() + std::chrono::seconds(o.wait_timeout_s);
        if (!accepted.empty()) {
            http::connection conn(o.gateway);
            while (!read_state(conn, accepted.back()).final() && clock_type::now() < deadline) {
                std::this_thread::sleep_for(repoll_after);
            }
        }
        struct due_poll {
            std::size_t index;
            clock_type::time_point due;
        };
        std::deque<due_poll> line;
        for (std::size_t i = 0; i < accepted.size(); ++i) line.push_back({i, clock_type::time_point{}});
        std::size_t remaining = accepted.size();
        std::int64_t first_created = std::numeric_limits<std::int64_t>::max(), last_finished = 0;
        auto poller = [&] {
            http::connection conn(o.gateway);
            for (;;) {
                due_poll next;
                {
                    std::lock_guard lk(mu);
                    if (line.empty()) return;
                    next = line.front();
                    line.pop_front();
                    // Every transaction is read once, even past the deadline (the newest may be
                    // the only one not final); reading one again stops at the deadline.
                    if (next.due != clock_type::time_point{} && clock_type::now() >= deadline) continue;
                }
                if (next.due > clock_type::now()) std::this_thread::sleep_until(std::min(next.due, deadline));
                auto st = read_state(conn, accepted[next.index]);
                std::unique_lock lk(mu);
                if (!st.final()) {
                    line.push_back({next.index, clock_type::now() + repoll_after});
                    lk.unlock();
                    std::this_thread::sleep_for(repoll_after);
                    continue;
                }
                --remaining;
                auto c = iso_us(st.created_at), f = iso_us(st.finished_at);
                if (c > 0 && f >= c) {
                    s.outcome_ms.push_back(static_cast<double>(f - c) / 1000.0);
                    first_created = std::min(first_created, c);
                    last_finished = std::max(last_finished, f);
                }
                if (st.status == "completed") ++s.completed;
                else if (st.status == "rejected") ++s.rejected_by_reason[st.reason.empty() ? "unknown" : st.reason];
                else ++s.failed_by_reason[st.reason.empty() ? "unknown" : st.reason];
            }
        };
        threads.clear();
        for (unsigned t = 0; t < std::clamp(o.concurrency, 1u, 8u); ++t) threads.emplace_back(poller);
        for (auto& t : threads) t.join();
        s.still_queued = remaining;
        if (last_finished > first_created) {
            s.server_final_per_second = static_cast<double>(s.outcome_ms.size()) / (static_cast<double>(last_finished - first_created) / 1e6);
        }
    }
    auto end = clock_type::now();
    s.seconds = std::chrono::duration<double>(end - start).count();
    double post_seconds = std::chrono::duration<double>(posted_at - start).count();
    s.accepted_per_second = post_seconds > 0 ? static_cast<double>(s.accepted) / post_seconds : 0;
    std::uint64_t finals = s.completed;
    for (auto& [_, n] : s.rejected_by_reason) finals += n;
    for (auto& [_, n] : s.failed_by_reason) finals += n;
    s.final_per_second = s.seconds > 0 ? static_cast<double>(finals) / s.seconds : 0;
    for (const auto& a : accepted) s.accepted_ids.push_back(a.id);
    return s;
}

std::string summary::to_json() const {
    json::writer w;
    auto pct = [&](const char* key, const std::vector<double>& v) {
        w.key(key).start_object();
        for (auto [name, p] : {std::pair{"p50", 50.0}, {"p90", 90.0}, {"p99", 99.0}, {"max", 100.0}}) {
            w.key(name);
            w.w().Double(std::round(percentile(v, p) * 100) / 100);
        }
        w.end_object();
    };
    w.start_object();
    w.kv("attempted", static_cast<std::int64_t>(attempted)).kv("accepted", static_cast<std::int64_t>(accepted));
    w.key("refused").start_object();
    for (auto& [st, n] : refused_by_status) w.kv(std::to_string(st), static_cast<std::int64_t>(n));
    w.end_object();
    w.kv("transport_errors", static_cast<std::int64_t>(transport_errors));
    w.kv("unavailable", static_cast<std::int64_t>(unavailable));
    w.kv("resent", static_cast<std::int64_t>(resent));
    w.kv("unanswered", static_cast<std::int64_t>(unanswered));
    w.kv("completed", static_cast<std::int64_t>(completed));
    w.key("rejected").start_object();
    for (auto& [r, n] : rejected_by_reason) w.kv(r, static_cast<std::int64_t>(n));
    w.end_object();
    w.key("failed").start_object();
    for (auto& [r, n] : failed_by_reason) w.kv(r, static_cast<std::int64_t>(n));
    w.end_object();
    w.kv("not_final", static_cast<std::int64_t>(still_queued));
    w.kv("poison_published", static_cast<std::int64_t>(poison_published));
    w.kv("wallets", static_cast<std::int64_t>(wallets_used));
    w.key("seconds");
    w.w().Double(std::round(seconds * 1000) / 1000);
    w.key("accepted_per_second");
    w.w().Double(std::round(accepted_per_second * 10) / 10);
    w.key("final_per_second");
    w.w().Double(std::round(final_per_second * 10) / 10);
    w.key("server_final_per_second");
    w.w().Double(std::round(server_final_per_second * 10) / 10);
    pct("accept_latency_ms", accept_ms);
    pct("outcome_latency_ms", outcome_ms);
    w.end_object();
    return w.str();
}

std::string summary::to_text() const {
    char buf[256];
    std::string out = "\n=== gen_transactions summary ===\n";
    auto line = [&](const char* fmt, auto... args) {
        std::snprintf(buf, sizeof buf, fmt, args...);
        out += buf;
    };
    line("  attempted            %llu\n", static_cast<unsigned long long>(attempted));
    line("  accepted (202)       %llu\n", static_cast<unsigned long long>(accepted));
    for (auto& [st, n] : refused_by_status) line("  refused by gateway   %llu (HTTP %u)\n", static_cast<unsigned long long>(n), st);
    if (transport_errors) line("  transport errors     %llu (no answer; sent again)\n", static_cast<unsigned long long>(transport_errors));
    if (unavailable) line("  unavailable (503)    %llu (sent again)\n", static_cast<unsigned long long>(unavailable));
    if (resent) line("  resent               %llu (same request, same Idempotency-Key)\n", static_cast<unsigned long long>(resent));
    if (unanswered) line("  UNANSWERED           %llu (given up without an answer: outcome unknown)\n", static_cast<unsigned long long>(unanswered));
    if (!outcome_ms.empty() || still_queued) {
        line("  completed            %llu\n", static_cast<unsigned long long>(completed));
        for (auto& [r, n] : rejected_by_reason) line("  rejected             %llu (%s)\n", static_cast<unsigned long long>(n), r.c_str());
        for (auto& [r, n] : failed_by_reason) line("  failed               %llu (%s)\n", static_cast<unsigned long long>(n), r.c_str());
        if (still_queued) line("  NOT FINAL            %llu\n", static_cast<unsigned long long>(still_queued));
    }
    if (poison_published) line("  poison published     %llu (see ledger.transactions.error)\n", static_cast<unsigned long long>(poison_published));
    line("  wallets              %zu\n", wallets_used);
    line("  duration             %.2f s\n", seconds);
    line("  accepted/s           %.1f\n", accepted_per_second);
    if (!outcome_ms.empty()) {
        line("  final/s              %.1f over the whole run; %.1f by the system's clock (first accepted to last finished)\n",
             final_per_second, server_final_per_second);
    }
    line("  accept latency ms    p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", percentile(accept_ms, 50),
         percentile(accept_ms, 90), percentile(accept_ms, 99), percentile(accept_ms, 100));
    if (!outcome_ms.empty()) {
        line("  accept->outcome ms   p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (created_at to finished_at)\n", percentile(outcome_ms, 50),
             percentile(outcome_ms, 90), percentile(outcome_ms, 99), percentile(outcome_ms, 100));
    }
    return out;
}

options parse_args(int argc, char** argv) {
    options o;
    if (const char* g = std::getenv("TXP_GATEWAY_URL")) o.gateway = g;
    if (const char* a = std::getenv("TXP_AMQP_URL")) o.amqp_url = a;
    auto usage = [&](int code) {
        std::fprintf(code ? stderr : stdout,
                     "usage: gen_transactions N [options]\n"
                     "  --gateway URL        gateway base URL (default http://127.0.0.1:8000, env TXP_GATEWAY_URL)\n"
                     "  --users a,b,c        users that own --wallets, in order (default demo1..demo5)\n"
                     "  --users-numbered P,N users P1..PN (instead of --users)\n"
                     "  --password P         their password (default txp-demo-password)\n"
                     "  --wallets 101,102    wallets to use (default 101-105)\n"
                     "  --all-wallets        every active wallet the users own (GET /v1/wallets), not --wallets\n"
                     "  --missing-wallet ID  also post to this non-existent wallet (default 999999; 0 = never)\n"
                     "  --currency USD       ISO 4217 currency (default USD)\n"
                     "  --mix D,W,P,T        weights of deposit, withdrawal, payment, transfer (default 30,20,20,30)\n"
                     "  --amount MIN,MAX     amount range in minor units (default 100,50000)\n"
                     "  --concurrency N      parallel requests (default 8)\n"
                     "  --duration S         post for S seconds (N, when not 0, still caps the count)\n"
                     "  --rate R             target transactions per second (default: as fast as possible)\n"
                     "  --seed S             random seed (default 42)\n"
                     "  --wait               wait until every accepted transaction is final\n"
                     "  --wait-timeout S     give up waiting after S seconds (default 120)\n"
                     "  --poison K           also publish K malformed messages to the broker\n"
                     "  --amqp URL           broker for --poison (env TXP_AMQP_URL)\n"
                     "  --accepted-out FILE  write \"<transaction id> <idempotency key>\" of every accepted transaction, one a line\n"
                     "  --retry-for S        resend a request without an answer (or answered 503) for up to S s (default 120)\n"
                     "  --backoff MIN,MAX    pause between resends, ms: from MIN doubling to MAX, jittered (default 10,1000)\n"
                     "  --json               print the summary as JSON on stdout\n"
                     "  --no-progress        no progress output\n"
                     "Exits 1 if an accepted transaction did not reach a final state (with --wait).\n");
        std::exit(code);
    };
    auto split = [](const std::string& s) {
        std::vector<std::string> out;
        std::size_t pos = 0;
        while (pos <= s.size()) {
            auto c = s.find(',', pos);
            out.push_back(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
            if (c == std::string::npos) break;
            pos = c + 1;
        }
        return out;
    };
    auto num = [&](const std::string& s) -> std::int64_t {
        char* end = nullptr;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0') {
            std::fprintf(stderr, "gen_transactions: not a number: %s\n", s.c_str());
            usage(2);
        }
        return v;
    };
    bool have_count = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "gen_transactions: %s needs a value\n", a.c_str());
                usage(2);
            }
            return argv[++i];
        };
        if (a == "-h" || a == "--help") usage(0);
        else if (a == "--gateway") o.gateway = val();
        else if (a == "--users") o.users = split(val());
        else if (a == "--users-numbered") {
            auto parts = split(val());
            if (parts.size() != 2 || parts[0].empty()) usage(2);
            auto n = num(parts[1]);
            if (n < 1 || n > 100000) usage(2);
            o.users.clear();
            for (std::int64_t k = 1; k <= n; ++k) o.users.push_back(parts[0] + std::to_string(k));
        } else if (a == "--all-wallets") o.all_wallets = true;
        else if (a == "--duration") o.duration_s = static_cast<std::uint32_t>(num(val()));
        else if (a == "--password") o.password = val();
        else if (a == "--wallets") {
            o.wallets.clear();
            for (auto& w : split(val())) o.wallets.push_back(num(w));
        } else if (a == "--missing-wallet") {
            auto v = num(val());
            o.missing_wallet = v ? std::optional<std::int64_t>(v) : std::nullopt;
        } else if (a == "--currency") o.currency = val();
        else if (a == "--mix") {
            auto parts = split(val());
            if (parts.size() != 4) usage(2);
            for (int k = 0; k < 4; ++k) o.mix[k] = static_cast<unsigned>(num(parts[static_cast<std::size_t>(k)]));
        } else if (a == "--amount") {
            auto parts = split(val());
            if (parts.size() != 2) usage(2);
            o.min_amount = num(parts[0]);
            o.max_amount = num(parts[1]);
            if (o.min_amount < 1 || o.max_amount < o.min_amount) usage(2);
        } else if (a == "--concurrency") o.concurrency = static_cast<unsigned>(std::max<std::int64_t>(1, num(val())));
        else if (a == "--rate") o.rate = static_cast<double>(num(val()));
        else if (a == "--seed") o.seed = static_cast<std::uint64_t>(num(val()));
        else if (a == "--wait") o.wait = true;
        else if (a == "--wait-timeout") o.wait_timeout_s = static_cast<std::uint32_t>(num(val()));
        else if (a == "--poison") o.poison = static_cast<std::uint64_t>(num(val()));
        else if (a == "--amqp") o.amqp_url = val();
        else if (a == "--accepted-out") o.accepted_out = val();
        else if (a == "--retry-for") o.retry_for_s = static_cast<std::uint32_t>(std::max<std::int64_t>(0, num(val())));
        else if (a == "--backoff") {
            auto parts = split(val());
            if (parts.size() != 2) usage(2);
            auto lo = num(parts[0]), hi = num(parts[1]);
            if (lo < 1 || hi < lo) usage(2);
            o.backoff_initial_ms = static_cast<std::uint32_t>(lo);
            o.backoff_max_ms = static_cast<std::uint32_t>(hi);
        } else if (a == "--json") o.json = true;
        else if (a == "--no-progress") o.progress = false;
        else if (!a.empty() && a[0] != '-' && !have_count) {
            o.count = static_cast<std::uint64_t>(num(a));
            have_count = true;
        } else {
            std::fprintf(stderr, "gen_transactions: unknown argument %s\n", a.c_str());
            usage(2);
        }
    }
    if (o.users.empty() || o.wallets.empty()) usage(2);
    return o;
}

}  // namespace txp::gen
