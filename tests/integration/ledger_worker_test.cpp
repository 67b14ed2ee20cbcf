// ledger-worker as real processes against the real broker and database: poison messages,
// per-wallet order with 3 replicas, the bank test, duplicates, SIGKILL mid-batch and a
// graceful stop.
#include "ledger_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/schema.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <thread>

using namespace txp;

namespace {

std::int64_t total_entries(testing::ledger_fixture& f) {
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec("SELECT count(*) FROM ledger.entries")[0][0].as<std::int64_t>();
}


bool wait_depth(amqp::admin& a, const std::string& q, std::uint32_t n, std::chrono::seconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (a.queue_depth(q) == n) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return a.queue_depth(q) == n;
}

// One outcome as announced on txp.events.
struct announced {
    std::string event_id;
    std::string routing_key;
    std::int64_t balance_after = 0;
    std::size_t message = 0;  // which message carried it (0, 1, ...)
};

// Takes the tx.events.v1 messages from notifier.events (each valid against its schema,
// routed by its events' common status) until `n` outcomes were read or `limit` passed.
std::vector<announced> take_announced(amqp::admin& a, std::size_t n, std::chrono::seconds limit) {
    std::vector<announced> out;
    auto until = std::chrono::steady_clock::now() + limit;
    std::size_t messages = 0;
    while (out.size() < n && std::chrono::steady_clock::now() < until) {
        auto d = a.get("notifier.events");
        if (!d) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        a.ack(d->delivery_tag);
        CHECK(d->props.type == "tx.events.v1");
        auto doc = json::parse(d->body);
        CHECK_FALSE(schema::global().validate(d->props.type, doc));
        for (const auto& e : doc["events"].GetArray()) {
            CHECK(d->routing_key == "tx." + std::string(e["status"].GetString()));
            auto balance = e.FindMember("balance_after");
            out.push_back({e["event_id"].GetString(), d->routing_key,
                           balance != e.MemberEnd() && balance->value.IsInt64() ? balance->value.GetInt64() : -1, messages});
        }
        ++messages;
    }
    return out;
}

}  // namespace

TEST_CASE("poison messages are parked with a reason and change nothing", "[ledger][worker]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    f.fund(a, 1'000);
    auto before = total_entries(f);

    const std::string tx = ids::uuid_v4();
    auto body = [&](const std::string& amount) {
        return R"({"transaction_id":")" + tx + R"(","type":"withdrawal","wallet_id":)" + std::to_string(a) +
               R"(,"amount":)" + amount + R"(,"currency":"USD","sequence":2,"accepted_at":"2026-11-22T00:00:00Z"})";
    };
    std::vector<std::pair<std::string, std::string>> poison{
        {"{not json", "malformed_json"},
        {body("0"), "schema_invalid"},
        {body("-5"), "schema_invalid"},
        {body("9223372036854775808"), "schema_invalid"},
        {body("1.5"), "schema_invalid"},
        {body("\"12\""), "schema_invalid"},
        {body("100"), "unknown_transaction"},  // well-formed, but never accepted by the ledger
        {R"({"transaction_id":")" + ids::uuid_v4() +
             R"(","type":"deposit","wallet_id":999999999,"amount":5,"currency":"USD","sequence":1,"accepted_at":"x"})",
         "unknown_transaction"},
    };
    for (const auto& [b, _] : poison) f.publish_raw(b);
    f.publish_raw(body("100"), "something.else.v1");

    auto w = f.start_worker("poison");
    amqp::admin admin(f.amqp_options());
    REQUIRE(wait_depth(admin, "ledger.transactions.error", static_cast<std::uint32_t>(poison.size() + 1),
                       std::chrono::seconds(60)));
    std::multiset<std::string> reasons, expected;
    std::set<std::string> bodies;
    for (const auto& [b, r] : poison) {
        expected.insert(r);
        bodies.insert(b);
    }
    expected.insert("unknown_message_type");
    for (std::size_t i = 0; i < poison.size() + 1; ++i) {
        auto d = admin.get("ledger.transactions.error");
        REQUIRE(d);
        reasons.insert(amqp::header_text(d->props.headers, "x-error-reason"));
        CHECK_FALSE(amqp::header_text(d->props.headers, "x-error-detail").empty());
        CHECK(amqp::header_text(d->props.headers, "x-failed-service") == "ledger-worker");
        CHECK(amqp::header_text(d->props.headers, "x-origin-queue") == "ledger.transactions");
        CHECK(bodies.count(d->body) == 1);  // the body is untouched
        admin.ack(d->delivery_tag);
    }
    CHECK(reasons == expected);
    CHECK(w->terminate() == 0);
    CHECK(total_entries(f) == before);
    CHECK(f.balance(a) == 1'000);
}

TEST_CASE("3 replicas keep each wallet's order: deposit N then withdraw N always completes", "[ledger][worker][order]") {
    testing::ledger_fixture f;
    f.purge_queues();
    std::vector<amqp::outgoing> msgs;
    std::vector<std::string> ids;
    for (int i = 0; i < 200; ++i) {
        auto w = f.open_wallet(testing::test_owner(1000 + i));
        auto n = 100 + i;
        auto d = f.accept("deposit", w, std::nullopt, n);
        auto x = f.accept("withdrawal", w, std::nullopt, n);
        msgs.push_back(f.message_for(d));
        msgs.push_back(f.message_for(x));
        ids.push_back(d.transaction_id);
        ids.push_back(x.transaction_id);
    }
    std::vector<std::unique_ptr<testing::child_process>> workers;
    for (const char* r : {"order-1", "order-2", "order-3"}) {
        workers.push_back(f.start_worker(r, {{"TXP_PREFETCH", "50"}, {"TXP_BATCH_SIZE", "20"}}));
    }
    f.publish(msgs);
    REQUIRE(f.wait_final(ids) == 0);
    for (const auto& id : ids) {
        INFO(id);
        CHECK(f.status(id) == "completed");
    }
    for (auto& w : workers) CHECK(w->terminate() == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a wallet another replica's batch holds does not hold up the rest of the batch", "[ledger][worker][busy]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto busy = f.open_wallet(testing::test_owner(1));
    std::vector<std::int64_t> others;
    for (int i = 0; i < 5; ++i) others.push_back(f.open_wallet(testing::test_owner(10 + i)));
    auto blocked = f.accept("deposit", busy, std::nullopt, 7);
    std::vector<amqp::outgoing> msgs{f.message_for(blocked)};
    std::vector<std::string> free_ids;
    for (auto w : others) {
        auto m = f.accept("deposit", w, std::nullopt, 11);
        msgs.push_back(f.message_for(m));
        free_ids.push_back(m.transaction_id);
    }
    // What another replica's batch does: hold the wallet's row until its commit.
    auto holder = f.ledger_pool().acquire();
    pqxx::work hold(*holder);
    hold.exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1 FOR NO KEY UPDATE", busy);
    auto w = f.start_worker("busy", {{"TXP_BATCH_SIZE", "50"}, {"TXP_BUSY_PATIENCE", "60s"}});
    f.publish(msgs);
    // The other wallets' deposits complete while the busy wallet is still held.
    auto queued = f.wait_final(free_ids, std::chrono::seconds(30));
    auto blocked_status = f.status(blocked.transaction_id);
    hold.abort();
    CHECK(queued == 0);
    CHECK(blocked_status == "queued");
    // Free again, it completes on a later batch, once.
    REQUIRE(f.wait_final({blocked.transaction_id}) == 0);
    CHECK(f.status(blocked.transaction_id) == "completed");
    CHECK(f.balance(busy) == 7);
    CHECK(f.entry_count(blocked.transaction_id) == 2);
    for (auto o : others) CHECK(f.balance(o) == 11);
    CHECK(w->terminate() == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a wallet kept busy past the patience is waited for", "[ledger][worker][busy]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    auto m = f.accept("deposit", a, std::nullopt, 5);
    auto holder = f.ledger_pool().acquire();
    pqxx::work hold(*holder);
    hold.exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1 FOR NO KEY UPDATE", a);
    auto w = f.start_worker("patient", {{"TXP_BUSY_PATIENCE", "100ms"}});
    f.publish({f.message_for(m)});
    // Held past the patience, the worker's next batch waits for the row lock: it shows in
    // pg_stat_activity as a backend waiting on a lock.
    auto waiting = [&] {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        return r.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                      "AND application_name LIKE 'ledger-worker%' AND datname = current_database()")[0][0]
            .as<int>();
    };
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (waiting() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto waiters = waiting();
    hold.abort();
    CHECK(waiters == 1);
    REQUIRE(f.wait_final({m.transaction_id}) == 0);
    CHECK(f.balance(a) == 5);
    CHECK(w->terminate() == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("the bank test: concurrent transfers both ways preserve the total", "[ledger][worker][concurrency]") {
    testing::ledger_fixture f;
    f.purge_queues();
    std::vector<std::int64_t> wallets;
    for (int i = 0; i < 8; ++i) {
        wallets.push_back(f.open_wallet(testing::test_owner(2000 + i)));
        f.fund(wallets.back(), 10'000);
    }
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::size_t> pick(0, wallets.size() - 1);
    std::uniform_int_distribution<std::int64_t> amount(1, 4'000);
    std::vector<amqp::outgoing> msgs;
    std::vector<std::string> ids;
    for (int i = 0; i < 600; ++i) {
        auto from = pick(rng), to = pick(rng);
        if (from == to) to = (to + 1) % wallets.size();
        auto m = f.accept("transfer", wallets[from], wallets[to], amount(rng));
        msgs.push_back(f.message_for(m));
        ids.push_back(m.transaction_id);
    }
    std::vector<std::unique_ptr<testing::child_process>> workers;
    for (const char* r : {"bank-1", "bank-2", "bank-3"}) workers.push_back(f.start_worker(r));
    f.publish(msgs);
    REQUIRE(f.wait_final(ids) == 0);
    std::int64_t total = 0;
    for (auto w : wallets) {
        CHECK(f.balance(w) >= 0);
        total += f.balance(w);
    }
    CHECK(total == 80'000);
    int completed = 0;
    for (const auto& id : ids) {
        auto s = f.status(id);
        CHECK((s == "completed" || (s == "rejected" && f.reason(id) == "insufficient_funds")));
        completed += s == "completed";
    }
    CHECK(completed > 100);  // the test must actually move money
    for (auto& w : workers) CHECK(w->terminate() == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a message published twice is applied once and announced once", "[ledger][worker][idempotency]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    auto m = f.accept("deposit", a, std::nullopt, 42);
    auto msg = f.message_for(m);
    auto w = f.start_worker("dup");
    f.publish({msg, msg, f.message_for(m)});  // same message id twice, then another id
    REQUIRE(f.wait_final({m.transaction_id}) == 0);
    amqp::admin admin(f.amqp_options());
    REQUIRE(wait_depth(admin, "ledger.transactions", 0, std::chrono::seconds(30)));
    // A graceful stop settles every delivery it took (the duplicates are acknowledged).
    CHECK(w->terminate() == 0);
    // Three deliveries, one application, one announcement: the copies are not redeliveries
    // (nobody died before announcing), so they are acknowledged without a second one.
    auto events = take_announced(admin, 3, std::chrono::seconds(2));
    REQUIRE(events.size() == 1);
    CHECK(events[0].event_id == m.transaction_id + ":completed");
    CHECK(events[0].routing_key == "tx.completed");
    CHECK(events[0].balance_after == 42);
    CHECK(admin.queue_depth("ledger.transactions") == 0);
    CHECK(f.balance(a) == 42);
    CHECK(f.entry_count(m.transaction_id) == 2);
    CHECK(f.unannounced() == 0);  // the worker deleted its journal row once the broker confirmed
}

TEST_CASE("a batch announces outcomes in the order it applied them, not the order the messages came in",
          "[ledger][worker][order]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    auto first = f.accept("deposit", a, std::nullopt, 30);      // sequence 1
    auto second = f.accept("withdrawal", a, std::nullopt, 30);  // sequence 2
    auto third = f.accept("deposit", a, std::nullopt, 5);       // sequence 3
    // Queued newest first, before the worker starts: its first batch holds all three.
    f.publish({f.message_for(third), f.message_for(second), f.message_for(first)});
    auto w = f.start_worker("in-order");
    REQUIRE(f.wait_final({first.transaction_id, second.transaction_id, third.transaction_id}) == 0);
    amqp::admin admin(f.amqp_options());
    auto events = take_announced(admin, 3, std::chrono::seconds(30));
    CHECK(w->terminate() == 0);
    std::vector<std::string> order;
    std::vector<std::int64_t> balances;
    for (const auto& e : events) {
        order.push_back(e.event_id);
        balances.push_back(e.balance_after);
    }
    CHECK(order == std::vector<std::string>{first.transaction_id + ":completed", second.transaction_id + ":completed",
                                            third.transaction_id + ":completed"});
    CHECK(balances == std::vector<std::int64_t>{30, 0, 5});
    CHECK(f.balance(a) == 5);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a batch's outcomes go out as one message per run of the same status, in order", "[ledger][worker][order]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    auto d1 = f.accept("deposit", a, std::nullopt, 30);
    auto too_much = f.accept("withdrawal", a, std::nullopt, 50);
    auto d2 = f.accept("deposit", a, std::nullopt, 5);
    auto d3 = f.accept("deposit", a, std::nullopt, 1);
    f.publish({f.message_for(d1), f.message_for(too_much), f.message_for(d2), f.message_for(d3)});
    auto w = f.start_worker("runs");
    REQUIRE(f.wait_final({d1.transaction_id, too_much.transaction_id, d2.transaction_id, d3.transaction_id}) == 0);
    amqp::admin admin(f.amqp_options());
    auto events = take_announced(admin, 4, std::chrono::seconds(30));
    CHECK(w->terminate() == 0);
    REQUIRE(events.size() == 4);
    CHECK(events[0].event_id == d1.transaction_id + ":completed");
    CHECK(events[1].event_id == too_much.transaction_id + ":rejected");
    CHECK(events[1].routing_key == "tx.rejected");
    CHECK(events[2].event_id == d2.transaction_id + ":completed");
    CHECK(events[3].event_id == d3.transaction_id + ":completed");
    CHECK(events[3].balance_after == 36);
    // One batch (all four were queued before the worker started): three runs, three messages.
    CHECK(events[0].message != events[1].message);
    CHECK(events[1].message != events[2].message);
    CHECK(events[2].message == events[3].message);
    CHECK(admin.queue_depth("notifier.events") == 0);
}

TEST_CASE("a worker killed with SIGKILL mid-stream loses and doubles nothing", "[ledger][worker][fault]") {
    testing::ledger_fixture f;
    f.purge_queues();
    std::vector<std::int64_t> wallets;
    for (int i = 0; i < 20; ++i) wallets.push_back(f.open_wallet(testing::test_owner(3000 + i)));
    std::vector<amqp::outgoing> msgs;
    std::vector<std::string> ids;
    for (int i = 0; i < 3000; ++i) {
        auto m = f.accept("deposit", wallets[static_cast<std::size_t>(i) % wallets.size()], std::nullopt, 1 + i % 7);
        msgs.push_back(f.message_for(m));
        ids.push_back(m.transaction_id);
    }
    f.publish(msgs);
    auto victim = f.start_worker("victim", {{"TXP_BATCH_SIZE", "50"}});
    // Let it get going, then kill it without warning.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        auto done = r.exec_params("SELECT count(*) FROM ledger.transactions WHERE id = ANY($1::uuid[]) AND status <> 'queued'",
                                  db::array_literal(ids))[0][0].as<std::size_t>();
        if (done >= 300) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    victim->kill_hard();
    auto survivor = f.start_worker("survivor");
    REQUIRE(f.wait_final(ids) == 0);
    CHECK(survivor->terminate() == 0);
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    auto stats = r.exec_params(
        "SELECT count(*) FILTER (WHERE t.status = 'completed'), "
        "(SELECT count(*) FROM ledger.entries e WHERE e.transaction_id = ANY($1::uuid[])) "
        "FROM ledger.transactions t WHERE t.id = ANY($1::uuid[])",
        db::array_literal(ids));
    CHECK(stats[0][0].as<std::size_t>() == ids.size());
    CHECK(stats[0][1].as<std::size_t>() == 2 * ids.size());
    std::int64_t expected = 0;
    for (int i = 0; i < 3000; ++i) expected += 1 + i % 7;
    std::int64_t total = 0;
    for (auto w : wallets) total += f.balance(w);
    CHECK(total == expected);
    CHECK(f.reconcile().empty());
}

// Short thresholds for the recovery tests: a transaction queued 1 s on a wallet that did
// not move for a round (200 ms) is recovered.
const std::map<std::string, std::string> quick_recovery{{"TXP_RECOVERY_AFTER", "1s"}, {"TXP_RECOVERY_INTERVAL", "200ms"}};

TEST_CASE("transactions whose messages were lost are applied by the recovery loop and announced exactly once",
          "[ledger][worker][recovery]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    auto b = f.open_wallet(testing::test_owner(2));
    f.fund(a, 100);
    // Accepted and published while no worker runs, then the queue is purged: the messages are
    // lost (a lost broker disk, a deleted queue, an operator's mistake). The database has them.
    std::vector<ledger::tx_message> lost;
    for (int i = 0; i < 10; ++i) lost.push_back(f.accept("deposit", a, std::nullopt, 10 + i));
    lost.push_back(f.accept("transfer", a, b, 200));
    lost.push_back(f.accept("withdrawal", b, std::nullopt, 1'000'000));  // rejected: insufficient funds
    lost.push_back(f.accept("withdrawal", a, std::nullopt, 5));
    std::vector<amqp::outgoing> msgs;
    std::vector<std::string> ids;
    for (const auto& m : lost) {
        msgs.push_back(f.message_for(m));
        ids.push_back(m.transaction_id);
    }
    f.publish(msgs);
    amqp::admin admin(f.amqp_options());
    REQUIRE(wait_depth(admin, "ledger.transactions", static_cast<std::uint32_t>(msgs.size()), std::chrono::seconds(10)));
    admin.purge("ledger.transactions");

    // Three replicas: one leads recovery, the others only consume (an empty queue).
    std::vector<std::unique_ptr<testing::child_process>> workers;
    for (int i = 0; i < 3; ++i) workers.push_back(f.start_worker("recover-" + std::to_string(i), quick_recovery));
    REQUIRE(f.wait_final(ids, std::chrono::seconds(60)) == 0);
    // Every outcome announced exactly once, in each wallet's order.
    auto events = take_announced(admin, ids.size() + 1, std::chrono::seconds(20));
    REQUIRE(events.size() == ids.size());
    std::map<std::string, std::size_t> seen;
    for (const auto& e : events) ++seen[e.event_id];
    for (const auto& m : lost) {
        auto status = f.status(m.transaction_id);
        CHECK(seen[m.transaction_id + ":" + status] == 1);
    }
    // In each wallet's acceptance order: a's deposits, the transfer, then a's withdrawal and
    // (on b, after the transfer) b's.
    std::map<std::string, std::size_t> pos;
    for (std::size_t k = 0; k < events.size(); ++k) pos[events[k].event_id.substr(0, events[k].event_id.find(':'))] = k;
    for (std::size_t i = 1; i < 11; ++i) CHECK(pos[ids[i - 1]] < pos[ids[i]]);
    CHECK(pos[ids[10]] < pos[ids[11]]);
    CHECK(pos[ids[10]] < pos[ids[12]]);
    CHECK(f.status(lost[11].transaction_id) == "rejected");
    std::int64_t deposits = 0;
    for (int i = 0; i < 10; ++i) deposits += 10 + i;
    CHECK(f.balance(a) == 100 + deposits - 200 - 5);
    CHECK(f.balance(b) == 200);
    for (auto& w : workers) CHECK(w->terminate() == 0);
    CHECK(admin.queue_depth("notifier.events") == 0);  // nothing announced twice, even by three replicas
    CHECK(f.unannounced() == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("an outcome that was never announced is announced by the recovery loop", "[ledger][worker][recovery]") {
    testing::ledger_fixture f;
    f.purge_queues();
    auto a = f.open_wallet(testing::test_owner(1));
    auto t1 = f.accept("deposit", a, std::nullopt, 70);
    auto t2 = f.accept("withdrawal", a, std::nullopt, 500);
    // A worker applied both and died before the broker confirmed their announcement: the
    // transactions are final, their journal row is still there, no event was published.
    ledger::processor p(f.ledger_pool(), "died-before-announcing");
    auto r = p.run({{ids::uuid_v4(), t1}, {ids::uuid_v4(), t2}}, {});
    REQUIRE(r.journal != 0);
    REQUIRE(f.status(t1.transaction_id) == "completed");
    REQUIRE(f.status(t2.transaction_id) == "rejected");
    REQUIRE(f.unannounced() == 1);

    auto w = f.start_worker("announcer", quick_recovery);
    amqp::admin admin(f.amqp_options());
    auto events = take_announced(admin, 2, std::chrono::seconds(30));
    REQUIRE(events.size() == 2);
    CHECK(events[0].event_id == t1.transaction_id + ":completed");
    CHECK(events[0].balance_after == 70);
    CHECK(events[1].event_id == t2.transaction_id + ":rejected");
    CHECK(events[1].routing_key == "tx.rejected");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.unannounced() != 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(f.unannounced() == 0);
    // Announced once: later rounds find nothing more to do.
    CHECK(take_announced(admin, 1, std::chrono::seconds(3)).empty());
    CHECK(w->terminate() == 0);
    CHECK(f.balance(a) == 70);
}

TEST_CASE("bad configuration stops start-up with one line naming the variable", "[ledger][worker][config]") {
    testing::ledger_fixture f;
    struct bad_case {
        std::map<std::string, std::string> env;
        std::string names;
    };
    std::vector<bad_case> cases{
        {{{"TXP_DATABASE_URL", ""}}, "TXP_DATABASE_URL"},
        {{{"TXP_AMQP_URL", "http://localhost/"}}, "TXP_AMQP_URL"},
        {{{"TXP_BATCH_SIZE", "lots"}}, "TXP_BATCH_SIZE"},
        {{{"TXP_HTTP_PORT", "70000"}}, "TXP_HTTP_PORT"},
        {{{"TXP_LOG_LEVEL", "chatty"}}, "TXP_LOG_LEVEL"},
    };
    for (auto& c : cases) {
        INFO(c.names);
        auto w = f.start_worker("badconfig-" + c.names, c.env);
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (w->running() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        CHECK_FALSE(w->running());
        CHECK(w->terminate() == 2);
        auto log = w->log();
        CHECK(log.find(c.names) != std::string::npos);
        CHECK(log.find("configuration:") != std::string::npos);
        CHECK(log.find("txp-dev-password") == std::string::npos);  // never echo secrets
    }
}

TEST_CASE("a worker reports health and readiness and stops cleanly on SIGTERM", "[ledger][worker][ops]") {
    testing::ledger_fixture f;
    auto port = testing::free_port();
    auto w = f.start_worker("ops", {{"TXP_HTTP_PORT", std::to_string(port)}});
    std::string body;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int rc = 1;
    while (std::chrono::steady_clock::now() < until) {
        body.clear();
        rc = testing::run("curl -sf http://127.0.0.1:" + std::to_string(port) + "/readyz", &body);
        if (rc == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(rc == 0);
    CHECK(body.find("\"database\":true") != std::string::npos);
    CHECK(body.find("\"broker\":true") != std::string::npos);
    std::string metrics;
    CHECK(testing::run("curl -sf http://127.0.0.1:" + std::to_string(port) + "/metrics", &metrics) == 0);
    CHECK(metrics.find("# TYPE") != std::string::npos);
    CHECK(w->terminate() == 0);
    CHECK(w->log().find("stopped cleanly") != std::string::npos);
}
