// The acceptance batcher's guarantees, with many concurrent requests against a real gateway:
// a request that fails inside a group (idempotency conflict, unknown or foreign wallet,
// invalid transfer) gets its own error and does not fail its neighbours; every 202 names a
// committed transaction that is published and applied exactly once; and when a group's
// commit fails, none of its requests is answered 202 from it (they are run again one by one,
// so only the request that breaks the commit fails).
#include "gateway_fixture.hpp"

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

// Outbox rows (sent or not) whose message names this transaction.
std::int64_t outbox_rows_for(gateway_fixture& f, const std::string& tx_id) {
    auto l = f.ledger().gateway_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT count(*) FROM gateway.outbox WHERE body LIKE $1", "%\"transaction_id\":\"" + tx_id + "\"%")[0][0]
        .as<std::int64_t>();
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
    auto groups_before = metric(f, g.base, "txp_gateway_accept_groups_total");
    auto grouped_before = metric(f, g.base, "txp_gateway_accept_group_requests_total");

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

    // Every 202 is a committed transaction with exactly one outbox message; the ledger
    // applies each exactly once.
    REQUIRE(f.ledger().wait_final(accepted, std::chrono::seconds(60)) == 0);
    for (const auto& id : accepted) {
        INFO(id);
        CHECK(f.ledger().status(id) == "completed");
        CHECK(f.ledger().entry_count(id) == 2);
        CHECK(outbox_rows_for(f, id) == 1);
    }
    // Nothing else was accepted: no conflicting replay, nothing on b's wallet.
    for (int i = 0; i < conflicts; ++i) CHECK(transactions_with_key(f, a.id, "used-" + std::to_string(i)) == 1);
    auto wa = f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id), "", a.token, {}, g.base);
    CHECK(json_int(wa.body, "balance") == conflicts * 1 + static_cast<std::int64_t>(n / 2) * 10);
    auto wb = f.call("GET", "/v1/wallets/" + std::to_string(b.wallet_id), "", b.token, {}, g.base);
    CHECK(json_int(wb.body, "balance") == 0);
    CHECK(g.proc->terminate() == 0);
}

TEST_CASE("grouped acceptance: duplicates of one new key inside a group are one transaction", "[gateway][batch]") {
    auto& f = gateway_fixture::shared();
    auto g = testing::start_gateway("batch-dupes", {{"TXP_ACCEPT_COMMITTERS", "1"}});
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
    for (const auto& [k, ids] : ids_by_key) {
        INFO("key " << k);
        CHECK(ids.size() == 1);
        CHECK(created_by_key[k] == 1);  // exactly one answer made it; the others replay it
        CHECK(transactions_with_key(f, u.id, "dupe-" + run + "-" + k) == 1);
        CHECK(outbox_rows_for(f, *ids.begin()) == 1);
    }
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
