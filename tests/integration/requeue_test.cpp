// scripts/requeue with the real ledger-worker: an accepted transaction parked in
// ledger.transactions.error (as a worker parks it after the retry tiers) is moved back by the
// operator's tool and applied exactly once; a parked message with another reason stays.
#include "ledger_fixture.hpp"

#include "txp/amqp/failure_routing.hpp"
#include "txp/common/ids.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <thread>

using namespace txp;

namespace {

bool wait_depth(amqp::admin& a, const std::string& q, std::uint32_t n, std::chrono::seconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (a.queue_depth(q) == n) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return a.queue_depth(q) == n;
}

// The message as route_failure parks it: txp.error, routing key the main queue, failure headers.
amqp::outgoing parked(amqp::outgoing o, const std::string& reason) {
    o.exchange = amqp::error_exchange;
    o.routing_key = "ledger.transactions";
    o.props.headers[amqp::header_error_reason] = reason;
    o.props.headers[amqp::header_error_detail] = "made up for the requeue test";
    o.props.headers[amqp::header_failed_service] = std::string("ledger-worker");
    o.props.headers[amqp::header_origin_queue] = std::string("ledger.transactions");
    o.props.headers[amqp::header_attempts] = std::int64_t{4};
    o.props.headers[amqp::header_first_failed_at] = std::string("2026-01-01T00:00:00.000Z");
    return o;
}

std::string requeue(const std::string& args) {
    std::string out;
    int rc = testing::run(std::string(TXP_REQUEUE_SCRIPT) + " --api '" + testing::rabbit_api() + "' --vhost '" +
                              testing::vhost() + "' " + args + " 2>&1",
                          &out);
    INFO(out);
    REQUIRE(rc == 0);
    return out;
}

}  // namespace

TEST_CASE("requeue moves parked messages back and they are processed once", "[ledger][requeue]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto wallet = f.open_wallet(testing::test_owner(1));
    f.fund(wallet, 1'000);
    auto deposit = f.accept("deposit", wallet, std::nullopt, 250);

    amqp::outgoing poison;
    poison.exchange = amqp::error_exchange;
    poison.routing_key = "ledger.transactions";
    poison.body = "{not json";
    poison.props.message_id = ids::uuid_v4();
    poison.props.type = "ledger.transaction.v1";
    f.publish({parked(f.message_for(deposit), "database_unavailable"), parked(poison, "malformed_json")});

    amqp::admin admin(f.amqp_options());
    REQUIRE(admin.queue_depth("ledger.transactions.error") == 2);

    auto dry = requeue("--dry-run ledger.transactions.error");
    CHECK_THAT(dry, Catch::Contains("would move 2 to ledger.transactions"));
    CHECK(admin.queue_depth("ledger.transactions.error") == 2);
    CHECK(admin.queue_depth("ledger.transactions") == 0);

    auto moved = requeue("--reason database_unavailable ledger.transactions.error");
    CHECK_THAT(moved, Catch::Contains("moved 1 to ledger.transactions, kept 1 in ledger.transactions.error"));
    CHECK(admin.queue_depth("ledger.transactions") == 1);
    CHECK(admin.queue_depth("ledger.transactions.error") == 1);
    CHECK(f.status(deposit.transaction_id) == "queued");

    auto worker = f.start_worker("requeue");
    REQUIRE(f.wait_final({deposit.transaction_id}) == 0);
    CHECK(f.status(deposit.transaction_id) == "completed");
    REQUIRE(wait_depth(admin, "ledger.transactions", 0, std::chrono::seconds(30)));

    // Once: one deposit's two postings, the balance moved by its amount, nothing parked anew.
    CHECK(f.entry_count(deposit.transaction_id) == 2);
    CHECK(f.balance(wallet) == 1'250);
    CHECK(admin.queue_depth("ledger.transactions.error") == 1);  // the malformed one, kept
    auto again = requeue("--reason database_unavailable ledger.transactions.error");
    CHECK_THAT(again, Catch::Contains("moved 0 to -, kept 1"));
    CHECK(f.reconcile().empty());
}
