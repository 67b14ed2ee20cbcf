// gen_transactions (see generator.hpp).
#include "generator.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/http/client.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
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
    clock_type::time_point at;
};

std::vector<planned> plan(const options& o) {
    std::mt19937_64 rng(o.seed);
    std::size_t choices = o.wallets.size() + (o.missing_wallet ? 1 : 0);
    std::uniform_int_distribution<std::size_t> pick(0, choices - 1);
    std::uniform_int_distribution<std::int64_t> amount(o.min_amount, o.max_amount);
    unsigned total = o.mix[0] + o.mix[1] + o.mix[2] + o.mix[3];
    std::uniform_int_distribution<unsigned> kind(0, total ? total - 1 : 0);
    static const char* types[] = {"deposit", "withdrawal", "payment", "transfer"};
    std::vector<planned> out;
    out.reserve(o.count);
    for (std::uint64_t i = 0; i < o.count; ++i) {
        planned p;
        auto w = pick(rng);
        unsigned k = kind(rng), t = 0;
        while (t < 3 && k >= o.mix[t]) k -= o.mix[t++];
        p.type = types[t];
        p.amount = amount(rng);
        if (w < o.wallets.size()) {
            p.user = w % o.users.size();
            p.wallet = o.wallets[w];
        } else {
            p.user = 0;
            p.wallet = *o.missing_wallet;
        }
        if (p.type == "transfer") {
            if (o.wallets.size() < 2) {
                p.type = "deposit";
            } else {
                std::size_t to;
                do to = pick(rng) % o.wallets.size();
                while (o.wallets[to] == p.wallet);
                p.to_wallet = o.wallets[to];
            }
        }
        out.push_back(std::move(p));
    }
    return out;
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

std::string status_of(const std::string& body, std::string* reason) {
    try {
        auto doc = json::parse(body);
        if (reason) *reason = json::optional_string(doc, "reason").value_or("");
        return json::optional_string(doc, "status").value_or("");
    } catch (const std::exception&) {
        return "";
    }
}

void publish_poison(const options& o, summary& s) {
    amqp::connection_options co;
    co.ep = amqp::endpoint::parse(o.amqp_url);
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
    auto work = plan(o);
    std::vector<std::string> tokens;
    for (const auto& u : o.users) tokens.push_back(login(o, u));

    std::mutex mu;
    std::vector<accepted_tx> accepted;
    std::atomic<std::uint64_t> next{0}, done{0};
    auto start = clock_type::now();
    bool tty = o.progress && ::isatty(STDERR_FILENO);

    auto poster = [&] {
        for (;;) {
            auto i = next.fetch_add(1);
            if (i >= work.size()) return;
            if (o.rate > 0) {
                auto due = start + std::chrono::microseconds(static_cast<std::int64_t>(1e6 * static_cast<double>(i) / o.rate));
                std::this_thread::sleep_until(due);
            }
            const auto& p = work[i];
            json::writer w;
            w.start_object().kv("wallet_id", p.wallet).kv("type", p.type).kv("amount", p.amount).kv("currency", o.currency);
            if (p.to_wallet) w.kv("to_wallet_id", *p.to_wallet);
            w.kv("description", "gen_transactions #" + std::to_string(i)).end_object();
            http::client_request r;
            r.method = "POST";
            r.url = o.gateway + "/v1/transactions";
            r.body = w.str();
            r.headers = {{"Authorization", "Bearer " + tokens[p.user]}, {"Idempotency-Key", ids::uuid_v4()}};
            auto t0 = clock_type::now();
            try {
                auto res = http::fetch(r);
                auto t1 = clock_type::now();
                std::lock_guard lk(mu);
                if (res.status == 202 || res.status == 200) {
                    auto doc = json::parse(res.body);
                    auto id = json::optional_string(doc, "transaction_id");
                    if (!id) id = json::optional_string(doc, "id");
                    accepted.push_back({id.value_or(""), t1});
                    s.accept_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                } else {
                    ++s.refused_by_status[res.status];
                }
            } catch (const std::exception&) {
                std::lock_guard lk(mu);
                ++s.transport_errors;
            }
            ++done;
        }
    };
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < std::max(1u, o.concurrency); ++t) threads.emplace_back(poster);

    // Progress: a bar on a terminal, plain lines otherwise.
    std::uint64_t last_line = 0;
    while (done.load() < work.size()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!o.progress) continue;
        auto d = done.load();
        if (tty) {
            int width = 30, filled = static_cast<int>(width * d / std::max<std::uint64_t>(1, work.size()));
            std::fprintf(stderr, "\r  posting [%s%s] %llu/%zu", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                         std::string(static_cast<std::size_t>(width - filled), ' ').c_str(),
                         static_cast<unsigned long long>(d), work.size());
        } else if (d >= last_line + std::max<std::uint64_t>(1, work.size() / 10)) {
            std::fprintf(stderr, "gen_transactions: posted %llu/%zu\n", static_cast<unsigned long long>(d), work.size());
            last_line = d;
        }
    }
    for (auto& t : threads) t.join();
    if (o.progress && tty) std::fprintf(stderr, "\r  posting [%s] %zu/%zu\n", std::string(30, '#').c_str(), work.size(), work.size());
    auto posted_at = clock_type::now();
    s.attempted = work.size();
    s.accepted = accepted.size();

    if (o.poison > 0) publish_poison(o, s);

    if (o.wait) {
        std::vector<bool> final_seen(accepted.size(), false);
        std::atomic<std::size_t> remaining{accepted.size()};
        auto deadline = clock_type::now() + std::chrono::seconds(o.wait_timeout_s);
        std::atomic<std::size_t> cursor{0};
        auto poller = [&] {
            while (remaining.load() > 0 && clock_type::now() < deadline) {
                auto i = cursor.fetch_add(1) % std::max<std::size_t>(1, accepted.size());
                if (final_seen[i]) {
                    if (cursor.load() % accepted.size() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    continue;
                }
                http::client_request r;
                r.url = o.gateway + "/v1/transactions/" + accepted[i].id;
                r.headers = {{"Authorization", "Bearer " + tokens[0]}};
                std::string reason, status;
                try {
                    // The transaction belongs to one of the demo users: try them in turn.
                    for (std::size_t u = 0; u < tokens.size(); ++u) {
                        r.headers = {{"Authorization", "Bearer " + tokens[u]}};
                        auto res = http::fetch(r);
                        if (res.status == 200) {
                            status = status_of(res.body, &reason);
                            break;
                        }
                    }
                } catch (const std::exception&) {
                }
                if (status == "completed" || status == "rejected" || status == "failed") {
                    auto now = clock_type::now();
                    std::lock_guard lk(mu);
                    if (final_seen[i]) continue;
                    final_seen[i] = true;
                    --remaining;
                    s.outcome_ms.push_back(std::chrono::duration<double, std::milli>(now - accepted[i].at).count());
                    if (status == "completed") ++s.completed;
                    else if (status == "rejected") ++s.rejected_by_reason[reason.empty() ? "unknown" : reason];
                    else ++s.failed_by_reason[reason.empty() ? "unknown" : reason];
                }
            }
        };
        threads.clear();
        for (unsigned t = 0; t < std::max(1u, o.concurrency); ++t) threads.emplace_back(poller);
        for (auto& t : threads) t.join();
        s.still_queued = remaining.load();
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
    w.kv("completed", static_cast<std::int64_t>(completed));
    w.key("rejected").start_object();
    for (auto& [r, n] : rejected_by_reason) w.kv(r, static_cast<std::int64_t>(n));
    w.end_object();
    w.key("failed").start_object();
    for (auto& [r, n] : failed_by_reason) w.kv(r, static_cast<std::int64_t>(n));
    w.end_object();
    w.kv("not_final", static_cast<std::int64_t>(still_queued));
    w.kv("poison_published", static_cast<std::int64_t>(poison_published));
    w.key("seconds");
    w.w().Double(std::round(seconds * 1000) / 1000);
    w.key("accepted_per_second");
    w.w().Double(std::round(accepted_per_second * 10) / 10);
    w.key("final_per_second");
    w.w().Double(std::round(final_per_second * 10) / 10);
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
    if (transport_errors) line("  transport errors     %llu\n", static_cast<unsigned long long>(transport_errors));
    if (!outcome_ms.empty() || still_queued) {
        line("  completed            %llu\n", static_cast<unsigned long long>(completed));
        for (auto& [r, n] : rejected_by_reason) line("  rejected             %llu (%s)\n", static_cast<unsigned long long>(n), r.c_str());
        for (auto& [r, n] : failed_by_reason) line("  failed               %llu (%s)\n", static_cast<unsigned long long>(n), r.c_str());
        if (still_queued) line("  NOT FINAL            %llu\n", static_cast<unsigned long long>(still_queued));
    }
    if (poison_published) line("  poison published     %llu (see ledger.transactions.error)\n", static_cast<unsigned long long>(poison_published));
    line("  duration             %.2f s\n", seconds);
    line("  accepted/s           %.1f\n", accepted_per_second);
    if (!outcome_ms.empty()) line("  final/s              %.1f\n", final_per_second);
    line("  accept latency ms    p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", percentile(accept_ms, 50),
         percentile(accept_ms, 90), percentile(accept_ms, 99), percentile(accept_ms, 100));
    if (!outcome_ms.empty()) {
        line("  accept->outcome ms   p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", percentile(outcome_ms, 50),
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
                     "  --password P         their password (default txp-demo-password)\n"
                     "  --wallets 101,102    wallets to use (default 101-105)\n"
                     "  --missing-wallet ID  also post to this non-existent wallet (default 999999; 0 = never)\n"
                     "  --currency USD       ISO 4217 currency (default USD)\n"
                     "  --mix D,W,P,T        weights of deposit, withdrawal, payment, transfer (default 30,20,20,30)\n"
                     "  --amount MIN,MAX     amount range in minor units (default 100,50000)\n"
                     "  --concurrency N      parallel requests (default 8)\n"
                     "  --rate R             target transactions per second (default: as fast as possible)\n"
                     "  --seed S             random seed (default 42)\n"
                     "  --wait               wait until every accepted transaction is final\n"
                     "  --wait-timeout S     give up waiting after S seconds (default 120)\n"
                     "  --poison K           also publish K malformed messages to the broker\n"
                     "  --amqp URL           broker for --poison (env TXP_AMQP_URL)\n"
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
        else if (a == "--json") o.json = true;
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
    if (o.users.size() < o.wallets.size()) {
        // One user may own several wallets: user i % users owns wallet i.
    }
    return o;
}

}  // namespace txp::gen
