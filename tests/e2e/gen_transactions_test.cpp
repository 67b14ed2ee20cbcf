// gen_transactions against the running system (gateway, 2 ledger-worker replicas, real
// broker and database): every accepted transaction reaches a final state, the summary
// agrees with the database, the non-existent wallet is refused and counted, and poison
// messages land in the error queue with a reason and change nothing else.
#include "demo_seed.hpp"
#include "gateway_fixture.hpp"

#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <thread>

using namespace txp;

TEST_CASE("gen_transactions: accepted transactions all end final and the summary matches the ledger", "[e2e][gen]") {
    testing::ledger_fixture f;
    testing::seed_demo_users(f);
    auto w1 = f.start_worker("gen-1");
    auto w2 = f.start_worker("gen-2");
    auto gw = testing::start_gateway("gen", {{"TXP_RATE_LIMIT_RPS", "0"}});

    std::int64_t before_entries = 0, before_parked = 0;
    amqp::admin admin(f.amqp_options());
    before_parked = admin.queue_depth("ledger.transactions.error");
    auto t0 = [&] {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        before_entries = r.exec("SELECT count(*) FROM ledger.entries")[0][0].as<std::int64_t>();
        return r.exec("SELECT now()")[0][0].as<std::string>();
    }();

    std::string out;
    auto cmd = std::string(TXP_GEN_TRANSACTIONS_BIN) + " 120 --wait --json --no-progress --poison 2 --seed 7 --concurrency 6" +
               " --gateway " + gw.base + " --amqp '" + testing::amqp_url() + "' 2>" + TXP_TEST_LOG_DIR + "/gen.err";
    REQUIRE(testing::run(cmd, &out) == 0);
    auto s = json::parse(out);
    auto accepted = s["accepted"].GetInt64();
    auto refused404 = s["refused"].HasMember("404") ? s["refused"]["404"].GetInt64() : 0;
    CHECK(s["attempted"].GetInt64() == 120);
    CHECK(accepted + refused404 == 120);
    CHECK(refused404 > 0);  // the non-existent wallet 999999 is refused by the gateway
    CHECK(s["transport_errors"].GetInt64() == 0);
    CHECK(s["not_final"].GetInt64() == 0);
    CHECK(s["poison_published"].GetInt64() == 2);

    // The database agrees with the summary.
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    auto rows = r.exec_params(
        "SELECT status, coalesce(reason, ''), count(*) FROM ledger.transactions "
        "WHERE created_at >= $1::timestamptz AND description LIKE 'gen_transactions #%' GROUP BY 1, 2",
        t0);
    std::int64_t db_total = 0, db_completed = 0, db_queued = 0;
    std::map<std::string, std::int64_t> db_rejected;
    for (const auto& row : rows) {
        auto n = row[2].as<std::int64_t>();
        db_total += n;
        auto st = row[0].as<std::string>();
        if (st == "completed") db_completed += n;
        else if (st == "rejected") db_rejected[row[1].as<std::string>()] += n;
        else if (st == "queued") db_queued += n;
    }
    CHECK(db_total == accepted);
    CHECK(db_queued == 0);
    CHECK(db_completed == s["completed"].GetInt64());
    for (const auto& [reason, n] : db_rejected) {
        INFO(reason);
        REQUIRE(s["rejected"].HasMember(reason.c_str()));
        CHECK(s["rejected"][reason.c_str()].GetInt64() == n);
    }
    // Poison: parked with a reason; every entry that appeared belongs to a completed transaction.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (admin.queue_depth("ledger.transactions.error") < before_parked + 2 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(admin.queue_depth("ledger.transactions.error") == before_parked + 2);
    auto new_entries = r.exec("SELECT count(*) FROM ledger.entries")[0][0].as<std::int64_t>() - before_entries;
    CHECK(new_entries == 2 * db_completed);
    std::vector<std::string> notes;
    CHECK(ledger::reconcile(f.ledger_pool(), notes).empty());

    // --duration over every wallet demo1 owns (read through GET /v1/wallets): it posts for the
    // time given, and the outcome latencies come from the transactions' own timestamps.
    std::string out2;
    auto cmd2 = std::string(TXP_GEN_TRANSACTIONS_BIN) +
                " 0 --duration 2 --users demo1 --all-wallets --missing-wallet 0 --wait --json --no-progress --concurrency 4" +
                " --gateway " + gw.base + " 2>>" + TXP_TEST_LOG_DIR + "/gen.err";
    REQUIRE(testing::run(cmd2, &out2) == 0);
    auto d = json::parse(out2);
    CHECK(d["wallets"].GetInt64() == 1);  // demo1 owns wallet 101
    CHECK(d["attempted"].GetInt64() > 0);
    CHECK(d["accepted"].GetInt64() == d["attempted"].GetInt64());
    CHECK(d["not_final"].GetInt64() == 0);
    CHECK(d["seconds"].GetDouble() >= 2.0);
    CHECK(d["outcome_latency_ms"]["p50"].GetDouble() > 0);
    CHECK(d["outcome_latency_ms"]["max"].GetDouble() >= d["outcome_latency_ms"]["p50"].GetDouble());
    CHECK(d["server_final_per_second"].GetDouble() > 0);

    gw.proc->terminate();
    CHECK(w1->terminate() == 0);
    CHECK(w2->terminate() == 0);
}
