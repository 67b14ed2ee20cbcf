// plaid-sync as real processes against the emulator process, the broker and the database:
// link and exchange, a full sync of a big history over many pages, refresh (pending to
// posted), mutation during pagination, 429 then success, login required and repair through
// a verified webhook, two jobs for one item, mirroring into the ledger with corrections
// (ledger-worker running), removing an item, and the token sealed at rest.
#include "plaid_support.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/schema.hpp"
#include "txp/common/money.hpp"
#include "txp/http/server.hpp"
#include "txp/plaid/webhook.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <set>

using namespace txp;
using testing::plaid_fixture;

namespace {

std::string last_sync_at(plaid_fixture& f, const std::string& item) {
    return f.db_scalar("SELECT last_sync_at::text FROM plaid.items WHERE item_id = $1", item);
}

bool synced(plaid_fixture& f, const std::string& item) {
    return f.db_scalar("SELECT last_sync_status FROM plaid.items WHERE item_id = $1", item) == "ok";
}

std::int64_t outbox_count(plaid_fixture& f, const std::string& item, const std::string& routing_key) {
    return std::stoll(f.db_scalar("SELECT count(*) FROM plaid.outbox WHERE routing_key = '" + routing_key +
                                      "' AND body::jsonb->>'item_id' = $1",
                                  item));
}

// Sum of the emulator's amounts (cents, exact) per pending flag, for one account or all.
std::int64_t emulator_sum(plaid_fixture& f, const std::string& item, bool posted_only, const std::string& account = "") {
    auto body = f.emulator().control("GET", "/emulator/items/" + item);
    rapidjson::Document d;
    d.Parse<rapidjson::kParseNumbersAsStringsFlag>(body.c_str());
    std::int64_t sum = 0;
    for (const auto& t : d["transactions"].GetArray()) {
        if (posted_only && t["pending"].GetBool()) continue;
        if (!account.empty() && account != t["account_id"].GetString()) continue;
        sum += *money::parse_decimal(t["amount"].GetString(), 2);
    }
    return sum;
}

void request_sync(plaid_fixture& f, const std::string& item) {
    plaid_sync::request_sync(f.api(), 7001, item, "test-" + testing::unique_suffix());
}

}  // namespace

TEST_CASE("link, exchange, accounts; a 10,000-transaction history syncs over many pages, exactly", "[plaid][sync]") {
    plaid_fixture f;
    auto item = f.link(7001, "user_bulk_10000");
    REQUIRE(item.accounts.size() == 4);
    CHECK(item.status == "active");
    CHECK(item.institution_name == std::optional<std::string>("First Platypus Bank"));
    const auto& checking = item.accounts[0];
    CHECK(checking.mask == std::optional<std::string>("0000"));
    CHECK(checking.available == std::optional<std::int64_t>(10000));
    CHECK(checking.current == std::optional<std::int64_t>(11000));
    CHECK(item.accounts[3].limit == std::optional<std::int64_t>(200000));
    CHECK(outbox_count(f, item.item_id, "plaid.item_linked") == 1);
    CHECK(outbox_count(f, item.item_id, "plaid.sync") == 1);

    // The access token is sealed: the stored bytes contain neither it nor its prefix.
    auto token = f.access_token(item.item_id);
    CHECK(token.rfind("access-sandbox-", 0) == 0);
    auto stored = f.db_scalar("SELECT encode(access_token_enc, 'escape') FROM plaid.items WHERE item_id = $1", item.item_id);
    CHECK(stored.find(token) == std::string::npos);
    CHECK(stored.find("access-sandbox") == std::string::npos);
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.items WHERE item_id = $1 AND position(convert_to($1, 'UTF8') IN access_token_enc) = 0",
                      item.item_id) == "1");

    auto sync_calls = f.requests("/transactions/sync", 200);
    auto started = std::chrono::steady_clock::now();
    auto proc = f.start_sync("full");
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }, std::chrono::seconds(60)));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    WARN("first sync of 10,000 transactions (process start included): " << took << " ms");
    CHECK(f.requests("/transactions/sync", 200) - sync_calls == 20);  // 500 per page

    auto in_emulator = f.emulator_transactions(item.item_id);
    auto in_db = f.db_transactions(item.item_id);
    CHECK(in_emulator.size() == 10000);
    CHECK(in_db == in_emulator);  // same ids, same pending flags
    // Amounts converted exactly from Plaid's decimal text.
    CHECK(f.db_scalar("SELECT sum(amount)::text FROM plaid.transactions WHERE item_id = $1", item.item_id) ==
          std::to_string(emulator_sum(f, item.item_id, false)));
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.transactions WHERE item_id = $1 AND amount IS NULL", item.item_id) == "0");
    CHECK(outbox_count(f, item.item_id, "plaid.sync_completed") == 1);
    CHECK(proc->terminate() == 0);
}

TEST_CASE("refresh posts pending ones: pending replaced by posted, no duplicates; mutation and 429 recover", "[plaid][sync]") {
    plaid_fixture f;
    auto item = f.link(7001, "user_bulk_600");
    auto proc = f.start_sync("refresh", {{"TXP_PLAID_PAGE_SIZE", "100"}});
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }));
    auto before = f.db_transactions(item.item_id);
    std::set<std::string> pending;
    for (const auto& [id, p] : before)
        if (p) pending.insert(id);
    REQUIRE(pending.size() >= 2);

    SECTION("refresh") {
        auto t0 = last_sync_at(f, item.item_id);
        f.client().transactions_refresh(f.access_token(item.item_id));
        request_sync(f, item.item_id);
        REQUIRE(plaid_fixture::eventually([&] { return last_sync_at(f, item.item_id) != t0; }));
        auto after = f.db_transactions(item.item_id);
        CHECK(after == f.emulator_transactions(item.item_id));
        for (const auto& id : pending) CHECK(after.count(id) == 0);  // the pending versions are gone
        auto pointing = std::stoll(f.db_scalar(
            "SELECT count(*) FROM plaid.transactions WHERE item_id = $1 AND NOT pending AND pending_transaction_id IS NOT NULL",
            item.item_id));
        CHECK(pointing == static_cast<std::int64_t>(pending.size()));
        CHECK(after.size() == before.size() + 2);  // two new pending ones, nothing doubled
    }

    SECTION("mutation during pagination: nothing partial is saved, and the sync completes") {
        // A fresh change lands while page 3 is fetched, every time: the job gives up after its
        // restarts and goes to a retry tier with nothing saved.
        auto failed_pages = f.requests("/transactions/sync", 400);
        auto other = f.link(7001, "user_bulk_600");
        f.emulator().control("POST", "/emulator/faults",
                             R"({"type":"mutation_during_pagination","page":3,"count":0,"item_id":")" + other.item_id + R"("})");
        REQUIRE(plaid_fixture::eventually([&] { return f.requests("/transactions/sync", 400) - failed_pages >= 6; }));
        CHECK(f.db_scalar("SELECT count(*) FROM plaid.transactions WHERE item_id = $1", other.item_id) == "0");
        CHECK(f.db_scalar("SELECT cursor FROM plaid.items WHERE item_id = $1", other.item_id).empty());
        f.emulator().control("DELETE", "/emulator/faults");
        REQUIRE(plaid_fixture::eventually([&] { return synced(f, other.item_id); }, std::chrono::seconds(30)));
        auto in_db = f.db_transactions(other.item_id);
        CHECK(in_db == f.emulator_transactions(other.item_id));
        CHECK(in_db.size() > 600);  // the changes made while paging arrived too
    }

    SECTION("429, then success through the retry tier") {
        auto t0 = last_sync_at(f, item.item_id);
        auto limited = f.requests("/transactions/sync", 429);
        f.emulator().control("POST", "/emulator/faults", R"({"type":"rate_limit","endpoint":"/transactions/sync","count":1})");
        f.emulator().control("POST", "/emulator/items/" + item.item_id + "/transactions",
                             R"({"action":"add","amount":"-25.5","webhook":"false"})");
        request_sync(f, item.item_id);
        REQUIRE(plaid_fixture::eventually([&] { return last_sync_at(f, item.item_id) != t0; }));
        CHECK(f.requests("/transactions/sync", 429) == limited + 1);
        CHECK(f.db_transactions(item.item_id) == f.emulator_transactions(item.item_id));
        CHECK(f.db_scalar("SELECT count(*) FROM plaid.transactions WHERE item_id = $1 AND amount = -2550", item.item_id) == "1");
    }
    CHECK(proc->terminate() == 0);
}

TEST_CASE("two sync jobs for one item at once: one syncs, the other asks for one more round", "[plaid][sync][concurrency]") {
    plaid_fixture f;
    auto item = f.link(7001, "user_bulk_600");  // its link job waits in the queue
    // Slow pages, so that the second job arrives while the first one runs.
    f.emulator().control("POST", "/emulator/faults", R"({"type":"latency","endpoint":"/transactions/sync","latency_ms":150,"count":0})");
    request_sync(f, item.item_id);
    auto calls = f.requests("/transactions/sync", 200);
    auto a = f.start_sync("twin-a", {{"TXP_PLAID_PAGE_SIZE", "100"}});
    auto b = f.start_sync("twin-b", {{"TXP_PLAID_PAGE_SIZE", "100"}});
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }));
    // Wait for both jobs to be done (the follow-up round is one page from the saved cursor).
    amqp::admin admin(f.ledger().amqp_options());
    REQUIRE(plaid_fixture::eventually([&] {
        return f.requests("/transactions/sync", 200) - calls >= 6 && admin.queue_depth("plaid.sync") == 0;
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a parallel sync would still be paging
    // Two syncs in parallel would have fetched 6 pages each (12). One sync and a follow-up
    // round fetch 6 + 1; when the second request lands before the running sync read its
    // cursor, that sync already covers it and there is no follow-up: 6.
    auto pages = f.requests("/transactions/sync", 200) - calls;
    CHECK(pages >= 6);
    CHECK(pages <= 7);
    CHECK(f.db_transactions(item.item_id) == f.emulator_transactions(item.item_id));
    CHECK(f.db_scalar("SELECT sync_requested::text FROM plaid.items WHERE item_id = $1", item.item_id) == "false");
    CHECK(a->terminate() == 0);
    CHECK(b->terminate() == 0);
}

TEST_CASE("ITEM_LOGIN_REQUIRED stops syncing until LOGIN_REPAIRED arrives as a verified webhook", "[plaid][sync][webhook]") {
    plaid_fixture f;
    // The gateway's webhook route, in small: verify, then hand to the library.
    plaid::webhook_verifier verifier(plaid::webhook_verifier::fetch_with(f.client()));
    std::mutex mu;
    std::vector<std::string> verdicts;
    http::server hook({}, [&](http::request&& r, std::shared_ptr<http::response_writer> w) {
        auto v = verifier.verify(r.header_value("Plaid-Verification"), r.body);
        {
            std::lock_guard lk(mu);
            verdicts.push_back(plaid::to_string(v));
        }
        http::response resp;
        if (v != plaid::webhook_verdict::ok) {
            resp.status = 401;
        } else {
            plaid_sync::handle_webhook(f.api(), r.body, r.request_id);
        }
        w->send(std::move(resp));
    });
    hook.start();
    f.emulator().control("POST", "/emulator/config",
                         R"({"webhook_url":"http://127.0.0.1:)" + std::to_string(hook.port()) + R"(/v1/plaid/webhook"})");

    auto item = f.link(7001, "user_good");
    auto proc = f.start_sync("login");
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }));

    // The bank wants the user to log in again; the next sync finds out.
    f.emulator().control("POST", "/emulator/items/" + item.item_id + "/login_required");
    REQUIRE(plaid_fixture::eventually([&] {
        return f.db_scalar("SELECT status FROM plaid.items WHERE item_id = $1", item.item_id) == "login_required";
    }));
    CHECK(f.db_scalar("SELECT error_code FROM plaid.items WHERE item_id = $1", item.item_id) == "ITEM_LOGIN_REQUIRED");
    CHECK(outbox_count(f, item.item_id, "plaid.item_error") == 1);
    CHECK_THROWS_AS(request_sync(f, item.item_id), plaid_sync::request_error);

    // The user repairs it; Plaid says so with a signed webhook; syncing resumes.
    auto t0 = last_sync_at(f, item.item_id);
    f.emulator().control("POST", "/emulator/items/" + item.item_id + "/transactions", R"({"action":"add","amount":"3.21","webhook":"false"})");
    f.emulator().control("POST", "/emulator/items/" + item.item_id + "/repair");
    REQUIRE(plaid_fixture::eventually([&] { return last_sync_at(f, item.item_id) != t0; }));
    CHECK(f.db_scalar("SELECT status FROM plaid.items WHERE item_id = $1", item.item_id) == "active");
    CHECK(outbox_count(f, item.item_id, "plaid.login_repaired") == 1);
    CHECK(f.db_transactions(item.item_id) == f.emulator_transactions(item.item_id));
    {
        std::lock_guard lk(mu);
        CHECK(std::count(verdicts.begin(), verdicts.end(), "ok") >= 2);  // ERROR and LOGIN_REPAIRED
        CHECK(std::count(verdicts.begin(), verdicts.end(), "ok") == static_cast<long>(verdicts.size()));
    }
    CHECK(proc->terminate() == 0);
    hook.stop(std::chrono::milliseconds(100));
}

TEST_CASE("posted bank transactions mirror into the ledger; corrections reverse them", "[plaid][sync][ledger]") {
    plaid_fixture f;
    auto& lf = f.ledger();
    auto owner = 7001;
    auto wallet = lf.open_wallet(owner);
    const std::int64_t funding = 10'000'000;
    lf.fund(wallet, funding);

    auto item = f.link(owner, "user_transactions_dynamic");
    const auto checking = item.accounts[0].account_id;
    auto linked = plaid_sync::link_account_to_wallet(f.api(), owner, checking, wallet);
    CHECK(linked.wallet_id == std::optional<std::int64_t>(wallet));
    CHECK_THROWS_AS(plaid_sync::link_account_to_wallet(f.api(), owner + 1, checking, wallet), plaid_sync::request_error);

    auto worker = lf.start_worker("plaid-mirror");
    auto proc = f.start_sync("mirror");
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }));

    auto mirrored_ids = [&] {
        auto l = f.plaid_pool().acquire();
        pqxx::read_transaction r(*l);
        std::vector<std::string> ids;
        for (const auto& row : r.exec("SELECT ledger_transaction_id::text FROM plaid.mirrors UNION ALL "
                                      "SELECT reversal_transaction_id::text FROM plaid.mirrors WHERE reversal_transaction_id IS NOT NULL"))
            ids.push_back(row[0].as<std::string>());
        return ids;
    };
    auto expected_balance = [&] { return funding - emulator_sum(f, item.item_id, true, checking); };
    auto posted_checking = std::stoll(f.db_scalar(
        "SELECT count(*) FROM plaid.transactions WHERE account_id = $1 AND NOT pending", checking));
    REQUIRE(posted_checking > 0);
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.mirrors WHERE item_id = $1", item.item_id) == std::to_string(posted_checking));
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.mirrors m JOIN plaid.transactions t ON t.transaction_id = m.plaid_transaction_id "
                      "WHERE t.item_id = $1 AND t.pending",
                      item.item_id) == "0");  // pending ones are shown, not mirrored
    REQUIRE(lf.wait_final(mirrored_ids(), std::chrono::seconds(30)) == 0);
    CHECK(lf.balance(wallet) == expected_balance());

    // Bank corrections: one amount changes, one posted transaction disappears.
    std::vector<std::string> posted;
    {
        auto l = f.plaid_pool().acquire();
        pqxx::read_transaction r(*l);
        for (const auto& row : r.exec_params("SELECT transaction_id FROM plaid.transactions WHERE account_id = $1 AND NOT pending "
                                             "ORDER BY transaction_id LIMIT 2",
                                             checking))
            posted.push_back(row[0].as<std::string>());
    }
    REQUIRE(posted.size() == 2);
    auto t0 = last_sync_at(f, item.item_id);
    f.emulator().control("POST", "/emulator/items/" + item.item_id + "/transactions",
                         R"({"action":"modify","transaction_id":")" + posted[0] + R"(","amount":"1234.56","webhook":"false"})");
    f.emulator().control("POST", "/emulator/items/" + item.item_id + "/transactions",
                         R"({"action":"remove","transaction_id":")" + posted[1] + R"(","webhook":"false"})");
    request_sync(f, item.item_id);
    REQUIRE(plaid_fixture::eventually([&] { return last_sync_at(f, item.item_id) != t0; }));
    REQUIRE(lf.wait_final(mirrored_ids(), std::chrono::seconds(30)) == 0);

    CHECK(f.db_scalar("SELECT count(*) FROM plaid.mirrors WHERE plaid_transaction_id = $1", posted[0]) == "2");
    CHECK(f.db_scalar("SELECT amount::text FROM plaid.mirrors WHERE plaid_transaction_id = $1 AND reversal_transaction_id IS NULL",
                      posted[0]) == "123456");
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.mirrors WHERE plaid_transaction_id = $1 AND reversal_transaction_id IS NULL",
                      posted[1]) == "0");
    for (const auto& id : mirrored_ids()) CHECK(lf.status(id) == "completed");
    CHECK(lf.balance(wallet) == expected_balance());

    // Pending ones post (and the bank changes another amount): the posted ones are mirrored.
    auto t1 = last_sync_at(f, item.item_id);
    f.client().transactions_refresh(f.access_token(item.item_id));
    request_sync(f, item.item_id);
    REQUIRE(plaid_fixture::eventually([&] { return last_sync_at(f, item.item_id) != t1; }));
    REQUIRE(lf.wait_final(mirrored_ids(), std::chrono::seconds(30)) == 0);
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.mirrors m WHERE item_id = $1 AND reversal_transaction_id IS NULL", item.item_id) ==
          f.db_scalar("SELECT count(*) FROM plaid.transactions WHERE account_id = $1 AND NOT pending", checking));
    CHECK(lf.balance(wallet) == expected_balance());
    CHECK(lf.reconcile().empty());

    // Everything plaid-sync published conforms to its contract in proto/.
    {
        auto l = f.plaid_pool().acquire();
        pqxx::read_transaction r(*l);
        std::map<std::string, int> types;
        for (const auto& row : r.exec("SELECT type, body FROM plaid.outbox ORDER BY id DESC LIMIT 2000")) {
            auto type = row[0].as<std::string>();
            auto doc = json::parse(row[1].as<std::string>());
            INFO(type << " " << row[1].as<std::string>());
            CHECK_FALSE(schema::global().validate(type, doc).has_value());
            ++types[type];
        }
        CHECK(types["plaid.event.v1"] > 0);
        CHECK(types["plaid.sync.v1"] > 0);
        CHECK(types["ledger.transaction.v1"] > 0);
    }
    CHECK(proc->terminate() == 0);
    CHECK(worker->terminate() == 0);
}

TEST_CASE("removing an item: gone at Plaid and here, the ledger's record stays", "[plaid][sync]") {
    plaid_fixture f;
    auto item = f.link(7001, "user_good");
    auto proc = f.start_sync("remove");
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }));
    REQUIRE(f.db_transactions(item.item_id).size() == 200);

    // The gateway's list: keyset pages cover everything once; filters narrow it.
    plaid_sync::transaction_filter filter;
    filter.item_id = item.item_id;
    filter.limit = 30;
    std::set<std::string> seen;
    int pages = 0;
    do {
        auto page = plaid_sync::list_transactions(f.ledger().gateway_pool(), 7001, filter);
        for (const auto& t : page.transactions) CHECK(seen.insert(t.transaction_id).second);
        filter.after = page.next;
        ++pages;
    } while (filter.after);
    CHECK(seen.size() == 200);
    CHECK(pages == 7);
    plaid_sync::transaction_filter pending;
    pending.item_id = item.item_id;
    pending.pending = true;
    pending.limit = 500;
    CHECK(plaid_sync::list_transactions(f.plaid_pool(), 7001, pending).transactions.size() ==
          static_cast<std::size_t>(std::stoll(f.db_scalar("SELECT count(*) FROM plaid.transactions WHERE item_id = $1 AND pending", item.item_id))));
    plaid_sync::transaction_filter money_in;
    money_in.item_id = item.item_id;
    money_in.max_amount = -1;
    money_in.limit = 500;
    auto deposits = plaid_sync::list_transactions(f.plaid_pool(), 7001, money_in).transactions;
    CHECK(!deposits.empty());
    for (const auto& t : deposits) CHECK(*t.amount < 0);

    // Balances refresh on request; a link token for Link.
    auto refreshed = plaid_sync::refresh_balance(f.api(), 7001, item.accounts[0].account_id);
    CHECK(refreshed.available == std::optional<std::int64_t>(10000));
    CHECK(refreshed.balances_updated_at.has_value());
    CHECK(plaid_sync::create_link_token(f.api(), 7001).link_token.rfind("link-sandbox-", 0) == 0);

    CHECK_THROWS_AS(plaid_sync::remove_item(f.api(), 9999, item.item_id, "test"), plaid_sync::request_error);  // not the owner
    plaid_sync::remove_item(f.api(), 7001, item.item_id, "test-remove");
    CHECK_THROWS(f.emulator().control("GET", "/emulator/items/" + item.item_id));
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.items WHERE item_id = $1", item.item_id) == "0");
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.accounts WHERE item_id = $1", item.item_id) == "0");
    CHECK(f.db_transactions(item.item_id).empty());
    CHECK(outbox_count(f, item.item_id, "plaid.item_removed") == 1);
    // A late sync job for it finds nothing to do: acknowledged, not parked.
    db::with_transaction(f.plaid_pool(), [&](pqxx::work& w) {
        f.api().enqueue(w, plaid_sync::sync_message({item.item_id, "webhook", std::nullopt}, "test-late"));
    });
    amqp::admin admin(f.ledger().amqp_options());
    CHECK(plaid_fixture::eventually([&] {
        return f.db_scalar("SELECT count(*) FROM plaid.outbox WHERE sent_at IS NULL AND body::jsonb->>'item_id' = $1", item.item_id) == "0" &&
               admin.queue_depth("plaid.sync") == 0;
    }));
    CHECK(proc->terminate() == 0);
    CHECK(admin.queue_depth("plaid.sync.error") == 0);
    CHECK(admin.queue_depth("plaid.sync.retry.1s") == 0);
}

TEST_CASE("the scheduler queues each active item once per interval across replicas", "[plaid][scheduler]") {
    plaid_fixture f;
    auto a = f.link(7001, "user_good");
    auto b = f.link(7001, "user_good");
    outbox::outbox box("plaid.outbox", "plaid_outbox");
    db::with_transaction(f.plaid_pool(), [](pqxx::work& w) { w.exec("UPDATE plaid.scheduler_state SET last_run_at = now() - interval '2 hours'"); });
    CHECK(plaid_sync::schedule_syncs(f.plaid_pool(), box, std::chrono::hours(1)) == 2);
    CHECK(plaid_sync::schedule_syncs(f.plaid_pool(), box, std::chrono::hours(1)) == 0);  // another replica, same interval
    CHECK(f.db_scalar("SELECT count(*) FROM plaid.outbox WHERE routing_key = 'plaid.sync' AND body::jsonb->>'reason' = 'schedule' "
                      "AND body::jsonb->>'item_id' = $1",
                      a.item_id) == "1");
    // The jobs are valid plaid.sync.v1 messages.
    auto body = f.db_scalar("SELECT body FROM plaid.outbox WHERE body::jsonb->>'item_id' = $1 AND body::jsonb->>'reason' = 'schedule'",
                            b.item_id);
    amqp::failure why;
    auto job = plaid_sync::parse_sync_job(body, "plaid.sync.v1", why);
    INFO(why.detail);
    REQUIRE(job);
    CHECK(job->reason == "schedule");
}

TEST_CASE("a sync job the broker lost is found from the database and run, once", "[plaid][sync][recovery]") {
    plaid_fixture f;
    auto item = f.link(7001, "user_good");
    auto recovery_jobs = [&] {
        return std::stoll(f.db_scalar("SELECT count(*) FROM plaid.outbox WHERE routing_key = 'plaid.sync' "
                                      "AND body::jsonb->>'reason' = 'recovery' AND body::jsonb->>'item_id' = $1",
                                      item.item_id));
    };
    // The link job was published and then lost (a purged queue, a lost broker disk).
    db::with_transaction(f.plaid_pool(), [&](pqxx::work& w) {
        w.exec_params("UPDATE plaid.outbox SET sent_at = now() WHERE sent_at IS NULL AND body::jsonb->>'item_id' = $1", item.item_id);
    });
    CHECK(f.db_scalar("SELECT (sync_wanted_at IS NOT NULL AND sync_attempted_at IS NULL)::text FROM plaid.items WHERE item_id = $1",
                      item.item_id) == "true");
    // Not yet overdue: nothing is queued again.
    outbox::outbox box("plaid.outbox", "plaid_outbox");
    plaid_sync::recover_lost_syncs(f.plaid_pool(), box, std::chrono::hours(1));
    CHECK(recovery_jobs() == 0);

    auto proc = f.start_sync("recovery", {{"TXP_SYNC_RECOVERY_AFTER", "1s"}});
    REQUIRE(plaid_fixture::eventually([&] { return synced(f, item.item_id); }));
    CHECK(f.db_transactions(item.item_id) == f.emulator_transactions(item.item_id));
    CHECK(recovery_jobs() == 1);
    CHECK(proc->log().find("its job was lost") != std::string::npos);
    // Attempted since it was wanted: not lost, however overdue.
    plaid_sync::recover_lost_syncs(f.plaid_pool(), box, std::chrono::milliseconds(0));
    CHECK(recovery_jobs() == 1);

    // A sync that was attempted and failed is the retry tiers' business, not the recovery's:
    // while a manual sync keeps failing with 500s, it is not queued again.
    f.emulator().control("POST", "/emulator/faults", R"({"type":"server_error","endpoint":"/transactions/sync","count":0})");
    auto failures = f.requests("/transactions/sync", 500);
    auto before = last_sync_at(f, item.item_id);
    request_sync(f, item.item_id);
    REQUIRE(plaid_fixture::eventually([&] { return f.requests("/transactions/sync", 500) > failures; }));
    plaid_sync::recover_lost_syncs(f.plaid_pool(), box, std::chrono::milliseconds(0));
    CHECK(recovery_jobs() == 1);
    f.emulator().control("DELETE", "/emulator/faults");
    REQUIRE(plaid_fixture::eventually([&] { return last_sync_at(f, item.item_id) != before; }));
    CHECK(proc->terminate() == 0);
}

TEST_CASE("the gateway role reads plaid's tables and calls its functions, and writes nothing else", "[plaid][privileges]") {
    plaid_fixture f;
    const std::int64_t owner = 800'000 + static_cast<std::int64_t>(std::stoull(testing::unique_suffix().substr(0, 6), nullptr, 16) % 100'000);
    auto item = f.link(owner, "user_good");
    auto& gw = f.ledger().gateway_pool();
    auto items = plaid_sync::list_items(gw, owner);
    REQUIRE(items.size() == 1);
    CHECK(items[0].item_id == item.item_id);
    CHECK(items[0].accounts.size() == 4);
    auto page = plaid_sync::list_transactions(gw, owner, {});
    CHECK(page.transactions.empty() == true);  // not synced yet (no plaid-sync running)
    CHECK_THROWS(db::with_transaction(gw, [&](pqxx::work& w) {
        w.exec_params("UPDATE plaid.items SET status = 'active' WHERE item_id = $1", item.item_id);
    }));
    db::with_transaction(gw, [&](pqxx::work& w) {
        w.exec_params("SELECT plaid.set_item_status($1, 'active', NULL)", item.item_id);
    });
}

// Not part of the suite: scripts/bench runs it ("[.bench]"). 100 items of 1,000 transactions
// each are linked (their initial sync jobs wait in plaid's outbox), then two plaid-sync
// replicas start and sync them all at once.
TEST_CASE("bench: 100 items syncing at once with 2 plaid-sync replicas", "[.bench][plaid]") {
    plaid_fixture f;
    const int items = 100, per_item = 1000;
    std::vector<std::string> ids;
    for (int i = 0; i < items; ++i) ids.push_back(f.link(7001, "user_bulk_" + std::to_string(per_item)).item_id);
    std::string list = "{" + ids.front();
    for (std::size_t i = 1; i < ids.size(); ++i) list += "," + ids[i];
    list += "}";
    auto done = [&] {
        return std::stoi(f.db_scalar("SELECT count(*) FROM plaid.items WHERE item_id = ANY($1::text[]) AND last_sync_status = 'ok'",
                                     list));
    };
    REQUIRE(done() == 0);
    auto started = std::chrono::steady_clock::now();
    auto a = f.start_sync("bench-a", {{"TXP_LOG_LEVEL", "warn"}});
    auto b = f.start_sync("bench-b", {{"TXP_LOG_LEVEL", "warn"}});
    REQUIRE(plaid_fixture::eventually([&] { return done() == items; }, std::chrono::seconds(300)));
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    auto stored = std::stoll(f.db_scalar("SELECT count(*) FROM plaid.transactions WHERE item_id = ANY($1::text[])", list));
    CHECK(stored == static_cast<long long>(items) * per_item);
    std::printf("plaid-sync bench: %d items x %d transactions synced by 2 replicas in %.2f s "
                "(%.1f items/s, %.0f transactions/s, including process start)\n",
                items, per_item, secs, items / secs, static_cast<double>(stored) / secs);
}
