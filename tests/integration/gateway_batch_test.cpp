// The acceptance batcher's guarantees, with many concurrent requests against a real gateway:
// a request that fails inside a group (idempotency conflict, unknown or foreign wallet,
// invalid transfer) gets its own error and does not fail its neighbours; every 202 names a
// committed transaction that is published and applied exactly once; and when a group's
// commit fails, none of its requests is answered 202 from it (they are run again one by one,
// so only the request that breaks the commit fails).
#include "gateway_fixture.hpp"
#include "message_tap.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace txp;
using testing::gateway_fixture;
using testing::is_problem;
using testing::json_int;
using testing::json_string;

namespace {

std::vector<http::header> key(const std::string& k) { return {{"Idempotency-Key", k}}; }

std::string deposit(std::int64_t wallet, std::int64_t amount, const std::string& extra = "") {
    return R"({"wallet_id":)" + std::to_string(wallet) + R"(,"type":"deposit","amount":)" + std::to_string(amount) +
           R"(,"currency":"USD")" + extra + "}";
}

// A counter from a gateway's /metrics (0 when absent).
std::int64_t metric(gateway_fixture& f, const std::string& base, const std::string& name) {
    auto body = f.call("GET", "/metrics", "", "", {}, base).body;
    auto pos = body.find("\n" + name + " ");
    if (pos == std::string::npos) return 0;
    return std::stoll(body.substr(pos + 1 + name.size() + 1));
}

std::int64_t transactions_with_key(gateway_fixture& f, std::int64_t user, const std::string& k) {
    auto l = f.ledger().ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT count(*) FROM ledger.transactions WHERE idempotency_scope = $1 AND idempotency_key = $2",
                         "user:" + std::to_string(user), k)[0][0]
        .as<std::int64_t>();
}

// Copies of every ledger.transaction command published while the test runs.
testing::message_tap ledger_commands() { return testing::message_tap(amqp::commands_exchange, "ledger.transaction"); }

// Outbox rows (pending or kept after publishing) whose message names this transaction.
std::int64_t outbox_rows_for(gateway_fixture& f, const std::string& tx_id) {
    auto l = f.ledger().gateway_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT count(*) FROM gateway.outbox WHERE body LIKE $1", "%\"transaction_id\":\"" + tx_id + "\"%")[0][0]
        .as<std::int64_t>();
}

// The wallet's acceptance sequence numbers are 1..n without a gap or a double, and its counter
// is at n + 1 (a skipped number would hold the wallet's later transactions for ever).
void check_sequences_gap_free(gateway_fixture& f, std::int64_t wallet) {
    auto l = f.ledger().ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    auto row = r.exec_params(
        "SELECT count(*), count(DISTINCT s), coalesce(min(s), 1), coalesce(max(s), 0), "
        "       (SELECT next_seq FROM ledger.wallet_sequences WHERE wallet_id = $1) "
        "FROM (SELECT sequence AS s FROM ledger.transactions WHERE wallet_id = $1 "
        "      UNION ALL SELECT to_sequence FROM ledger.transactions WHERE to_wallet_id = $1) x",
        wallet)[0];
    INFO("wallet " << wallet);
    auto n = row[0].as<std::int64_t>();
    CHECK(row[1].as<std::int64_t>() == n);
    CHECK(row[2].as<std::int64_t>() == 1);
    CHECK(row[3].as<std::int64_t>() == n);
    CHECK(row[4].as<std::int64_t>() == n + 1);
}

// Runs the requests from `threads` client threads at once (each its own connections).
template <typename Request>
void run_concurrently(std::size_t n, int threads, Request&& request) {
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
            for (std::size_t i = next++; i < n; i = next++) request(i);
        });
    }
    for (auto& t : pool) t.join();
}

}  // namespace

TEST_CASE("grouped acceptance: failing requests get their own errors, their neighbours are accepted once",
          "[gateway][batch]") {
    auto& f = gateway_fixture::shared();
    f.base();  // the shared gateway and worker run, so accepted transactions are applied
    // One committer and large groups: concurrent requests certainly share transactions.
    auto g = testing::start_gateway("batch", {{"TXP_ACCEPT_COMMITTERS", "1"}, {"TXP_ACCEPT_BATCH", "64"}});
    auto published = ledger_commands();
    auto a = f.new_user("batch_a", g.base);
    auto b = f.new_user("batch_b", g.base);
    // Keys already used with another amount: reusing them is a conflict (TX409).
    const int conflicts = 40;
    std::vector<std::string> earlier_ids;
    for (int i = 0; i < conflicts; ++i) {
        auto r = f.call("POST", "/v1/transactions", deposit(a.wallet_id, 1), a.token, key("used-" + std::to_string(i)), g.base);
        REQUIRE(r.status == 202);
        earlier_ids.push_back(json_string(r.body, "transaction_id"));
    }
    REQUIRE(f.ledger().wait_final(earlier_ids, std::chrono::seconds(60)) == 0);
    // Transaction ids are time-ordered (UUID version 7): later ones sort after earlier ones.
    for (const auto& id : earlier_ids) CHECK(id.substr(14, 1) == "7");
    CHECK(earlier_ids.back() > earlier_ids.front());
    auto groups_before = metric(f, g.base, "txp_gateway_accept_groups_total");
    auto grouped_before = metric(f, g.base, "txp_gateway_accept_group_requests_total");
    auto per_request_before = metric(f, g.base, "txp_gateway_accept_per_request_total");

    // 200 requests: 100 good deposits (unique keys), 40 conflicting replays, 20 to a wallet
    // that does not exist, 20 to another user's wallet, 20 transfers to the same wallet.
    enum kind { good, conflict, unknown_wallet, foreign_wallet, invalid };
    const std::size_t n = 200;
    auto kind_of = [&](std::size_t i) {
        if (i % 2 == 0) return good;
        auto j = i / 2;
        if (j < static_cast<std::size_t>(conflicts)) return conflict;
        if (j < conflicts + 20u) return unknown_wallet;
        if (j < conflicts + 40u) return foreign_wallet;
        return invalid;
    };
    std::vector<http::client_response> answers(n);
    const std::string run = testing::unique_suffix();
    run_concurrently(n, 64, [&](std::size_t i) {
        std::string body;
        std::string k = "good-" + run + "-" + std::to_string(i);
        switch (kind_of(i)) {
            case good: body = deposit(a.wallet_id, 10); break;
            case conflict:
                body = deposit(a.wallet_id, 2);
                k = "used-" + std::to_string(i / 2);
                break;
            case unknown_wallet: body = deposit(999999999, 10); break;
            case foreign_wallet: body = deposit(b.wallet_id, 10); break;
            case invalid:
                body = R"({"wallet_id":)" + std::to_string(a.wallet_id) + R"(,"type":"transfer","amount":5,"currency":"USD","to_wallet_id":)" +
                       std::to_string(a.wallet_id) + "}";
                break;
        }
        answers[i] = f.call("POST", "/v1/transactions", body, a.token, key(k), g.base);
    });

    std::vector<std::string> accepted;
    for (std::size_t i = 0; i < n; ++i) {
        INFO("request " << i << ": " << answers[i].status << " " << answers[i].body);
        switch (kind_of(i)) {
            case good:
                REQUIRE(answers[i].status == 202);
                CHECK(json_string(answers[i].body, "status") == "queued");
                CHECK_FALSE(answers[i].header_value("Idempotent-Replayed").has_value());
                accepted.push_back(json_string(answers[i].body, "transaction_id"));
                break;
            case conflict: CHECK(is_problem(answers[i], 409, "idempotency-conflict")); break;
            case unknown_wallet:
            case foreign_wallet: CHECK(is_problem(answers[i], 404, "not-found")); break;
            case invalid: CHECK(is_problem(answers[i], 422, "unprocessable")); break;
        }
    }
    REQUIRE(accepted.size() == n / 2);
    CHECK(std::set<std::string>(accepted.begin(), accepted.end()).size() == accepted.size());

    // The requests really were grouped: fewer commits than requests.
    auto groups = metric(f, g.base, "txp_gateway_accept_groups_total") - groups_before;
    auto grouped = metric(f, g.base, "txp_gateway_accept_group_requests_total") - grouped_before;
    CHECK(grouped == static_cast<std::int64_t>(n));
    CHECK(groups < grouped);
    // The good requests were accepted by the set-based fast path; exactly the others went
    // through the per-request path that answers them.
    CHECK(metric(f, g.base, "txp_gateway_accept_per_request_total") - per_request_before == static_cast<std::int64_t>(n / 2));

    // Every 202 is a committed transaction published exactly once; the ledger applies each
    // exactly once; and the outbox keeps no row of it once published (TXP_OUTBOX_KEEP_SENT 0).
    REQUIRE(f.ledger().wait_final(accepted, std::chrono::seconds(60)) == 0);
    published.settle();
    for (const auto& id : accepted) {
        INFO(id);
        CHECK(f.ledger().status(id) == "completed");
        CHECK(f.ledger().entry_count(id) == 2);
        CHECK(published.count("transaction_id", id) == 1);
        CHECK(outbox_rows_for(f, id) == 0);
    }
    // Nothing else was accepted: no conflicting replay, nothing on b's wallet.
    for (int i = 0; i < conflicts; ++i) CHECK(transactions_with_key(f, a.id, "used-" + std::to_string(i)) == 1);
    auto wa = f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id), "", a.token, {}, g.base);
    CHECK(json_int(wa.body, "balance") == conflicts * 1 + static_cast<std::int64_t>(n / 2) * 10);
    auto wb = f.call("GET", "/v1/wallets/" + std::to_string(b.wallet_id), "", b.token, {}, g.base);
    CHECK(json_int(wb.body, "balance") == 0);
    check_sequences_gap_free(f, a.wallet_id);
    check_sequences_gap_free(f, b.wallet_id);
    CHECK(g.proc->terminate() == 0);
}

TEST_CASE("grouped acceptance: duplicates of one new key, in a group or in concurrent groups, are one transaction",
          "[gateway][batch]") {
    auto& f = gateway_fixture::shared();
    f.base();  // the shared worker applies what is accepted
    auto committers = GENERATE(as<std::string>{}, "1", "4");
    INFO(committers << " committers");
    auto g = testing::start_gateway("batch-dupes", {{"TXP_ACCEPT_COMMITTERS", committers}});
    auto published = ledger_commands();
    auto u = f.new_user("batch_dupes", g.base);
    const std::string run = testing::unique_suffix();
    const std::size_t n = 120;  // 40 keys, three requests each, all at once
    std::vector<http::client_response> answers(n);
    run_concurrently(n, 60, [&](std::size_t i) {
        answers[i] = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 3), u.token,
                            key("dupe-" + run + "-" + std::to_string(i % 40)), g.base);
    });
    std::map<std::string, std::set<std::string>> ids_by_key;
    std::map<std::string, int> created_by_key;
    for (std::size_t i = 0; i < n; ++i) {
        INFO(answers[i].status << " " << answers[i].body);
        REQUIRE(answers[i].status == 202);
        auto k = std::to_string(i % 40);
        ids_by_key[k].insert(json_string(answers[i].body, "transaction_id"));
        if (!answers[i].header_value("Idempotent-Replayed").has_value()) ++created_by_key[k];
    }
    // Published once each: wait until the ledger has them all, then count the copies.
    std::vector<std::string> all_ids;
    for (const auto& [k, ids] : ids_by_key) all_ids.insert(all_ids.end(), ids.begin(), ids.end());
    REQUIRE(f.ledger().wait_final(all_ids, std::chrono::seconds(60)) == 0);
    published.settle();
    for (const auto& [k, ids] : ids_by_key) {
        INFO("key " << k);
        CHECK(ids.size() == 1);
        CHECK(created_by_key[k] == 1);  // exactly one answer made it; the others replay it
        CHECK(transactions_with_key(f, u.id, "dupe-" + run + "-" + k) == 1);
        CHECK(published.count("transaction_id", *ids.begin()) == 1);
    }
    check_sequences_gap_free(f, u.wallet_id);
    CHECK(g.proc->terminate() == 0);
}

TEST_CASE("grouped acceptance: a key a concurrent group took first is answered as a replay, and no sequence number is skipped",
          "[gateway][batch]") {
    auto& f = gateway_fixture::shared();
    f.base();  // the shared worker applies what is accepted
    auto g = testing::start_gateway("batch-race", {{"TXP_ACCEPT_COMMITTERS", "2"}});
    auto published = ledger_commands();
    auto u = f.new_user("batch_race", g.base);
    const std::string run = testing::unique_suffix();
    auto waiting_groups = [&] {
        auto l = f.ledger().gateway_pool().acquire();
        pqxx::read_transaction r(*l);
        return r.exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'api-gateway-accept' "
                      "AND wait_event_type = 'Lock' AND query LIKE '%accept_fast%'")[0][0]
            .as<int>();
    };
    auto wait_for_groups = [&](int n) {
        for (int i = 0; i < 200 && waiting_groups() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return waiting_groups();
    };
    auto per_request_before = metric(f, g.base, "txp_gateway_accept_per_request_total");

    // Hold the wallet's sequence counter, so that both committers' groups, each with the same
    // new key, pass the check for an earlier use of the key and then wait for the counter.
    auto holder = f.ledger().ledger_pool().acquire();
    pqxx::work hold(*holder);
    hold.exec_params("SELECT 1 FROM ledger.wallet_sequences WHERE wallet_id = $1 FOR UPDATE", u.wallet_id);
    const std::string k = "race-" + run;
    http::client_response first, second;
    std::thread t1([&] { first = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 4), u.token, key(k), g.base); });
    auto first_waiting = wait_for_groups(1);
    std::thread t2([&] { second = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 4), u.token, key(k), g.base); });
    auto both_waiting = wait_for_groups(2);
    hold.commit();
    t1.join();
    t2.join();
    REQUIRE(first_waiting == 1);
    REQUIRE(both_waiting == 2);

    // One group recorded the key; the other found it taken at its INSERT, kept nothing, and
    // answered through the per-request path: the same transaction, as a replay.
    INFO(first.status << " " << first.body << " / " << second.status << " " << second.body);
    REQUIRE(first.status == 202);
    REQUIRE(second.status == 202);
    auto id = json_string(first.body, "transaction_id");
    CHECK(json_string(second.body, "transaction_id") == id);
    CHECK(first.header_value("Idempotent-Replayed").has_value() != second.header_value("Idempotent-Replayed").has_value());
    CHECK(metric(f, g.base, "txp_gateway_accept_per_request_total") - per_request_before == 1);
    CHECK(transactions_with_key(f, u.id, k) == 1);
    REQUIRE(f.ledger().wait_final({id}, std::chrono::seconds(60)) == 0);
    published.settle();
    CHECK(published.count("transaction_id", id) == 1);

    // The wallet's next transaction gets the next number: both are applied, in order.
    auto next = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 5), u.token, key(k + "-next"), g.base);
    REQUIRE(next.status == 202);
    REQUIRE(f.ledger().wait_final({id, json_string(next.body, "transaction_id")}, std::chrono::seconds(60)) == 0);
    CHECK(f.ledger().status(json_string(next.body, "transaction_id")) == "completed");
    check_sequences_gap_free(f, u.wallet_id);
    auto w = f.call("GET", "/v1/wallets/" + std::to_string(u.wallet_id), "", u.token, {}, g.base);
    CHECK(json_int(w.body, "balance") == 9);
    CHECK(g.proc->terminate() == 0);
}

TEST_CASE("grouped acceptance: a request that breaks its group's commit fails alone, and is not accepted",
          "[gateway][batch]") {
    auto& f = gateway_fixture::shared();
    // A deferred trigger fails the COMMIT of any transaction that accepted a poisoned request.
    const std::string poison = "poison-" + testing::unique_suffix();
    const std::string fn = "test_fail_commit_" + testing::unique_suffix();
    {
        auto l = f.ledger().ledger_pool().acquire();
        pqxx::work w(*l);
        w.exec("CREATE FUNCTION ledger." + fn + "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.description = " + w.quote(poison) + " THEN RAISE EXCEPTION 'commit refused for the test'; END IF; "
               "RETURN NULL; END $$");
        w.exec("CREATE CONSTRAINT TRIGGER " + fn + " AFTER INSERT ON ledger.transactions DEFERRABLE INITIALLY DEFERRED "
               "FOR EACH ROW EXECUTE FUNCTION ledger." + fn + "()");
        w.commit();
    }
    auto drop = [&] {
        auto l = f.ledger().ledger_pool().acquire();
        pqxx::work w(*l);
        w.exec("DROP TRIGGER IF EXISTS " + fn + " ON ledger.transactions");
        w.exec("DROP FUNCTION IF EXISTS ledger." + fn + "()");
        w.commit();
    };
    try {
        auto g = testing::start_gateway("batch-poison", {{"TXP_ACCEPT_COMMITTERS", "1"}});
        auto u = f.new_user("batch_poison", g.base);
        const std::string run = testing::unique_suffix();
        const std::size_t n = 128;
        std::vector<http::client_response> answers(n);
        auto key_of = [&](std::size_t i) { return "p-" + run + "-" + std::to_string(i); };
        auto poisoned = [](std::size_t i) { return i % 16 == 5; };
        run_concurrently(n, 64, [&](std::size_t i) {
            auto extra = poisoned(i) ? R"(,"description":")" + poison + "\"" : std::string();
            answers[i] = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 1, extra), u.token, key(key_of(i)), g.base);
        });
        for (std::size_t i = 0; i < n; ++i) {
            INFO("request " << i << ": " << answers[i].status << " " << answers[i].body);
            if (poisoned(i)) {
                // Refused with its group's commit, then alone: nothing of it was committed.
                CHECK(is_problem(answers[i], 500, "internal"));
                CHECK(transactions_with_key(f, u.id, key_of(i)) == 0);
            } else {
                // Its group's commit failed too, but run again without the poisoned request it succeeded.
                REQUIRE(answers[i].status == 202);
                CHECK(f.ledger().status(json_string(answers[i].body, "transaction_id")) != "missing");
                CHECK(transactions_with_key(f, u.id, key_of(i)) == 1);
            }
        }
        auto split = metric(f, g.base, "txp_gateway_accept_group_failures_total");
        CHECK(split == static_cast<std::int64_t>(n / 16));  // only the poisoned requests' own (single) groups failed
        CHECK(metric(f, g.base, "txp_gateway_accept_group_splits_total") > 0);  // they did share groups with others
        // A refused request was never accepted: sent again (unpoisoned), it is a new transaction.
        for (std::size_t i = 0; i < n; ++i) {
            if (!poisoned(i)) continue;
            auto again = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 1), u.token, key(key_of(i)), g.base);
            INFO(again.body);
            CHECK(again.status == 202);
            CHECK_FALSE(again.header_value("Idempotent-Replayed").has_value());
        }
        CHECK(g.proc->terminate() == 0);
    } catch (...) {
        drop();
        throw;
    }
    drop();
}

TEST_CASE("admission: at TXP_MAX_IN_FLIGHT a money request waits for outcomes; one that waits too long gets 503 and is not accepted",
          "[gateway][batch][admission]") {
    using namespace std::chrono_literals;
    auto& f = gateway_fixture::shared();
    f.base();  // the shared worker applies what is accepted
    auto g = testing::start_gateway("admission", {{"TXP_MAX_IN_FLIGHT", "3"}, {"TXP_ADMISSION_WAIT", "4s"}});
    auto u = f.new_user("admission", g.base);
    const std::string run = testing::unique_suffix();
    auto k = [&](int i) { return key("admission-" + run + "-" + std::to_string(i)); };

    // Hold the wallet row as a worker applying to it would: the worker waits, no outcome comes.
    auto holder = f.ledger().ledger_pool().acquire();
    auto hold = std::make_unique<pqxx::work>(*holder);
    hold->exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1 FOR NO KEY UPDATE", u.wallet_id);
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        auto r = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 10), u.token, k(i), g.base);
        REQUIRE(r.status == 202);
        ids.push_back(json_string(r.body, "transaction_id"));
    }
    CHECK(metric(f, g.base, "txp_gateway_in_flight") == 3);

    // The fourth finds no room, waits TXP_ADMISSION_WAIT, and is refused: nothing recorded.
    auto t0 = std::chrono::steady_clock::now();
    auto refused = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 10), u.token, k(3), g.base);
    auto waited = std::chrono::steady_clock::now() - t0;
    INFO(refused.status << " " << refused.body);
    CHECK(is_problem(refused, 503, "overloaded"));
    CHECK(refused.header_value("Retry-After") == "1");
    CHECK(waited >= 3500ms);
    CHECK(transactions_with_key(f, u.id, "admission-" + run + "-3") == 0);
    CHECK(metric(f, g.base, "txp_gateway_overloaded_total") == 1);
    // Other routes are not held back.
    CHECK(f.call("GET", "/v1/wallets/" + std::to_string(u.wallet_id), "", u.token, {}, g.base).status == 200);

    // Sent again with the same key (and Prefer: wait), it waits until the outcomes of the
    // first three free room, is accepted, and is answered with its own outcome.
    http::client_response later;
    auto wait_headers = k(3);
    wait_headers.push_back({"Prefer", "wait=20"});
    std::thread again([&] {
        try {
            later = f.call("POST", "/v1/transactions", deposit(u.wallet_id, 10), u.token, wait_headers, g.base);
        } catch (const std::exception& e) {
            later.status = 0;
            later.body = e.what();
        }
    });
    std::this_thread::sleep_for(300ms);
    hold->commit();
    again.join();
    INFO(later.status << " " << later.body);
    REQUIRE(later.status == 200);
    CHECK(json_string(later.body, "status") == "completed");
    ids.push_back(json_string(later.body, "transaction_id"));
    REQUIRE(f.ledger().wait_final(ids, std::chrono::seconds(60)) == 0);
    for (const auto& id : ids) CHECK(f.ledger().status(id) == "completed");
    CHECK(transactions_with_key(f, u.id, "admission-" + run + "-3") == 1);
    auto w = f.call("GET", "/v1/wallets/" + std::to_string(u.wallet_id), "", u.token, {}, g.base);
    CHECK(json_int(w.body, "balance") == 40);
    // Every outcome heard: nothing counts as in flight any more.
    for (int i = 0; i < 100 && metric(f, g.base, "txp_gateway_in_flight") != 0; ++i) std::this_thread::sleep_for(100ms);
    CHECK(metric(f, g.base, "txp_gateway_in_flight") == 0);
    CHECK(g.proc->terminate() == 0);
}
