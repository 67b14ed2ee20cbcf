// gen_transactions when the gateway cannot answer: a lost answer and a 503 are followed by the
// same request with the same Idempotency-Key (accepted once, never lost, never twice), and
// while the gateway is down the client backs off instead of spinning, then resumes.
#include "demo_seed.hpp"
#include "gateway_fixture.hpp"

#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace txp;

namespace {

// A TCP relay in front of the gateway that loses answers as a network or a crashing gateway
// would: for every drop_every-th idempotency key it forwards the request (the gateway accepts
// it) and then closes the client's connection instead of answering, the first `drops` times;
// for every unavailable_every-th key it answers the first try 503 itself.
class lossy_relay {
public:
    lossy_relay(std::uint16_t upstream, int drop_every, int drops, int unavailable_every)
        : upstream_(upstream), drop_every_(drop_every), drops_(drops), unavailable_every_(unavailable_every) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0 ||
            ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            throw std::runtime_error("lossy_relay: cannot listen");
        }
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~lossy_relay() {
        stop_ = true;
        acceptor_.join();
        {
            std::lock_guard lk(mu_);
            for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
        }
        for (auto& t : sessions_) t.join();
        ::close(listen_fd_);
    }

    std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
    int dropped() const { return dropped_; }
    int answered_503() const { return answered_503_; }
    std::set<std::string> dropped_keys() {
        std::lock_guard lk(mu_);
        return dropped_keys_;
    }
    std::set<std::string> keys() {
        std::lock_guard lk(mu_);
        std::set<std::string> out;
        for (auto& [k, _] : index_) out.insert(k);
        return out;
    }

private:
    void accept_loop() {
        while (!stop_) {
            pollfd p{listen_fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int fd = ::accept(listen_fd_, nullptr, nullptr);
            if (fd < 0) continue;
            std::lock_guard lk(mu_);
            open_.insert(fd);
            sessions_.emplace_back([this, fd] { session(fd); });
        }
    }

    // One HTTP/1.1 message with a Content-Length body (or none) from fd; false at EOF.
    static bool read_message(int fd, std::string& buf, std::string& msg) {
        for (;;) {
            auto end = buf.find("\r\n\r\n");
            if (end != std::string::npos) {
                std::string head = buf.substr(0, end + 4), lower = head;
                std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
                std::size_t length = 0;
                if (auto cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
                    length = std::stoul(lower.substr(cl + 17));
                }
                if (buf.size() >= end + 4 + length) {
                    msg = buf.substr(0, end + 4 + length);
                    buf.erase(0, msg.size());
                    return true;
                }
            }
            char chunk[16384];
            auto n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return false;
            buf.append(chunk, static_cast<std::size_t>(n));
        }
    }

    static bool send_all(int fd, const std::string& data) {
        std::size_t off = 0;
        while (off < data.size()) {
            auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<std::size_t>(n);
        }
        return true;
    }

    static std::string header(const std::string& msg, std::string name) {
        std::string lower = msg;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        auto at = lower.find("\r\n" + name + ":");
        if (at == std::string::npos) return "";
        auto from = msg.find_first_not_of(' ', at + 3 + name.size());
        return msg.substr(from, msg.find("\r\n", from) - from);
    }

    void session(int client) {
        int up = -1;
        std::string cbuf, ubuf, req, res;
        while (read_message(client, cbuf, req)) {
            auto key = header(req, "idempotency-key");
            bool unavailable = false, drop = false;
            if (!key.empty()) {
                std::lock_guard lk(mu_);
                auto [it, fresh] = index_.try_emplace(key, static_cast<int>(index_.size()) + 1);
                int i = it->second, tries = ++tries_[key];
                unavailable = i % unavailable_every_ == 0 && tries == 1;
                drop = !unavailable && i % drop_every_ == 0 && forwarded_drops_[key] < drops_;
                if (drop) {
                    ++forwarded_drops_[key];
                    dropped_keys_.insert(key);
                }
            }
            if (unavailable) {
                ++answered_503_;
                if (!send_all(client, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
                                      "Retry-After: 1\r\nContent-Length: 2\r\n\r\n{}")) {
                    break;
                }
                continue;
            }
            if (up < 0) {
                up = ::socket(AF_INET, SOCK_STREAM, 0);
                sockaddr_in a{};
                a.sin_family = AF_INET;
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                a.sin_port = htons(upstream_);
                if (::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
            }
            if (!send_all(up, req) || !read_message(up, ubuf, res)) break;
            if (drop) {
                ++dropped_;
                break;  // the gateway answered; the client never hears it
            }
            if (!send_all(client, res)) break;
        }
        if (up >= 0) ::close(up);
        std::lock_guard lk(mu_);
        open_.erase(client);
        ::close(client);
    }

    std::uint16_t upstream_;
    int drop_every_, drops_, unavailable_every_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> dropped_{0}, answered_503_{0};
    std::mutex mu_;
    std::set<int> open_;
    std::map<std::string, int> index_, tries_, forwarded_drops_;
    std::set<std::string> dropped_keys_;
    std::vector<std::thread> sessions_;
    std::thread acceptor_;
};

// "<id> <key>" lines of --accepted-out.
std::map<std::string, std::string> read_accepted(const std::string& path) {
    std::map<std::string, std::string> out;
    std::ifstream in(path);
    std::string id, key;
    while (in >> id >> key) out[id] = key;
    return out;
}

std::size_t line_count(const std::string& path) {
    std::ifstream in(path);
    return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

// The transactions gen_transactions recorded since `since` (descriptions "gen_transactions #i"):
// id -> idempotency key, and how many descriptions occur more than once (the same planned
// transaction accepted twice).
struct recorded {
    std::map<std::string, std::string> key_of;
    std::int64_t rows = 0;
    std::int64_t duplicated = 0;
};
recorded recorded_since(testing::ledger_fixture& f, const std::string& since) {
    recorded out;
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    for (const auto& row : r.exec_params("SELECT id::text, idempotency_key FROM ledger.transactions "
                                         "WHERE created_at >= $1::timestamptz AND description LIKE 'gen_transactions #%'",
                                         since)) {
        out.key_of[row[0].as<std::string>()] = row[1].as<std::string>();
        ++out.rows;
    }
    out.duplicated = r.exec_params("SELECT count(*) FROM (SELECT description FROM ledger.transactions "
                                   "WHERE created_at >= $1::timestamptz AND description LIKE 'gen_transactions #%' "
                                   "GROUP BY description HAVING count(*) > 1) d",
                                   since)[0][0]
                         .as<std::int64_t>();
    return out;
}

std::string db_now(testing::ledger_fixture& f) {
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec("SELECT now()")[0][0].as<std::string>();
}

}  // namespace

TEST_CASE("gen_transactions: a lost answer or a 503 is followed by the same request and key, accepted once", "[e2e][gen]") {
    testing::ledger_fixture f;
    testing::seed_demo_users(f);
    auto w1 = f.start_worker("gen-lossy");
    auto gw = testing::start_gateway("gen-lossy", {{"TXP_RATE_LIMIT_RPS", "0"}, {"TXP_SELF_DEPOSITS", "true"}});
    // Every 5th key: its answer lost twice (beyond the HTTP client's own one retry of a reused
    // connection); every 7th: answered 503 once.
    lossy_relay relay(gw.port, 5, 2, 7);
    auto since = db_now(f);
    const std::string accepted_path = std::string(TXP_TEST_LOG_DIR) + "/gen-lossy-accepted.txt";

    std::string out;
    auto cmd = std::string(TXP_GEN_TRANSACTIONS_BIN) +
               " 100 --missing-wallet 0 --concurrency 4 --seed 11 --wait --json --no-progress --backoff 5,50" +
               " --accepted-out " + accepted_path + " --gateway " + relay.base() + " 2>" + TXP_TEST_LOG_DIR +
               "/gen-lossy.err";
    REQUIRE(testing::run(cmd, &out) == 0);
    auto s = json::parse(out);
    INFO(out);
    CHECK(relay.dropped_keys().size() == 20);  // keys 5, 10, ..., 100
    CHECK(relay.dropped() == 40);              // each answer lost twice
    CHECK(relay.answered_503() > 0);
    // Every transaction has its answer in the end: none refused, none given up.
    CHECK(s["attempted"].GetInt64() == 100);
    CHECK(s["accepted"].GetInt64() == 100);
    CHECK(s["refused"].MemberCount() == 0);
    CHECK(s["unanswered"].GetInt64() == 0);
    CHECK(s["not_final"].GetInt64() == 0);
    CHECK(s["unavailable"].GetInt64() == relay.answered_503());
    CHECK(s["transport_errors"].GetInt64() >= static_cast<std::int64_t>(relay.dropped_keys().size()));
    CHECK(s["resent"].GetInt64() == s["transport_errors"].GetInt64() + s["unavailable"].GetInt64());

    // What the client saw accepted is exactly what the ledger recorded: each lost answer's
    // transaction once, under the key the client sent, none twice, none missing.
    auto accepted = read_accepted(accepted_path);
    CHECK(line_count(accepted_path) == 100);
    CHECK(accepted.size() == 100);
    auto db = recorded_since(f, since);
    CHECK(db.rows == 100);
    CHECK(db.duplicated == 0);
    CHECK(db.key_of == accepted);
    auto sent_keys = relay.keys();
    std::size_t dropped_and_accepted = 0;
    for (const auto& k : relay.dropped_keys()) dropped_and_accepted += std::count_if(
        accepted.begin(), accepted.end(), [&](const auto& a) { return a.second == k; });
    CHECK(dropped_and_accepted == relay.dropped_keys().size());
    CHECK(sent_keys.size() == 100);  // a resend never made up a new key

    gw.proc->terminate();
    CHECK(w1->terminate() == 0);
}

TEST_CASE("gen_transactions: with the gateway down it backs off instead of spinning, and resumes", "[e2e][gen]") {
    testing::ledger_fixture f;
    testing::seed_demo_users(f);
    auto w1 = f.start_worker("gen-down");
    const std::map<std::string, std::string> gw_env{{"TXP_RATE_LIMIT_RPS", "0"}, {"TXP_SELF_DEPOSITS", "true"}};
    auto gw = testing::start_gateway("gen-down", gw_env);
    auto since = db_now(f);
    const std::string accepted_path = std::string(TXP_TEST_LOG_DIR) + "/gen-down-accepted.txt";
    const unsigned threads = 8;

    std::string out;
    int rc = -1;
    std::thread gen([&] {
        auto cmd = std::string(TXP_GEN_TRANSACTIONS_BIN) + " 0 --duration 10 --rate 100 --missing-wallet 0 --seed 12" +
                   " --concurrency " + std::to_string(threads) + " --wait --json --no-progress --accepted-out " +
                   accepted_path + " --gateway " + gw.base + " 2>" + TXP_TEST_LOG_DIR + "/gen-down.err";
        rc = testing::run(cmd, &out);
    });
    // Once the load is flowing, the gateway crashes (kill -9: answers in flight are lost) and is
    // back on the same port after a moment.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line_count(accepted_path) < 50 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(line_count(accepted_path) >= 50);
    gw.proc->kill_hard();
    auto down_at = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    auto env = gw_env;
    env["TXP_HTTP_PORT"] = std::to_string(gw.port);
    auto gw2 = testing::start_gateway("gen-down-2", env);
    auto up_at = std::chrono::steady_clock::now();
    auto accepted_before_restart = line_count(accepted_path);
    gen.join();
    INFO(out);
    REQUIRE(rc == 0);
    auto s = json::parse(out);

    // Did not spin: each thread's tries while the gateway was down are at most those of the
    // backoff's shortest pauses (half of 10, 20, 40 ... 1000 ms) fitting in the downtime, plus
    // the one in flight and one by the HTTP client's own retry of a reused connection.
    double down_ms = std::chrono::duration<double, std::milli>(up_at - down_at).count();
    std::int64_t per_thread = 2;
    for (double t = 0, base = 10; t <= down_ms; base = std::min(base * 2, 1000.0)) {
        t += base / 2;
        ++per_thread;
    }
    auto transport_errors = s["transport_errors"].GetInt64();
    CHECK(transport_errors > 0);
    CHECK(transport_errors <= per_thread * threads);
    // Resumed: accepted after the gateway was back, and nothing given up or refused.
    CHECK(line_count(accepted_path) > accepted_before_restart);
    CHECK(s["unanswered"].GetInt64() == 0);
    CHECK(s["refused"].MemberCount() == 0);
    CHECK(s["not_final"].GetInt64() == 0);
    CHECK(s["accepted"].GetInt64() == s["attempted"].GetInt64());
    // A request the crashed gateway committed but never answered was sent again with its key
    // and counted once: the ledger holds exactly what the client saw accepted.
    auto accepted = read_accepted(accepted_path);
    CHECK(static_cast<std::int64_t>(accepted.size()) == s["accepted"].GetInt64());
    auto db = recorded_since(f, since);
    CHECK(db.duplicated == 0);
    CHECK(db.key_of == accepted);

    gw2.proc->terminate();
    CHECK(w1->terminate() == 0);
}
