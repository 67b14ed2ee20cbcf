// The ledger against the real PostgreSQL: acceptance, every transaction type, every
// rejection reason, order, duplicates and the invariants, through the processor that the
// worker uses (no broker here; tests/integration/ledger_worker_test.cpp covers it).
#include "ledger_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

using namespace txp;
using txp::ledger::outcome_kind;

namespace {

ledger::outcome apply_one(testing::ledger_fixture& f, const ledger::tx_message& m, std::string mid = "") {
    ledger::processor p(f.ledger_pool(), "test");
    if (mid.empty()) mid = ids::uuid_v4();
    return p.apply({{mid, m}}).at(0);
}

std::int64_t sum_entries(testing::ledger_fixture& f, const std::string& tx) {
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT coalesce(sum(amount), 0) FROM ledger.entries WHERE transaction_id = $1::uuid", tx)[0][0]
        .as<std::int64_t>();
}

std::string sqlstate_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return db::sqlstate_of(e);
    }
    return "none";
}

// The SQLSTATE of running `sql` in its own committed DB transaction on a connection of `pool`.
std::string sqlstate_running(db::pool& pool, const std::string& sql) {
    return sqlstate_of([&] {
        auto l = pool.acquire();
        pqxx::work w(*l);
        w.exec(sql);
        w.commit();
    });
}

}  // namespace

TEST_CASE("every transaction type posts balanced entries", "[ledger]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto b = f.open_wallet(testing::test_owner(2));
    f.fund(a, 10'000);
    CHECK(f.balance(a) == 10'000);

    auto w = f.accept("withdrawal", a, std::nullopt, 1'000);
    auto p = f.accept("payment", a, std::nullopt, 500);
    auto t = f.accept("transfer", a, b, 2'000);
    for (const auto& m : {w, p, t}) {
        auto o = apply_one(f, m);
        CHECK(o.kind == outcome_kind::completed);
        REQUIRE(o.event);
        CHECK(o.event->status == "completed");
        CHECK(f.status(m.transaction_id) == "completed");
        CHECK(f.entry_count(m.transaction_id) == 2);
        CHECK(sum_entries(f, m.transaction_id) == 0);
    }
    CHECK(f.balance(a) == 10'000 - 1'000 - 500 - 2'000);
    CHECK(f.balance(b) == 2'000);
    auto last = apply_one(f, f.accept("deposit", b, std::nullopt, 7));
    REQUIRE(last.event);
    CHECK(last.event->balance_after == 2'007);
    CHECK(f.reconcile().empty());
}

TEST_CASE("business rejections are terminal states with a reason, and move nothing", "[ledger]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto eur = f.open_wallet(testing::test_owner(2), "EUR");
    auto limited = f.open_wallet(testing::test_owner(3), "USD", 500);
    f.fund(a, 1'000);

    auto expect_rejected = [&](const ledger::tx_message& m, const std::string& reason) {
        auto o = apply_one(f, m);
        CHECK(o.kind == outcome_kind::rejected);
        CHECK(o.reason == reason);
        CHECK(f.status(m.transaction_id) == "rejected");
        CHECK(f.reason(m.transaction_id) == reason);
        CHECK(f.entry_count(m.transaction_id) == 0);
    };
    expect_rejected(f.accept("withdrawal", a, std::nullopt, 1'001), "insufficient_funds");
    expect_rejected(f.accept("payment", a, std::nullopt, 5'000), "insufficient_funds");
    expect_rejected(f.accept("deposit", a, std::nullopt, 100, "EUR"), "currency_mismatch");
    expect_rejected(f.accept("transfer", a, eur, 100), "currency_mismatch");
    CHECK(f.balance(a) == 1'000);
    CHECK(f.balance(eur) == 0);

    // The overdraft limit lets a wallet go down to -limit and no further.
    CHECK(apply_one(f, f.accept("withdrawal", limited, std::nullopt, 500)).kind == outcome_kind::completed);
    CHECK(f.balance(limited) == -500);
    expect_rejected(f.accept("withdrawal", limited, std::nullopt, 1), "insufficient_funds");

    // A closed wallet refuses money.
    {
        auto l = f.ledger_pool().acquire();
        pqxx::work w(*l);
        w.exec_params("UPDATE ledger.wallets SET status = 'closed' WHERE id = $1", eur);
        w.commit();
    }
    expect_rejected(f.accept("deposit", eur, std::nullopt, 100, "EUR"), "wallet_closed");
    CHECK(f.reconcile().empty());
}

TEST_CASE("a bank reversal applies below the limit and marks the wallet overdrawn", "[ledger]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto dep = f.accept("deposit", a, std::nullopt, 1'000);
    REQUIRE(apply_one(f, dep).kind == outcome_kind::completed);
    REQUIRE(apply_one(f, f.accept("payment", a, std::nullopt, 800)).kind == outcome_kind::completed);

    auto rev = f.accept("reversal", a, std::nullopt, 1'000, "USD", dep.transaction_id);
    auto o = apply_one(f, rev);
    CHECK(o.kind == outcome_kind::completed);
    CHECK(f.balance(a) == -800);
    CHECK(sum_entries(f, rev.transaction_id) == 0);

    // Overdrawn: outgoing money is refused until the balance is back within the limit.
    auto again = apply_one(f, f.accept("withdrawal", a, std::nullopt, 1));
    CHECK(again.kind == outcome_kind::rejected);
    CHECK(again.reason == "wallet_overdrawn");
    std::vector<std::string> notes;
    CHECK(ledger::reconcile(f.ledger_pool(), notes).empty());
    bool listed = false;
    for (const auto& n : notes) listed |= n.find("wallet " + std::to_string(a) + " is overdrawn") != std::string::npos;
    CHECK(listed);

    REQUIRE(apply_one(f, f.accept("deposit", a, std::nullopt, 800)).kind == outcome_kind::completed);
    CHECK(apply_one(f, f.accept("deposit", a, std::nullopt, 5)).kind == outcome_kind::completed);
    CHECK(apply_one(f, f.accept("withdrawal", a, std::nullopt, 5)).kind == outcome_kind::completed);

    // A transaction is reversed once; a rejected one cannot be reversed.
    CHECK(sqlstate_of([&] { f.accept("reversal", a, std::nullopt, 1'000, "USD", dep.transaction_id); }).find("23505") !=
          std::string::npos);
    auto rejected = f.accept("withdrawal", a, std::nullopt, 1'000'000);
    REQUIRE(apply_one(f, rejected).kind == outcome_kind::rejected);
    auto bad_rev = apply_one(f, f.accept("reversal", a, std::nullopt, 1'000'000, "USD", rejected.transaction_id));
    CHECK(bad_rev.kind == outcome_kind::rejected);
    CHECK(bad_rev.reason == "not_reversible");
}

TEST_CASE("acceptance enforces idempotency keys and refuses bad input", "[ledger][acceptance]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto key = ids::uuid_v4();
    auto first = f.accept("deposit", a, std::nullopt, 100, "USD", std::nullopt, key);
    auto second = f.accept("deposit", a, std::nullopt, 100, "USD", std::nullopt, key);
    CHECK(first.transaction_id == second.transaction_id);
    CHECK(first.sequence == second.sequence);
    auto conflict = sqlstate_of([&] { f.accept("deposit", a, std::nullopt, 101, "USD", std::nullopt, key); });
    CHECK(conflict.find("TX409") != std::string::npos);
    CHECK(sqlstate_of([&] { f.accept("deposit", 987654321, std::nullopt, 100); }).find("TX404") != std::string::npos);
    CHECK(sqlstate_of([&] { f.accept("deposit", a, std::nullopt, 0); }).find("TX400") != std::string::npos);
    CHECK(sqlstate_of([&] { f.accept("deposit", a, std::nullopt, -5); }).find("TX400") != std::string::npos);
    CHECK(sqlstate_of([&] { f.accept("transfer", a, a, 5); }).find("TX400") != std::string::npos);
    CHECK(sqlstate_of([&] { f.accept("deposit", a, std::nullopt, 5, "usd"); }).find("TX400") != std::string::npos);

    // Sequence numbers are gap-free per wallet, also across failed attempts.
    auto n1 = f.accept("deposit", a, std::nullopt, 1);
    auto n2 = f.accept("deposit", a, std::nullopt, 2);
    CHECK(n2.sequence == n1.sequence + 1);
    CHECK(f.reconcile().empty());
}

TEST_CASE("each wallet's transactions apply in acceptance order", "[ledger][order]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto dep = f.accept("deposit", a, std::nullopt, 300);
    auto wd = f.accept("withdrawal", a, std::nullopt, 300);

    // Alone, the withdrawal waits for its deposit: the batch, holding the wallet, applies the
    // deposit from the database first (chaining), then the withdrawal, which the deposit funds.
    ledger::processor p(f.ledger_pool(), "test");
    std::vector<ledger::tx_event> chained;
    auto out = p.apply({{ids::uuid_v4(), wd}}, &chained);
    CHECK(out[0].kind == outcome_kind::completed);
    REQUIRE(chained.size() == 1);
    CHECK(chained[0].transaction_id == dep.transaction_id);
    CHECK(chained[0].status == "completed");
    CHECK(chained[0].balance_after == std::optional<std::int64_t>(300));
    REQUIRE(out[0].event);
    CHECK(out[0].event->balance_after == std::optional<std::int64_t>(0));
    CHECK(f.balance(a) == 0);
    // The deposit's own message, when it comes, is a duplicate announcing the recorded outcome.
    auto late = apply_one(f, dep);
    CHECK(late.kind == outcome_kind::duplicate);
    REQUIRE(late.event);
    CHECK(late.event->status == "completed");

    // In one batch in the wrong order, both apply, in order.
    auto dep2 = f.accept("deposit", a, std::nullopt, 500);
    auto wd2 = f.accept("withdrawal", a, std::nullopt, 500);
    out = p.apply({{ids::uuid_v4(), wd2}, {ids::uuid_v4(), dep2}}, &chained);
    CHECK(out[0].kind == outcome_kind::completed);
    CHECK(out[1].kind == outcome_kind::completed);
    CHECK(chained.empty());
    CHECK(f.balance(a) == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a chained transaction whose own message is parked is announced with its recorded outcome", "[ledger][order]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto t1 = f.accept("deposit", a, std::nullopt, 70);
    auto t2 = f.accept("deposit", a, std::nullopt, 30);
    REQUIRE(apply_one(f, t2).kind == outcome_kind::completed);  // chains t1 first
    CHECK(f.status(t1.transaction_id) == "completed");
    // t1's message ends in the error queue: nothing changes, and its outcome is announced.
    ledger::processor p(f.ledger_pool(), "test");
    auto ev = p.mark_failed(t1, "apply_failed");
    REQUIRE(ev);
    CHECK(ev->status == "completed");
    CHECK(ev->transaction_id == t1.transaction_id);
    CHECK(ev->balance_after == std::optional<std::int64_t>(70));
    CHECK(ev->owner_id == std::optional<std::int64_t>(testing::test_owner(1)));
    CHECK(f.status(t1.transaction_id) == "completed");
    CHECK(f.balance(a) == 100);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a waiting transaction whose predecessor needs a wallet locked elsewhere stays early, without waiting for the lock",
          "[ledger][order]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto b = f.open_wallet(testing::test_owner(2));
    REQUIRE(apply_one(f, f.accept("deposit", a, std::nullopt, 1'000)).kind == outcome_kind::completed);
    auto tr = f.accept("transfer", a, b, 400);           // b's sequence 1
    auto wd = f.accept("withdrawal", b, std::nullopt, 400);  // b's sequence 2, needs the transfer first

    // Another batch holds wallet a: chaining may not take it, so the withdrawal stays early,
    // and the call returns at once instead of waiting for a's lock.
    auto holder = f.ledger_pool().acquire();
    pqxx::work hold(*holder);
    hold.exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1 FOR UPDATE", a);
    CHECK(apply_one(f, wd).kind == outcome_kind::early);
    CHECK(f.status(tr.transaction_id) == "queued");
    hold.abort();

    // Once a is free, the withdrawal's batch applies the transfer, then the withdrawal.
    ledger::processor p(f.ledger_pool(), "test");
    std::vector<ledger::tx_event> chained;
    auto out = p.apply({{ids::uuid_v4(), wd}}, &chained);
    CHECK(out[0].kind == outcome_kind::completed);
    REQUIRE(chained.size() == 1);
    CHECK(chained[0].transaction_id == tr.transaction_id);
    CHECK(f.balance(a) == 600);
    CHECK(f.balance(b) == 0);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a batch that does not wait for wallets applies what it can and leaves the busy ones untouched",
          "[ledger][order][busy]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto b = f.open_wallet(testing::test_owner(2));
    REQUIRE(apply_one(f, f.accept("deposit", a, std::nullopt, 1'000)).kind == outcome_kind::completed);
    auto dep_a = f.accept("deposit", a, std::nullopt, 10);
    auto dep_b = f.accept("deposit", b, std::nullopt, 20);
    auto tr = f.accept("transfer", a, b, 300);  // a's sequence 3 after dep_a; b's sequence 2
    auto dep_a2 = f.accept("deposit", a, std::nullopt, 5);  // a's sequence 4: behind the busy transfer

    // Another batch holds wallet b.
    auto holder = f.ledger_pool().acquire();
    pqxx::work hold(*holder);
    hold.exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1 FOR NO KEY UPDATE", b);

    ledger::processor p(f.ledger_pool(), "test");
    std::vector<ledger::batch_item> items{
        {ids::uuid_v4(), dep_a}, {ids::uuid_v4(), dep_b}, {ids::uuid_v4(), tr}, {ids::uuid_v4(), dep_a2}};
    auto quick = std::async(std::launch::async, [&] { return p.apply(items, nullptr, true, false); });
    if (quick.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
        hold.abort();  // let the call finish before failing
        FAIL("a batch that does not wait for wallets waited for a locked one");
    }
    auto out = quick.get();
    CHECK(out[0].kind == outcome_kind::completed);
    CHECK(out[1].kind == outcome_kind::busy);
    CHECK(out[1].reason == "wallet_busy");
    CHECK(out[2].kind == outcome_kind::busy);  // its destination is held
    CHECK(out[3].kind == outcome_kind::early);  // waits for the transfer, which chaining cannot take
    CHECK(f.status(dep_b.transaction_id) == "queued");
    CHECK(f.status(tr.transaction_id) == "queued");
    CHECK(f.entry_count(dep_b.transaction_id) == 0);
    CHECK(f.balance(a) == 1'010);

    // A batch that waits applies them once b is free, in order.
    auto patient = std::async(std::launch::async, [&] { return p.apply({items[1], items[2], items[3]}); });
    CHECK(patient.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);  // it waits for b
    hold.abort();
    out = patient.get();
    CHECK(out[0].kind == outcome_kind::completed);
    CHECK(out[1].kind == outcome_kind::completed);
    CHECK(out[2].kind == outcome_kind::completed);
    CHECK(f.balance(a) == 715);
    CHECK(f.balance(b) == 320);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a parked (failed) predecessor does not block its wallet", "[ledger][order]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto t1 = f.accept("deposit", a, std::nullopt, 10);
    auto t2 = f.accept("deposit", a, std::nullopt, 20);
    ledger::processor p(f.ledger_pool(), "test");
    auto ev = p.mark_failed(t1, "database_unavailable");
    REQUIRE(ev);
    CHECK(ev->status == "failed");
    CHECK(f.status(t1.transaction_id) == "failed");
    CHECK(apply_one(f, t2).kind == outcome_kind::completed);
    CHECK(f.balance(a) == 20);
    // The failed one, delivered again, is a duplicate with its recorded outcome.
    auto again = apply_one(f, t1);
    CHECK(again.kind == outcome_kind::duplicate);
    REQUIRE(again.event);
    CHECK(again.event->status == "failed");
    CHECK(f.reconcile().empty());
}

TEST_CASE("a wallet moves past failed transactions it reaches later, as source or as destination", "[ledger][order]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto b = f.open_wallet(testing::test_owner(2));
    auto c = f.open_wallet(testing::test_owner(3));
    auto a1 = f.accept("deposit", a, std::nullopt, 100);     // a: 1
    auto a2 = f.accept("withdrawal", a, std::nullopt, 10);   // a: 2, will fail
    auto a3 = f.accept("deposit", a, std::nullopt, 7);       // a: 3
    auto b1 = f.accept("deposit", b, std::nullopt, 50);      // b: 1
    auto c1 = f.accept("deposit", c, std::nullopt, 30);      // c: 1
    auto bc = f.accept("transfer", b, c, 5);                 // b: 2, c: 2 (destination), will fail
    auto c3 = f.accept("deposit", c, std::nullopt, 9);       // c: 3
    ledger::processor p(f.ledger_pool(), "test");
    // Parked while their wallets still wait for earlier ones: nothing moves yet.
    REQUIRE(p.mark_failed(a2, "apply_failed"));
    REQUIRE(p.mark_failed(bc, "apply_failed"));
    for (const auto* m : {&a1, &b1, &c1}) CHECK(apply_one(f, *m).kind == outcome_kind::completed);
    // a waits for 2 and c for 2, both failed: each moves past it to the next.
    CHECK(apply_one(f, a3).kind == outcome_kind::completed);
    CHECK(apply_one(f, c3).kind == outcome_kind::completed);
    CHECK(f.balance(a) == 107);
    CHECK(f.balance(b) == 50);
    CHECK(f.balance(c) == 39);
    CHECK(f.reconcile().empty());
}

TEST_CASE("a message applied twice is applied once", "[ledger][idempotency]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto dep = f.accept("deposit", a, std::nullopt, 250);
    auto mid = ids::uuid_v4();
    CHECK(apply_one(f, dep, mid).kind == outcome_kind::completed);
    auto again = apply_one(f, dep, mid);  // redelivery: same message id
    CHECK(again.kind == outcome_kind::duplicate);
    REQUIRE(again.event);
    CHECK(again.event->status == "completed");
    CHECK(again.event->event_id() == dep.transaction_id + ":completed");
    CHECK(apply_one(f, dep).kind == outcome_kind::duplicate);  // duplicate publish: another message id
    ledger::processor p(f.ledger_pool(), "test");
    auto dep2 = f.accept("deposit", a, std::nullopt, 5);
    auto both = p.apply({{ids::uuid_v4(), dep2}, {ids::uuid_v4(), dep2}});  // twice in one batch
    CHECK(both[0].kind == outcome_kind::completed);
    CHECK(both[1].kind == outcome_kind::duplicate);
    CHECK(f.entry_count(dep.transaction_id) == 2);
    CHECK(f.entry_count(dep2.transaction_id) == 2);
    CHECK(f.balance(a) == 255);
}

TEST_CASE("messages that match no accepted transaction are refused", "[ledger]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto dep = f.accept("deposit", a, std::nullopt, 100);
    auto forged = dep;
    forged.amount = 1'000'000;
    auto o = apply_one(f, forged);
    CHECK(o.kind == outcome_kind::invalid);
    CHECK(o.reason == "content_mismatch");
    auto unknown = dep;
    unknown.transaction_id = ids::uuid_v4();
    CHECK(apply_one(f, unknown).reason == "unknown_transaction");
    CHECK(f.status(dep.transaction_id) == "queued");
    CHECK(f.balance(a) == 0);
}

TEST_CASE("entries are immutable and other roles cannot write the ledger", "[ledger][security]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    f.fund(a, 100);
    auto ledger_role = [&](const std::string& sql) { return sqlstate_running(f.ledger_pool(), sql); };
    auto gateway_role = [&](const std::string& sql) { return sqlstate_running(f.gateway_pool(), sql); };
    // The service role itself has no UPDATE/DELETE (42501); the trigger backs it up.
    CHECK(ledger_role("UPDATE ledger.entries SET amount = amount + 1") == "42501");
    CHECK(ledger_role("DELETE FROM ledger.entries") == "42501");
    CHECK(ledger_role("TRUNCATE ledger.entries") == "42501");
    CHECK(gateway_role("UPDATE ledger.wallets SET balance = 1000000") == "42501");
    CHECK(gateway_role("INSERT INTO ledger.inbox (message_id) VALUES ('x')") == "42501");
    CHECK(gateway_role("SELECT count(*) FROM ledger.entries") == "42501");
    CHECK(gateway_role("SELECT count(*) FROM ledger.wallets") == "none");
    // Even if the owner grants itself the right back, the trigger refuses (rolled back here).
    auto trigger_state = sqlstate_of([&] {
        auto l = f.ledger_pool().acquire();
        pqxx::work w(*l);
        w.exec("GRANT UPDATE, DELETE ON ledger.entries TO CURRENT_USER");
        w.exec("DELETE FROM ledger.entries");
    });
    CHECK(trigger_state == "TX403");
    CHECK(ledger_role("UPDATE ledger.entries SET amount = amount + 1") == "42501");  // the grant did not stick
    CHECK(f.balance(a) == 100);
}

TEST_CASE("entries must refer to an existing transaction and account, which are permanent", "[ledger][security]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    f.fund(a, 100);
    std::string tx;
    {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        tx = r.exec_params("SELECT id::text FROM ledger.transactions WHERE wallet_id = $1", a)[0][0].as<std::string>();
    }
    auto as_ledger = [&](const std::string& sql) { return sqlstate_running(f.ledger_pool(), sql); };
    auto entry = [&](const std::string& tx_id, const std::string& wallet, const std::string& account) {
        return "INSERT INTO ledger.entries (transaction_id, wallet_id, system_account, amount, currency) VALUES ('" + tx_id +
               "', " + wallet + ", " + account + ", 5, 'EUR')";
    };
    const std::string w = std::to_string(a);
    // One bad row in a multi-row insert refuses the whole statement (23503, as a foreign key).
    CHECK(as_ledger(entry(ids::uuid_v4(), w, "NULL")) == "23503");
    CHECK(as_ledger(entry(tx, "987654321", "NULL")) == "23503");
    CHECK(as_ledger(entry(tx, "NULL", "'external:nowhere'")) == "23503");
    CHECK(as_ledger("INSERT INTO ledger.entries (transaction_id, wallet_id, system_account, amount, currency) VALUES ('" + tx +
                    "', " + w + ", NULL, 5, 'EUR'), ('" + ids::uuid_v4() + "', NULL, 'external:bank', -5, 'EUR')") == "23503");
    // The rows entries refer to cannot be deleted, truncated or re-keyed, even by their owner.
    CHECK(as_ledger("DELETE FROM ledger.transactions WHERE id = '" + tx + "'") == "TX403");
    CHECK(as_ledger("UPDATE ledger.transactions SET id = gen_random_uuid() WHERE id = '" + tx + "'") == "TX403");
    CHECK(as_ledger("DELETE FROM ledger.wallets WHERE id = " + w) == "TX403");
    CHECK(as_ledger("UPDATE ledger.wallets SET id = id + 1000000 WHERE id = " + w) == "TX403");
    CHECK(as_ledger("DELETE FROM ledger.system_accounts WHERE code = 'external:bank'") == "TX403");
    CHECK(as_ledger("TRUNCATE ledger.system_accounts") == "TX403");  // no foreign key refers to it any more
    // A well-formed entry still goes in (rolled back here; the ledger stays balanced).
    CHECK(sqlstate_of([&] {
              auto l = f.ledger_pool().acquire();
              pqxx::work wk(*l);
              wk.exec(entry(tx, w, "NULL"));
          }) == "none");
    CHECK(f.balance(a) == 100);
    CHECK(f.reconcile().empty());
}

TEST_CASE("seed-demo creates wallets 101-105 with a balanced opening balance, once", "[ledger][seed]") {
    testing::ledger_fixture f;
    ledger::seed_demo(f.ledger_pool(), 100'000);
    ledger::seed_demo(f.ledger_pool(), 100'000);  // idempotent
    for (std::int64_t id = 101; id <= 105; ++id) {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        auto row = r.exec_params("SELECT owner_id, balance, (SELECT count(*) FROM ledger.transactions t WHERE t.wallet_id = w.id "
                                 "AND t.idempotency_scope = 'seed') FROM ledger.wallets w WHERE id = $1",
                                 id);
        REQUIRE(row.size() == 1);
        CHECK(row[0][0].as<std::int64_t>() == id - 100);
        CHECK(row[0][2].as<int>() == 1);
    }
    // The seeded wallets work like any other: acceptance continues their sequence.
    auto m = f.accept("withdrawal", 101, std::nullopt, 1);
    CHECK(m.sequence >= 2);
    CHECK(apply_one(f, m).kind == outcome_kind::completed);  // never leave a wallet waiting on it
    CHECK(f.reconcile().empty());
}

TEST_CASE("a reversal that ends failed frees its transaction for another reversal; a live one does not", "[ledger][reversal]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto dep = f.accept("deposit", a, std::nullopt, 500);
    REQUIRE(apply_one(f, dep).kind == outcome_kind::completed);

    // A queued reversal holds the transaction: a second one is refused.
    auto rev1 = f.accept("reversal", a, std::nullopt, 500, "USD", dep.transaction_id);
    CHECK(sqlstate_of([&] { f.accept("reversal", a, std::nullopt, 500, "USD", dep.transaction_id); }) == "23505");
    // Its message ends in the error queue: the reversal is failed and the deposit may be reversed again.
    ledger::processor p(f.ledger_pool(), "test");
    auto ev = p.mark_failed(rev1, "apply_failed");
    REQUIRE(ev);
    CHECK(ev->status == "failed");
    auto rev2 = f.accept("reversal", a, std::nullopt, 500, "USD", dep.transaction_id);
    CHECK(rev2.transaction_id != rev1.transaction_id);
    REQUIRE(apply_one(f, rev2).kind == outcome_kind::completed);
    CHECK(f.balance(a) == 0);
    // Completed, it holds the transaction for good.
    CHECK(sqlstate_of([&] { f.accept("reversal", a, std::nullopt, 500, "USD", dep.transaction_id); }) == "23505");
    CHECK(f.reconcile().empty());
}

TEST_CASE("applying a transaction updates its row in place (a HOT update: no new index entries)", "[ledger][storage]") {
    testing::ledger_fixture f;
    auto a = f.open_wallet(testing::test_owner(1));
    auto hot_updates = [&] {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        return r.exec("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'ledger.transactions'::regclass")[0][0]
            .as<std::int64_t>();
    };
    auto before = hot_updates();
    std::vector<ledger::tx_message> txs;
    for (int i = 0; i < 20; ++i) txs.push_back(f.accept("deposit", a, std::nullopt, 1 + i));
    ledger::processor p(f.ledger_pool(), "test");
    std::vector<ledger::batch_item> batch;
    for (const auto& m : txs) batch.push_back({ids::uuid_v4(), m});
    for (const auto& o : p.apply(batch)) REQUIRE(o.kind == outcome_kind::completed);
    // The statistics collector reports a backend's counts when its transaction ends, within a moment.
    std::int64_t after = before;
    for (int i = 0; i < 50 && after - before < 20; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        after = hot_updates();
    }
    CHECK(after - before >= 20);
}
