// The transactional outbox: a gateway killed with SIGKILL after answering 202 but before
// its relay could publish loses nothing; the restarted relay publishes, the ledger applies
// once. Also: Prefer: wait answers "queued" at its deadline, and several relays share the
// outbox without publishing a row twice.
#include "gateway_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <mutex>
#include <thread>

using namespace txp;
using testing::gateway_fixture;
using testing::json_string;

namespace {

std::string unreachable_broker() {
    // A closed port: the relay can connect to nothing, so accepted rows stay pending.
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(testing::free_port()) + "/" + testing::vhost();
}

std::int64_t pending_for(gateway_fixture& f, const std::string& tx_id) {
    auto l = f.ledger().gateway_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT count(*) FROM gateway.outbox WHERE sent_at IS NULL AND body LIKE $1", "%" + tx_id + "%")[0][0]
        .as<std::int64_t>();
}

// txp_outbox_published_total of the gateway's outbox from a gateway's /metrics.
std::int64_t published_total(gateway_fixture& f, const std::string& base) {
    auto body = f.call("GET", "/metrics", "", "", {}, base).body;
    const std::string name = "txp_outbox_published_total{table=\"gateway.outbox\"} ";
    auto pos = body.find("\n" + name);
    if (pos == std::string::npos) return 0;
    return std::stoll(body.substr(pos + 1 + name.size()));
}

}  // namespace

TEST_CASE("a gateway killed before publishing loses nothing: the restarted relay publishes, applied once",
          "[gateway][outbox][kill]") {
    auto& f = gateway_fixture::shared();
    auto u = f.new_user("outbox");
    f.fund(u, 5000);
    // This gateway must be the only relay while the broker is out of its reach.
    f.stop_gateway();

    auto g = testing::start_gateway("no-broker", {{"TXP_AMQP_URL", unreachable_broker()}});
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        auto r = f.call("POST", "/v1/wallets/me/withdraw", R"({"amount":100})", u.token, {{"Idempotency-Key", "ob-" + std::to_string(i)}},
                        g.base);
        REQUIRE(r.status == 202);
        ids.push_back(json_string(r.body, "transaction_id"));
    }
    // Prefer: wait with no outcome in time: 202 queued at the deadline.
    auto waited = f.call("POST", "/v1/wallets/me/deposit", R"({"amount":7})", u.token,
                         {{"Idempotency-Key", "ob-wait"}, {"Prefer", "wait=1"}}, g.base);
    REQUIRE(waited.status == 202);
    CHECK(json_string(waited.body, "status") == "queued");
    CHECK(waited.header_value("Preference-Applied").value_or("") == "wait=1");
    ids.push_back(json_string(waited.body, "transaction_id"));

    g.proc->kill_hard();
    for (const auto& id : ids) {
        INFO(id);
        CHECK(f.ledger().status(id) == "queued");
        CHECK(pending_for(f, id) == 1);
    }

    // Restarted with a reachable broker: the relay publishes what was committed.
    auto back = testing::start_gateway("restarted");
    REQUIRE(f.ledger().wait_final(ids, std::chrono::seconds(30)) == 0);
    for (const auto& id : ids) {
        INFO(id);
        CHECK(f.ledger().status(id) == "completed");
        CHECK(f.ledger().entry_count(id) == 2);  // applied exactly once
        CHECK(pending_for(f, id) == 0);
    }
    auto w = f.call("GET", "/v1/wallets/" + std::to_string(u.wallet_id), "", u.token, {}, back.base);
    CHECK(testing::json_int(w.body, "balance") == 5000 - 5 * 100 + 7);
    CHECK(back.proc->terminate() == 0);
    CHECK(f.ledger().reconcile().empty());
}

TEST_CASE("several gateways relay one outbox side by side, each row once", "[gateway][outbox][replicas]") {
    auto& f = gateway_fixture::shared();
    auto shared_before = published_total(f, f.base());
    auto second = testing::start_gateway("replica-2");
    auto u = f.new_user("replicas");
    std::vector<std::string> ids;
    std::vector<std::thread> threads;
    std::mutex mu;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 25; ++i) {
                auto base = (i % 2 == 0) ? f.base() : second.base;
                auto r = f.call("POST", "/v1/wallets/me/deposit", R"({"amount":1})", u.token,
                                {{"Idempotency-Key", "rep-" + std::to_string(t) + "-" + std::to_string(i)}}, base);
                if (r.status == 202) {
                    std::lock_guard lock(mu);
                    ids.push_back(json_string(r.body, "transaction_id"));
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    REQUIRE(ids.size() == 100);
    REQUIRE(f.ledger().wait_final(ids, std::chrono::seconds(30)) == 0);
    // Between them the two relays published each row exactly once.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::int64_t published = 0;
    while (std::chrono::steady_clock::now() < until) {
        published = published_total(f, f.base()) - shared_before + published_total(f, second.base);
        if (published >= 100) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(published == 100);
    CHECK(f.outbox_pending() == 0);
    auto w = f.call("GET", "/v1/wallets/" + std::to_string(u.wallet_id), "", u.token);
    CHECK(testing::json_int(w.body, "balance") == 100);
    CHECK(second.proc->terminate() == 0);
}

TEST_CASE("SIGTERM answers a waiting request, exits 0, and leaves unpublished rows for the next relay",
          "[gateway][outbox][shutdown]") {
    auto& f = gateway_fixture::shared();
    auto u = f.new_user("graceful");
    f.stop_gateway();
    auto g = testing::start_gateway("graceful", {{"TXP_AMQP_URL", unreachable_broker()}});
    auto pending_before = f.outbox_pending();
    http::client_response waited;
    std::thread client([&] {
        waited = f.call("POST", "/v1/wallets/me/deposit", R"({"amount":9})", u.token,
                        {{"Idempotency-Key", "graceful-1"}, {"Prefer", "wait=30"}}, g.base);
    });
    // The request is committed (its outbox row exists) and now waits for an outcome.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.outbox_pending() == pending_before && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(f.outbox_pending() == pending_before + 1);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(g.proc->terminate() == 0);
    client.join();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));  // not held for the full wait
    REQUIRE(waited.status == 202);
    CHECK(json_string(waited.body, "status") == "queued");
    auto id = json_string(waited.body, "transaction_id");
    CHECK(f.ledger().status(id) == "queued");
    f.base();  // the shared gateway again: its relay publishes the row
    REQUIRE(f.ledger().wait_final({id}, std::chrono::seconds(30)) == 0);
    CHECK(f.ledger().status(id) == "completed");
}
