// The gateway's /v1/plaid/* routes end to end: a real api-gateway configured for the Plaid
// emulator process, a plaid-sync process and a ledger-worker, the real broker and database.
// Link, accounts with balances, a bank account linked to a wallet (and not to someone
// else's), manual and webhook-driven syncs with the mirror into the ledger, filters, balance
// refresh, webhook verification, removal, isolation between users, and no access token in any
// answer.
#include "gateway_fixture.hpp"
#include "message_tap.hpp"
#include "plaid_support.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace txp;
using testing::gateway_fixture;
using testing::is_problem;
using testing::plaid_fixture;

namespace {

std::map<std::string, std::string> plaid_env(plaid_fixture& pf) {
    return {{"TXP_PLAID_BASE_URL", pf.emulator().base_url()},
            {"TXP_PLAID_CLIENT_ID", testing::test_client_id},
            {"TXP_PLAID_SECRET", testing::test_secret},
            {"TXP_PLAID_TOKEN_KEY", testing::test_token_key()}};
}

// Every answer of the test, to check that no access token ever leaves the gateway.
struct recorder {
    gateway_fixture& gf;
    std::string base;
    std::vector<std::string> bodies;

    http::client_response call(const std::string& method, const std::string& path, const std::string& token,
                               const std::string& body = "") {
        auto r = gf.call(method, path, body, token, {}, base);
        bodies.push_back(r.body);
        return r;
    }
};

rapidjson::Document parsed(const http::client_response& r) { return json::parse(r.body); }

// Copies of the plaid.sync jobs published while the test runs; the gateway's are those with
// app_id api-gateway (plaid-sync's scheduler publishes jobs too).
testing::message_tap sync_jobs() { return testing::message_tap(amqp::commands_exchange, "plaid.sync"); }

// plaid.sync jobs still waiting in the gateway's outbox for this item.
std::int64_t pending_sync_jobs_in_gateway_outbox(const std::string& item_id) {
    db::pool_options po;
    po.url = testing::database_url("gateway");
    po.size = 1;
    db::pool pool(po);
    auto l = pool.acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT count(*) FROM gateway.outbox WHERE type = 'plaid.sync.v1' AND sent_at IS NULL "
                         "AND body::jsonb->>'item_id' = $1",
                         item_id)[0][0]
        .as<std::int64_t>();
}

}  // namespace

TEST_CASE("the /v1/plaid routes link, list, sync, mirror, verify webhooks and remove, per user", "[gateway][plaid]") {
    auto& gf = gateway_fixture::shared();  // its ledger-worker applies the mirrors
    plaid_fixture pf;
    auto gw = testing::start_gateway("plaid", plaid_env(pf));
    auto sync = pf.start_sync("gw-plaid");
    recorder api{gf, gw.base, {}};

    auto alice = gf.new_user("plaid_a", gw.base);
    auto bob = gf.new_user("plaid_b", gw.base);
    // Money in the wallet for the bank's outgoing payments that get mirrored.
    auto dep = gf.call("POST", "/v1/wallets/me/deposit", R"({"amount":1000000})", alice.token,
                       {{"Idempotency-Key", "fund-" + ids::uuid_v4()}, {"Prefer", "wait=20"}}, gw.base);
    REQUIRE(dep.status == 200);

    // The emulator sends its signed webhooks to this gateway.
    pf.emulator().control("POST", "/emulator/config", R"({"webhook_url":")" + gw.base + R"(/v1/plaid/webhook"})");

    // ---- link ---------------------------------------------------------------------------
    CHECK(is_problem(api.call("POST", "/v1/plaid/link/token", ""), 401, "unauthorized"));
    auto lt = api.call("POST", "/v1/plaid/link/token", alice.token);
    REQUIRE(lt.status == 200);
    CHECK(std::string(parsed(lt)["link_token"].GetString()).rfind("link-sandbox-", 0) == 0);

    auto linked = api.call("POST", "/v1/plaid/sandbox/link", alice.token,
                           R"({"institution_id":"ins_109508","username":"user_transactions_dynamic","password":"pass_good"})");
    REQUIRE(linked.status == 201);
    auto item_doc = parsed(linked);
    const std::string item_id = item_doc["item_id"].GetString();
    REQUIRE(item_doc["accounts"].Size() >= 1);
    const std::string checking = item_doc["accounts"][0]["account_id"].GetString();
    CHECK(is_problem(api.call("POST", "/v1/plaid/link/exchange", alice.token, R"({"public_token":"public-sandbox-nope"})"), 400,
                     "plaid-error"));

    // ---- items and accounts, with balances; the initial sync runs ------------------------
    REQUIRE(plaid_fixture::eventually([&] {
        auto items = parsed(api.call("GET", "/v1/plaid/items", alice.token));
        return items["items"].Size() == 1 && items["items"][0]["last_sync_status"].IsString() &&
               std::string(items["items"][0]["last_sync_status"].GetString()) == "ok";
    }));
    auto accounts = api.call("GET", "/v1/plaid/accounts", alice.token);
    REQUIRE(accounts.status == 200);
    auto acc_doc = parsed(accounts);
    REQUIRE(acc_doc["accounts"].Size() == item_doc["accounts"].Size());
    CHECK(acc_doc["accounts"][0]["balances"]["current"].IsInt64());
    CHECK(acc_doc["accounts"][0]["wallet_id"].IsNull());
    auto initial = parsed(api.call("GET", "/v1/plaid/transactions?limit=500", alice.token));
    const auto initial_count = initial["transactions"].Size();
    CHECK(initial_count > 0);

    // ---- link the checking account to a wallet: only one's own ---------------------------
    auto path_wallet = "/v1/plaid/accounts/" + checking + "/wallet";
    CHECK(is_problem(api.call("PUT", path_wallet, alice.token, R"({"wallet_id":)" + std::to_string(bob.wallet_id) + "}"), 404,
                     "not-found"));
    CHECK(is_problem(api.call("PUT", path_wallet, bob.token, R"({"wallet_id":)" + std::to_string(bob.wallet_id) + "}"), 404,
                     "not-found"));
    auto lw = api.call("PUT", path_wallet, alice.token, R"({"wallet_id":)" + std::to_string(alice.wallet_id) + "}");
    REQUIRE(lw.status == 200);
    CHECK(parsed(lw)["wallet_id"].GetInt64() == alice.wallet_id);

    // ---- a new bank transaction, announced by a signed webhook: synced and mirrored ------
    auto hook_jobs = sync_jobs();
    auto added = pf.emulator().control("POST", "/emulator/items/" + item_id + "/transactions",
                                       R"({"action":"add","amount":"-123.45","account_id":")" + checking + R"("})");
    const std::string salary_id = json::parse(added)["transaction_id"].GetString();
    std::string mirror_id;
    REQUIRE(plaid_fixture::eventually([&] {
        auto page = parsed(api.call("GET", "/v1/plaid/transactions?account_id=" + checking + "&pending=false&limit=500",
                                    alice.token));
        for (const auto& t : page["transactions"].GetArray()) {
            if (salary_id == t["transaction_id"].GetString() && t["ledger_transaction_id"].IsString()) {
                mirror_id = t["ledger_transaction_id"].GetString();
                return true;
            }
        }
        return false;
    }));
    hook_jobs.settle();
    CHECK(hook_jobs.count("item_id", item_id, "api-gateway") >= 1);  // the webhook queued it through the gateway
    REQUIRE(plaid_fixture::eventually([&] {
        auto t = api.call("GET", "/v1/transactions/" + mirror_id, alice.token);
        return t.status == 200 && std::string(parsed(t)["status"].GetString()) == "completed";
    }));
    auto mirrored_tx = parsed(api.call("GET", "/v1/transactions/" + mirror_id, alice.token));
    CHECK(std::string(mirrored_tx["type"].GetString()) == "deposit");
    CHECK(mirrored_tx["amount"].GetInt64() == 12345);

    // ---- a manual sync picks up a change made without a webhook -------------------------
    auto quiet = pf.emulator().control("POST", "/emulator/items/" + item_id + "/transactions",
                                       R"({"action":"add","amount":"7.00","webhook":"false","account_id":")" + checking + R"("})");
    const std::string quiet_id = json::parse(quiet)["transaction_id"].GetString();
    auto manual = api.call("POST", "/v1/plaid/items/" + item_id + "/sync", alice.token);
    CHECK(manual.status == 202);
    REQUIRE(plaid_fixture::eventually([&] {
        auto page = parsed(api.call("GET", "/v1/plaid/transactions?min_amount=700&max_amount=700&limit=500", alice.token));
        for (const auto& t : page["transactions"].GetArray()) {
            if (quiet_id == t["transaction_id"].GetString()) return true;
        }
        return false;
    }));

    // ---- filters and pagination ---------------------------------------------------------
    {
        auto money_in = parsed(api.call("GET", "/v1/plaid/transactions?max_amount=-1&limit=500", alice.token));
        CHECK(money_in["transactions"].Size() >= 1);
        for (const auto& t : money_in["transactions"].GetArray()) CHECK(t["amount"].GetInt64() <= -1);
        auto pending = parsed(api.call("GET", "/v1/plaid/transactions?pending=true&limit=500", alice.token));
        for (const auto& t : pending["transactions"].GetArray()) CHECK(t["pending"].GetBool());
        auto today = parsed(api.call("GET", "/v1/plaid/transactions?limit=500", alice.token));
        std::string newest = today["transactions"][0]["date"].GetString();
        auto ranged = parsed(api.call("GET", "/v1/plaid/transactions?start_date=" + newest + "&end_date=" + newest + "&limit=500",
                                      alice.token));
        CHECK(ranged["transactions"].Size() >= 1);
        for (const auto& t : ranged["transactions"].GetArray()) CHECK(std::string(t["date"].GetString()) == newest);
        // Pages of 2 walk the whole list once.
        std::set<std::string> seen;
        std::string after;
        int pages = 0;
        for (;;) {
            auto page = parsed(api.call("GET", "/v1/plaid/transactions?limit=2" + (after.empty() ? "" : "&after=" + after), alice.token));
            for (const auto& t : page["transactions"].GetArray()) seen.insert(t["transaction_id"].GetString());
            ++pages;
            if (page["next"].IsNull() || pages > 1000) break;
            after = page["next"].GetString();
        }
        CHECK(seen.size() == today["transactions"].Size());
        CHECK(is_problem(api.call("GET", "/v1/plaid/transactions?start_date=2026-13-01", alice.token), 400, "validation-error"));
        CHECK(is_problem(api.call("GET", "/v1/plaid/transactions?pending=maybe", alice.token), 400, "validation-error"));
        CHECK(is_problem(api.call("GET", "/v1/plaid/transactions?limit=0", alice.token), 400, "validation-error"));
        // A cursor that names no transaction of Alice's is an error, not an empty page.
        CHECK(is_problem(api.call("GET", "/v1/plaid/transactions?after=bad", alice.token), 400, "invalid-request"));
    }

    // ---- balance refresh ----------------------------------------------------------------
    auto balance_calls = pf.requests("/accounts/balance/get", 200);
    auto refreshed = api.call("POST", "/v1/plaid/accounts/" + checking + "/refresh-balance", alice.token);
    REQUIRE(refreshed.status == 200);
    CHECK(pf.requests("/accounts/balance/get", 200) == balance_calls + 1);
    CHECK(std::string(parsed(refreshed)["account_id"].GetString()) == checking);
    CHECK(parsed(refreshed)["balances"]["updated_at"].IsString());

    // ---- webhooks that do not verify: 401, nothing queued --------------------------------
    {
        auto jobs = sync_jobs();
        std::string body = R"({"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":")" + item_id + R"("})";
        auto unsigned_hook = gf.call("POST", "/v1/plaid/webhook", body, "", {{"Content-Type", "application/json"}}, gw.base);
        api.bodies.push_back(unsigned_hook.body);
        CHECK(is_problem(unsigned_hook, 401, "webhook-unverified"));
        auto forged = gf.call("POST", "/v1/plaid/webhook", body, "",
                              {{"Content-Type", "application/json"},
                               {"Plaid-Verification",
                                "eyJhbGciOiJFUzI1NiIsImtpZCI6ImJvZ3VzIiwidHlwIjoiSldUIn0.eyJpYXQiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl"}},
                              gw.base);
        api.bodies.push_back(forged.body);
        CHECK(forged.status == 401);
        jobs.settle();
        CHECK(jobs.count("item_id", item_id, "api-gateway") == 0);
        CHECK(pending_sync_jobs_in_gateway_outbox(item_id) == 0);
    }

    // ---- another user sees none of it ---------------------------------------------------
    CHECK(parsed(api.call("GET", "/v1/plaid/items", bob.token))["items"].Size() == 0);
    CHECK(parsed(api.call("GET", "/v1/plaid/accounts", bob.token))["accounts"].Size() == 0);
    CHECK(parsed(api.call("GET", "/v1/plaid/transactions", bob.token))["transactions"].Size() == 0);
    CHECK(is_problem(api.call("POST", "/v1/plaid/items/" + item_id + "/sync", bob.token), 404, "not-found"));
    CHECK(is_problem(api.call("POST", "/v1/plaid/accounts/" + checking + "/refresh-balance", bob.token), 404, "not-found"));
    CHECK(is_problem(api.call("DELETE", "/v1/plaid/items/" + item_id, bob.token), 404, "not-found"));

    // ---- remove: at Plaid, then here ----------------------------------------------------
    auto access_token = pf.access_token(item_id);
    CHECK(api.call("DELETE", "/v1/plaid/items/" + item_id, alice.token).status == 204);
    CHECK(parsed(api.call("GET", "/v1/plaid/items", alice.token))["items"].Size() == 0);
    CHECK(is_problem(api.call("POST", "/v1/plaid/items/" + item_id + "/sync", alice.token), 404, "not-found"));
    CHECK(is_problem(api.call("DELETE", "/v1/plaid/items/" + item_id, alice.token), 404, "not-found"));

    // ---- no answer ever carried an access token -----------------------------------------
    REQUIRE(access_token.rfind("access-", 0) == 0);
    for (const auto& b : api.bodies) {
        INFO(b.substr(0, 300));
        CHECK(b.find(access_token) == std::string::npos);
        CHECK(b.find("access-sandbox") == std::string::npos);
    }
    CHECK(sync->terminate() == 0);
    gw.proc->terminate();
}

TEST_CASE("without Plaid configuration the routes answer 503; a malformed Plaid variable stops start-up", "[gateway][plaid]") {
    auto& gf = gateway_fixture::shared();
    auto u = gf.new_user("noplaid");  // the shared gateway runs without Plaid settings
    CHECK(is_problem(gf.call("GET", "/v1/plaid/items", "", u.token), 503, "plaid-not-configured"));
    CHECK(is_problem(gf.call("POST", "/v1/plaid/webhook", "{}", "", {{"Content-Type", "application/json"}}), 503,
                     "plaid-not-configured"));

    plaid_fixture pf;
    auto env = plaid_env(pf);
    env["TXP_PLAID_TOKEN_KEY"] = "not-a-key";
    try {
        testing::start_gateway("plaid-bad-key", env);
        FAIL("the gateway started with a malformed TXP_PLAID_TOKEN_KEY");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("TXP_PLAID_TOKEN_KEY") != std::string::npos);
    }
}
