// The gateway's notifier routes with real processes: transactions through the API produce
// one feed entry, one signed webhook delivery and one SSE event each; Last-Event-ID resume
// sends exactly the missed entries; forbidden webhook URLs are refused; users see only their
// own feed, stream and webhooks.
#include "gateway_fixture.hpp"
#include "notifier_fixture.hpp"

#include "txp/amqp/admin.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

using namespace txp;
using namespace txp::testing;

namespace {

// The processes this binary shares: the gateway fixture's ledger-worker, a notifier, and a
// gateway with webhooks configured (the fixture's own gateway runs without them).
struct notify_env {
    gateway_fixture& gw = gateway_fixture::shared();
    notifier_fixture nf;
    std::unique_ptr<child_process> notifier;
    gateway_process gateway;

    notify_env() {
        amqp::admin(nf.amqp_options()).declare(amqp::txp_topology());  // notifier.events bound before any event
        notifier = nf.start_notifier("gw-notify");
        gateway = start_gateway("notify", {{"TXP_WEBHOOK_SECRET_KEY", test_webhook_key},
                                           {"TXP_WEBHOOK_ALLOW", "127.0.0.0/8"},
                                           {"TXP_SSE_HEARTBEAT", "200ms"}});
    }
    static notify_env& get() {
        static notify_env e;
        return e;
    }

    http::client_response call(const std::string& method, const std::string& path, const std::string& body = "",
                               const std::string& token = "", std::vector<http::header> headers = {}) {
        return gw.call(method, path, body, token, std::move(headers), gateway.base);
    }
    api_user user(const std::string& prefix) { return gw.new_user(prefix, gateway.base); }
    // A deposit or withdrawal through the API, waiting for its outcome; returns the status.
    std::string move(const api_user& u, const std::string& kind, std::int64_t amount) {
        auto r = call("POST", "/v1/wallets/me/" + kind, R"({"amount":)" + std::to_string(amount) + "}", u.token,
                      {{"Idempotency-Key", kind + "-" + ids::uuid_v4()}, {"Prefer", "wait=20"}});
        REQUIRE(r.status == 200);
        return json_string(r.body, "status");
    }
};

struct sse_event {
    std::int64_t id = 0;
    std::string type;
    std::string data;
};

// A GET /v1/events client on its own thread, collecting events until destroyed.
class sse_client {
public:
    sse_client(const std::string& url, std::vector<http::header> headers) {
        http::client_request r;
        r.url = url;
        r.headers = std::move(headers);
        r.timeout = std::chrono::seconds(120);
        thread_ = std::thread([this, r] {
            try {
                http::fetch_stream(r, [this](unsigned status, std::string_view chunk) {
                    std::lock_guard lk(mu_);
                    status_ = status;
                    buffer_ += chunk;
                    for (auto end = buffer_.find("\n\n"); end != std::string::npos; end = buffer_.find("\n\n")) {
                        parse(buffer_.substr(0, end));
                        buffer_.erase(0, end + 2);
                    }
                    return !stop_;
                });
            } catch (const std::exception& e) {
                std::lock_guard lk(mu_);
                error_ = e.what();
            }
            done_ = true;
        });
    }
    ~sse_client() {
        stop_ = true;  // noticed at the next chunk: the heartbeat comes every 200 ms
        thread_.join();
    }
    // The response status once the header arrived (the stream is registered by then).
    unsigned status() {
        eventually([&] { return done_ || current_status() != 0; });
        return current_status();
    }
    std::vector<sse_event> events() {
        std::lock_guard lk(mu_);
        return events_;
    }
    bool wait_for(std::size_t n) {
        return eventually([&] { return events().size() >= n; });
    }
    // The server ended the response.
    bool ended() const { return done_.load(); }

private:
    unsigned current_status() {
        std::lock_guard lk(mu_);
        return status_;
    }
    void parse(const std::string& frame) {
        sse_event e;
        bool any = false;
        std::size_t pos = 0;
        while (pos <= frame.size()) {
            auto nl = frame.find('\n', pos);
            auto line = frame.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            if (line.rfind("id: ", 0) == 0) e.id = std::stoll(line.substr(4)), any = true;
            else if (line.rfind("event: ", 0) == 0) e.type = line.substr(7);
            else if (line.rfind("data: ", 0) == 0) e.data += line.substr(6);
            if (nl == std::string::npos) break;
            pos = nl + 1;
        }
        if (any) events_.push_back(std::move(e));  // comments (keep-alive) carry no id
    }

    std::mutex mu_;
    unsigned status_ = 0;
    std::string buffer_;
    std::vector<sse_event> events_;
    std::string error_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> done_{false};
    std::thread thread_;
};

std::unique_ptr<sse_client> open_stream(notify_env& env, const api_user& u, std::vector<http::header> headers = {},
                                        const std::string& query = "") {
    headers.push_back({"Authorization", "Bearer " + u.token});
    return std::make_unique<sse_client>(env.gateway.base + "/v1/events" + query, std::move(headers));
}

struct feed_page {
    std::vector<std::int64_t> seqs;
    std::vector<std::string> types;
    std::vector<std::int64_t> users;
    std::vector<std::string> transaction_ids;
    std::optional<std::string> next_cursor;
};

feed_page feed(notify_env& env, const api_user& u, const std::string& query = "") {
    auto r = env.call("GET", "/v1/notifications" + query, "", u.token);
    REQUIRE(r.status == 200);
    auto doc = json::parse(r.body);
    feed_page p;
    for (const auto& e : doc["notifications"].GetArray()) {
        p.seqs.push_back(e["seq"].GetInt64());
        p.types.push_back(e["type"].GetString());
        p.users.push_back(e["user_id"].GetInt64());
        p.transaction_ids.push_back(e["transaction_id"].IsString() ? e["transaction_id"].GetString() : "");
    }
    if (doc["next_cursor"].IsString()) p.next_cursor = doc["next_cursor"].GetString();
    return p;
}

std::vector<std::int64_t> ids_of(const std::vector<sse_event>& events) {
    std::vector<std::int64_t> out;
    for (const auto& e : events) out.push_back(e.id);
    return out;
}

}  // namespace

TEST_CASE("a completed and a rejected transaction: one feed entry, one signed delivery and one SSE event each",
          "[gateway][notify]") {
    auto& env = notify_env::get();
    auto alice = env.user("nt_alice");
    webhook_receiver receiver;

    auto created = env.call("POST", "/v1/webhooks", R"({"url":")" + receiver.url() + R"(","event_types":["tx.*"]})",
                            alice.token);
    REQUIRE(created.status == 201);
    auto secret = json_string(created.body, "secret");
    auto webhook_id = json_string(created.body, "id");
    CHECK(secret.rfind("whsec_", 0) == 0);

    auto stream = open_stream(env, alice);
    REQUIRE(stream->status() == 200);

    CHECK(env.move(alice, "deposit", 1500) == "completed");
    CHECK(env.move(alice, "withdraw", 999999) == "rejected");

    // The feed, newest first.
    REQUIRE(eventually([&] { return feed(env, alice).seqs.size() >= 2; }));
    auto page = feed(env, alice);
    REQUIRE(page.seqs.size() == 2);
    CHECK(page.types == std::vector<std::string>{"tx.rejected", "tx.completed"});
    CHECK(page.seqs[0] > page.seqs[1]);
    CHECK(page.users == std::vector<std::int64_t>{alice.id, alice.id});

    // One SSE event per entry, in seq order, with the entry as data.
    REQUIRE(stream->wait_for(2));
    auto events = stream->events();
    REQUIRE(events.size() == 2);
    CHECK(ids_of(events) == std::vector<std::int64_t>{page.seqs[1], page.seqs[0]});
    CHECK(events[0].type == "tx.completed");
    CHECK(events[1].type == "tx.rejected");
    auto data = json::parse(events[1].data);
    CHECK(data["seq"].GetInt64() == page.seqs[0]);
    CHECK(std::string(data["transaction_id"].GetString()) == page.transaction_ids[0]);
    CHECK(std::string(data["status"].GetString()) == "rejected");

    // One signed delivery per entry, verified with the secret from the 201.
    REQUIRE(eventually([&] { return receiver.count() >= 2; }));
    auto got = receiver.requests();
    REQUIRE(got.size() == 2);
    std::set<std::string> delivered_types;
    for (const auto& d : got) {
        CHECK(notifier::verify_signature(secret, d.signature, d.body, ids::unix_seconds()));
        CHECK_FALSE(notifier::verify_signature(secret, d.signature, d.body + " ", ids::unix_seconds()));
        auto body = json::parse(d.body);
        delivered_types.insert(body["type"].GetString());
        CHECK(body["user_id"].GetInt64() == alice.id);
    }
    CHECK(delivered_types == std::set<std::string>{"tx.completed", "tx.rejected"});

    // Filters and pagination.
    CHECK(feed(env, alice, "?type=tx.rejected").seqs == std::vector<std::int64_t>{page.seqs[0]});
    CHECK(feed(env, alice, "?type=tx.*").seqs.size() == 2);
    CHECK(feed(env, alice, "?wallet_id=" + std::to_string(alice.wallet_id)).seqs.size() == 2);
    CHECK(feed(env, alice, "?wallet_id=" + std::to_string(alice.wallet_id + 100000)).seqs.empty());
    auto first = feed(env, alice, "?limit=1");
    REQUIRE(first.next_cursor);
    CHECK(first.seqs == std::vector<std::int64_t>{page.seqs[0]});
    auto second = feed(env, alice, "?limit=1&cursor=" + *first.next_cursor);
    CHECK(second.seqs == std::vector<std::int64_t>{page.seqs[1]});
    CHECK_FALSE(second.next_cursor);
    CHECK(is_problem(env.call("GET", "/v1/notifications?limit=101", "", alice.token), 400, "validation-error"));

    // The subscription lists its state and never its secret.
    auto listed = env.call("GET", "/v1/webhooks", "", alice.token);
    REQUIRE(listed.status == 200);
    CHECK(listed.body.find(webhook_id) != std::string::npos);
    CHECK(listed.body.find("failure_count") != std::string::npos);
    CHECK(listed.body.find(secret) == std::string::npos);
    CHECK(listed.body.find("whsec_") == std::string::npos);
    CHECK(env.call("DELETE", "/v1/webhooks/" + webhook_id, "", alice.token).status == 204);
    CHECK(env.call("GET", "/v1/webhooks", "", alice.token).body.find(webhook_id) == std::string::npos);
    CHECK(is_problem(env.call("DELETE", "/v1/webhooks/" + webhook_id, "", alice.token), 404, "not-found"));
}

TEST_CASE("Last-Event-ID resumes with exactly the entries missed, then goes live", "[gateway][notify]") {
    auto& env = notify_env::get();
    auto u = env.user("nt_resume");
    {
        auto stream = open_stream(env, u);
        REQUIRE(stream->status() == 200);
        CHECK(env.move(u, "deposit", 100) == "completed");
        REQUIRE(stream->wait_for(1));
    }
    auto seen = feed(env, u).seqs;
    REQUIRE(seen.size() == 1);
    // Missed while disconnected.
    CHECK(env.move(u, "deposit", 200) == "completed");
    CHECK(env.move(u, "withdraw", 50) == "completed");
    REQUIRE(eventually([&] { return feed(env, u).seqs.size() == 3; }));
    auto all = feed(env, u).seqs;  // newest first

    auto resumed = open_stream(env, u, {{"Last-Event-ID", std::to_string(seen[0])}});
    REQUIRE(resumed->status() == 200);
    REQUIRE(resumed->wait_for(2));
    CHECK(ids_of(resumed->events()) == std::vector<std::int64_t>{all[1], all[0]});

    // The query form (for clients that cannot set the header) replays everything after 0.
    auto from_start = open_stream(env, u, {}, "?last_event_id=0");
    REQUIRE(from_start->status() == 200);
    REQUIRE(from_start->wait_for(3));
    CHECK(ids_of(from_start->events()) == std::vector<std::int64_t>{all[2], all[1], all[0]});

    // Live after the replay, without duplicates.
    CHECK(env.move(u, "deposit", 300) == "completed");
    REQUIRE(resumed->wait_for(3));
    REQUIRE(from_start->wait_for(4));
    auto newest = feed(env, u, "?limit=1").seqs;
    CHECK(ids_of(resumed->events()) == std::vector<std::int64_t>{all[1], all[0], newest[0]});
    CHECK(ids_of(from_start->events()) == std::vector<std::int64_t>{all[2], all[1], all[0], newest[0]});

    CHECK(is_problem(env.call("GET", "/v1/events", "", u.token, {{"Last-Event-ID", "x"}}), 400, "validation-error"));
}

TEST_CASE("users see only their own feed, stream and webhooks", "[gateway][notify]") {
    auto& env = notify_env::get();
    auto alice = env.user("nt_own_a");
    auto bob = env.user("nt_own_b");
    webhook_receiver receiver;
    auto created = env.call("POST", "/v1/webhooks", R"({"url":")" + receiver.url() + R"("})", alice.token);
    REQUIRE(created.status == 201);
    auto alice_hook = json_string(created.body, "id");

    auto alice_stream = open_stream(env, alice);
    // EventSource cannot send headers: the token as ?access_token= works on /v1/events.
    auto bob_stream = std::make_unique<sse_client>(env.gateway.base + "/v1/events?access_token=" + bob.token,
                                                   std::vector<http::header>{});
    REQUIRE(alice_stream->status() == 200);
    REQUIRE(bob_stream->status() == 200);

    CHECK(env.move(alice, "deposit", 700) == "completed");
    REQUIRE(alice_stream->wait_for(1));
    // Announcements are dispatched in order by one thread: once Bob has his own entry, he
    // would have had Alice's before it.
    CHECK(env.move(bob, "deposit", 800) == "completed");
    REQUIRE(bob_stream->wait_for(1));
    auto bob_events = bob_stream->events();
    REQUIRE(bob_events.size() == 1);
    CHECK(json::parse(bob_events[0].data)["user_id"].GetInt64() == bob.id);
    CHECK(alice_stream->events().size() == 1);

    auto bob_feed = feed(env, bob);
    CHECK(bob_feed.users == std::vector<std::int64_t>{bob.id});
    CHECK(feed(env, alice).users == std::vector<std::int64_t>{alice.id});
    // Filtering by someone else's wallet shows nothing.
    CHECK(feed(env, bob, "?wallet_id=" + std::to_string(alice.wallet_id)).seqs.empty());

    // Bob can neither see nor delete Alice's webhook.
    CHECK(env.call("GET", "/v1/webhooks", "", bob.token).body.find(alice_hook) == std::string::npos);
    CHECK(is_problem(env.call("DELETE", "/v1/webhooks/" + alice_hook, "", bob.token), 404, "not-found"));
    CHECK(env.call("GET", "/v1/webhooks", "", alice.token).body.find(alice_hook) != std::string::npos);
    // Only Alice's entry reached Alice's receiver.
    REQUIRE(eventually([&] { return receiver.count() >= 1; }));
    CHECK(json::parse(receiver.requests()[0].body)["user_id"].GetInt64() == alice.id);
    CHECK(env.call("DELETE", "/v1/webhooks/" + alice_hook, "", alice.token).status == 204);

    // No token, or a wrong one, on the stream.
    CHECK(is_problem(env.call("GET", "/v1/events"), 401, "unauthorized"));
    CHECK(is_problem(env.call("GET", "/v1/events?access_token=txp_nope"), 401, "unauthorized"));
}

TEST_CASE("logging out ends the event streams the token opened, and only those", "[gateway][notify][auth]") {
    auto& env = notify_env::get();
    auto carol = env.user("nt_out_c");
    auto dave = env.user("nt_out_d");
    auto carol_stream = open_stream(env, carol);
    auto dave_stream = open_stream(env, dave);
    REQUIRE(carol_stream->status() == 200);
    REQUIRE(dave_stream->status() == 200);
    CHECK(env.move(carol, "deposit", 100) == "completed");
    REQUIRE(carol_stream->wait_for(1));

    REQUIRE(env.call("POST", "/v1/auth/logout", "", carol.token).status == 204);
    // Ended by the server, not by this client (whose own stop would need it to notice).
    CHECK(eventually([&] { return carol_stream->ended(); }));
    CHECK(carol_stream->events().size() == 1);
    // Another user's stream goes on.
    CHECK(env.move(dave, "deposit", 200) == "completed");
    REQUIRE(dave_stream->wait_for(1));
    CHECK_FALSE(dave_stream->ended());
    // Reconnecting with the logged-out token is refused.
    CHECK(is_problem(env.call("GET", "/v1/events", "", carol.token), 401, "unauthorized"));
}

TEST_CASE("webhook URLs the outbound policy forbids are refused and nothing is stored", "[gateway][notify]") {
    auto& env = notify_env::get();
    auto u = env.user("nt_policy");
    for (const std::string url : {"http://169.254.169.254/latest/meta-data", "http://10.0.0.1/hook", "ftp://x/hook",
                                  "http://[::1]:9/hook", "not a url"}) {
        INFO(url);
        auto r = env.call("POST", "/v1/webhooks", R"({"url":")" + url + R"("})", u.token);
        CHECK(is_problem(r, 422, "webhook-url-not-allowed"));
        CHECK(r.body.find("\"field\":\"url\"") != std::string::npos);
    }
    CHECK(is_problem(env.call("POST", "/v1/webhooks", R"({"url":"http://127.0.0.1:9/h","event_types":["TX!"]})", u.token),
                     422, "validation-error"));
    auto listed = env.call("GET", "/v1/webhooks", "", u.token);
    REQUIRE(listed.status == 200);
    CHECK(json::parse(listed.body)["webhooks"].Size() == 0);
    CHECK(env.nf.count("SELECT count(*) FROM notify.webhook_subscriptions WHERE user_id = $1::bigint", std::to_string(u.id)) == 0);
}

TEST_CASE("webhooks answer 503 without TXP_WEBHOOK_SECRET_KEY; a malformed one stops start-up", "[gateway][notify]") {
    auto& env = notify_env::get();
    auto& gw = env.gw;
    auto u = gw.new_user("nt_nokey");  // on the fixture's gateway, which has no key
    CHECK(is_problem(gw.call("POST", "/v1/webhooks", R"({"url":"https://example.com/h"})", u.token), 503,
                     "webhooks-not-configured"));
    CHECK(is_problem(gw.call("GET", "/v1/webhooks", "", u.token), 503, "webhooks-not-configured"));
    CHECK(gw.call("GET", "/v1/notifications", "", u.token).status == 200);

    try {
        start_gateway("badkey", {{"TXP_WEBHOOK_SECRET_KEY", "not-base64"}});
        FAIL("the gateway started with a malformed TXP_WEBHOOK_SECRET_KEY");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("TXP_WEBHOOK_SECRET_KEY") != std::string::npos);
    }
}

TEST_CASE("the console is served at / with a content security policy", "[gateway][notify]") {
    auto& env = notify_env::get();
    auto r = env.call("GET", "/");
    REQUIRE(r.status == 200);
    CHECK(r.header_value("Content-Type").value_or("").find("text/html") == 0);
    CHECK(r.header_value("Content-Security-Policy").value_or("").find("default-src 'none'") != std::string_view::npos);
    CHECK(r.body.find("<html") != std::string::npos);
}

namespace {

// /proc/<pid>/status field in kB (VmRSS, VmHWM).
long proc_kb(int pid, const char* field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field) + 1);
    }
    return -1;
}

// Many raw SSE connections on one epoll loop: counts "id: " lines (one per event) per stream.
class sse_swarm {
public:
    sse_swarm(std::uint16_t port, const std::vector<std::string>& tokens) : ep_(epoll_create1(0)) {
        for (const auto& token : tokens) {
            int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            REQUIRE(fd >= 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
            std::string req = "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                              "Authorization: Bearer " + token + "\r\n\r\n";
            REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u32 = static_cast<std::uint32_t>(streams_.size());
            epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
            streams_.push_back({fd, {}, 0, false});
        }
        thread_ = std::thread([this] { loop(); });
    }
    ~sse_swarm() {
        stop_ = true;
        thread_.join();
        for (auto& s : streams_) ::close(s.fd);
        ::close(ep_);
    }
    std::int64_t events() const { return events_.load(); }
    std::size_t open_ok() const { return ok_.load(); }

private:
    struct stream {
        int fd;
        std::string tail;  // the last bytes of the previous read, for a marker split across reads
        std::int64_t events;
        bool ok;
    };
    void loop() {
        std::vector<epoll_event> evs(256);
        std::vector<char> buf(64 * 1024);
        while (!stop_) {
            int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 100);
            for (int i = 0; i < n; ++i) {
                auto& s = streams_[evs[static_cast<std::size_t>(i)].data.u32];
                auto got = ::recv(s.fd, buf.data(), buf.size(), 0);
                if (got <= 0) {
                    epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
                    continue;
                }
                std::string text = s.tail + std::string(buf.data(), static_cast<std::size_t>(got));
                if (!s.ok && text.find(" 200 ") != std::string::npos) {
                    s.ok = true;
                    ++ok_;
                }
                std::int64_t found = 0;
                for (auto p = text.find("\nid: "); p != std::string::npos; p = text.find("\nid: ", p + 1)) ++found;
                events_ += found;
                s.tail = text.size() > 4 ? text.substr(text.size() - 4) : text;
            }
        }
    }
    int ep_;
    std::vector<stream> streams_;
    std::atomic<std::int64_t> events_{0};
    std::atomic<std::size_t> ok_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

// Not part of the suite: scripts/bench runs it ("[.bench]"). 1,000 SSE clients (200 users,
// 5 streams each) on one gateway while 20,000 events flow through the notifier.
TEST_CASE("bench: 1,000 SSE clients on one gateway while events flow", "[.bench][sse]") {
    auto& env = notify_env::get();
    auto gw = start_gateway("sse-bench", {{"TXP_WEBHOOK_SECRET_KEY", test_webhook_key}, {"TXP_LOG_LEVEL", "warn"}});
    const int users = 200, per_user = 5, events_per_user = 100;
    std::vector<api_user> people;
    for (int i = 0; i < users; ++i) people.push_back(env.user("sse"));
    std::vector<std::string> tokens;
    for (const auto& u : people) {
        for (int k = 0; k < per_user; ++k) tokens.push_back(u.token);
    }
    auto rss_idle = proc_kb(gw.proc->pid(), "VmRSS:");
    sse_swarm swarm(gw.port, tokens);
    REQUIRE(eventually([&] { return swarm.open_ok() == tokens.size(); }, std::chrono::seconds(60)));
    auto rss_connected = proc_kb(gw.proc->pid(), "VmRSS:");

    std::vector<amqp::outgoing> msgs;
    for (int e = 0; e < events_per_user; ++e) {
        for (const auto& u : people) {
            msgs.push_back(env.nf.tx_event({.owner = u.id, .wallet = u.wallet_id, .amount = 1 + e, .balance_after = e}));
        }
    }
    const std::int64_t expected = static_cast<std::int64_t>(msgs.size()) * per_user;
    auto start = std::chrono::steady_clock::now();
    for (std::size_t k = 0; k < msgs.size(); k += 1000) {
        env.nf.publish(std::vector<amqp::outgoing>(msgs.begin() + static_cast<long>(k),
                                                   msgs.begin() + static_cast<long>(std::min(msgs.size(), k + 1000))));
    }
    long rss_peak_seen = 0;
    bool all = eventually([&] {
        rss_peak_seen = std::max(rss_peak_seen, proc_kb(gw.proc->pid(), "VmRSS:"));
        return swarm.events() >= expected;
    }, std::chrono::seconds(180));
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(all);
    CHECK(swarm.events() == expected);  // every event reached each of its user's streams, once
    auto hwm = proc_kb(gw.proc->pid(), "VmHWM:");
    std::printf("SSE bench: %zu streams open; %zu events (%lld stream writes) delivered in %.2f s "
                "(%.0f events/s recorded and streamed, %.0f SSE writes/s)\n"
                "  gateway RSS: %.1f MB idle, %.1f MB with the streams open, %.1f MB peak while events flowed\n",
                tokens.size(), msgs.size(), static_cast<long long>(swarm.events()), secs, msgs.size() / secs,
                swarm.events() / secs, rss_idle / 1024.0, rss_connected / 1024.0, hwm / 1024.0);
}
