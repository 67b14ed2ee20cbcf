// The Plaid emulator as a real process: every endpoint's responses (and error bodies)
// conform to Plaid's OpenAPI subset, /transactions/sync cursors behave as PLAID.md says,
// and its webhooks verify with txp::plaid's verifier (and tampered ones do not).
#include "plaid_support.hpp"

#include "plaid_emulator/openapi_check.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/http/server.hpp"
#include "txp/plaid/crypto.hpp"
#include "txp/plaid/webhook.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace txp;

namespace {

struct plaid_caller {
    testing::plaid_emulator_process& emu = testing::plaid_emulator_process::shared();
    plaid_emulator::openapi_checker checker{plaid_emulator::default_openapi_path()};
    int checked = 0;

    // A raw call, checked against the subset; returns the status and body.
    std::pair<unsigned, std::string> call(const std::string& ep, const std::string& body, bool credentials = true) {
        http::client_request req;
        req.method = "POST";
        req.url = emu.base_url() + ep;
        req.body = body;
        if (credentials) {
            req.headers = {{"PLAID-CLIENT-ID", testing::test_client_id}, {"PLAID-SECRET", testing::test_secret},
                           {"Plaid-Version", "2020-09-14"}};
        }
        auto resp = http::fetch(req);
        INFO(ep << " " << resp.status << " " << resp.body.substr(0, 400));
        CHECK(resp.header_value("Content-Type") == std::optional<std::string_view>("application/json; charset=utf-8"));
        auto problems = checker.check_response(ep, resp.status, resp.body);
        for (const auto& p : problems) FAIL_CHECK(p);
        ++checked;
        return {resp.status, resp.body};
    }

    rapidjson::Document ok(const std::string& ep, const std::string& body) {
        auto [status, text] = call(ep, body);
        INFO(ep << " " << text.substr(0, 400));
        REQUIRE(status == 200);
        rapidjson::Document d;
        d.Parse(text.c_str());
        return d;
    }

    std::string error_code(const std::string& ep, const std::string& body, unsigned expect_status) {
        auto [status, text] = call(ep, body);
        INFO(ep << " " << text);
        CHECK(status == expect_status);
        rapidjson::Document d;
        d.Parse(text.c_str());
        return d.HasMember("error_code") ? d["error_code"].GetString() : "";
    }

    std::string access_token(const std::string& username) {
        auto pt = ok("/sandbox/public_token/create",
                     R"({"institution_id":"ins_109508","initial_products":["transactions"],"options":{"override_username":")" + username + R"("}})");
        auto ex = ok("/item/public_token/exchange", std::string(R"({"public_token":")") + pt["public_token"].GetString() + R"("})");
        return ex["access_token"].GetString();
    }
};

std::string tok(const std::string& access_token, const std::string& extra = "") {
    return R"({"access_token":")" + access_token + "\"" + extra + "}";
}

// A local webhook receiver.
struct webhook_sink {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<std::string, std::string>> received;  // header, body
    http::server srv{{}, [this](http::request&& r, std::shared_ptr<http::response_writer> w) {
                         {
                             std::lock_guard lk(mu);
                             received.emplace_back(std::string(r.header_value("Plaid-Verification").value_or("")), r.body);
                         }
                         cv.notify_all();
                         w->send({});
                     }};
    webhook_sink() { srv.start(); }
    ~webhook_sink() { srv.stop(std::chrono::milliseconds(100)); }
    std::string url() { return "http://127.0.0.1:" + std::to_string(srv.port()) + "/v1/plaid/webhook"; }
    std::pair<std::string, std::string> wait(std::size_t n) {
        std::unique_lock lk(mu);
        cv.wait_for(lk, std::chrono::seconds(10), [&] { return received.size() >= n; });
        REQUIRE(received.size() >= n);
        return received[n - 1];
    }
};

}  // namespace

TEST_CASE("the conformance checker accepts Plaid's recorded responses and catches broken ones", "[plaid][emulator]") {
    plaid_emulator::openapi_checker checker(plaid_emulator::default_openapi_path());
    auto dir = std::filesystem::path(plaid_emulator::default_openapi_path()).parent_path() / "recorded";
    int files = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
        if (f.path().extension() != ".json") continue;
        std::ifstream in(f.path());
        std::stringstream ss;
        ss << in.rdbuf();
        rapidjson::Document d;
        d.Parse(ss.str().c_str());
        REQUIRE_FALSE(d.HasParseError());
        rapidjson::StringBuffer sb;
        rapidjson::Writer<rapidjson::StringBuffer> w(sb);
        d["response"].Accept(w);
        INFO(f.path().string());
        CHECK(checker.check_response(d["endpoint"].GetString(), 200, sb.GetString()).empty());
        ++files;
    }
    CHECK(files == 5);
    // The checker can fail: a missing required member, a null where none is allowed, a wrong type.
    CHECK_FALSE(checker.check_response("/item/public_token/exchange", 200, R"({"item_id":"x","request_id":"r"})").empty());
    CHECK_FALSE(checker.check_response("/accounts/get", 200,
                                       R"({"accounts":[{"account_id":"a","balances":{"available":1,"current":1,"limit":null,"iso_currency_code":"USD","unofficial_currency_code":null},"mask":null,"name":null,"official_name":null,"type":"depository","subtype":null}],"item":{"item_id":"i","webhook":"","error":null,"available_products":[],"billed_products":[],"consent_expiration_time":null,"update_type":"background"},"request_id":"r"})")
                     .empty());
    CHECK_FALSE(checker.check_response("/transactions/sync", 200,
                                       R"({"accounts":[],"added":[],"modified":[],"removed":[],"next_cursor":"c","has_more":"no","request_id":"r","transactions_update_status":"NOT_READY"})")
                     .empty());
    CHECK_FALSE(checker.check_response("/item/get", 400, R"({"error_type":"NOPE","error_code":"X","error_message":"m","display_message":null,"request_id":"r"})").empty());
}

TEST_CASE("every endpoint answers in Plaid's wire format, errors included", "[plaid][emulator][conformance]") {
    plaid_caller p;
    auto& emu = p.emu;
    emu.control("DELETE", "/emulator/faults");
    webhook_sink sink;
    emu.control("POST", "/emulator/config", R"({"webhook_url":")" + sink.url() + R"("})");

    auto lt = p.ok("/link/token/create",
                   R"({"client_name":"txp","language":"en","country_codes":["US"],"user":{"client_user_id":"u-1"},"products":["transactions"],"transactions":{"days_requested":730}})");
    CHECK(std::string(lt["link_token"].GetString()).rfind("link-sandbox-", 0) == 0);
    auto at = p.access_token("user_good");
    CHECK(at.rfind("access-sandbox-", 0) == 0);
    p.ok("/item/get", tok(at));
    auto accounts = p.ok("/accounts/get", tok(at));
    REQUIRE(accounts["accounts"].Size() == 4);
    CHECK(std::string(accounts["accounts"][0]["mask"].GetString()) == "0000");
    CHECK(accounts["accounts"][0]["balances"]["available"].GetInt() == 100);
    CHECK(accounts["accounts"][0]["balances"]["current"].GetInt() == 110);
    CHECK(accounts["accounts"][2]["balances"]["available"].IsNull());
    CHECK(accounts["accounts"][3]["balances"]["limit"].GetInt() == 2000);
    p.ok("/accounts/balance/get", tok(at, std::string(R"(,"options":{"account_ids":[")") + accounts["accounts"][0]["account_id"].GetString() + "\"]}"));

    // The whole history, page by page.
    std::string cursor;
    std::set<std::string> ids;
    int pages = 0;
    for (bool more = true; more; ++pages) {
        auto page = p.ok("/transactions/sync", tok(at, R"(,"count":50,"cursor":")" + cursor + "\""));
        for (const auto& t : page["added"].GetArray()) ids.insert(t["transaction_id"].GetString());
        more = page["has_more"].GetBool();
        cursor = page["next_cursor"].GetString();
    }
    CHECK(ids.size() == 200);
    CHECK(pages == 4);
    auto get = p.ok("/transactions/get", tok(at, R"(,"start_date":"2000-01-01","end_date":"2100-01-01","options":{"count":20,"offset":5})"));
    CHECK(get["total_transactions"].GetInt() == 200);
    CHECK(get["transactions"].Size() == 20);
    p.ok("/transactions/refresh", tok(at));
    p.ok("/sandbox/transactions/create",
         tok(at, R"(,"transactions":[{"date_transacted":"2024-01-02","date_posted":"2024-01-03","amount":12.34,"description":"Custom"}])"));
    auto after = p.ok("/transactions/sync", tok(at, R"(,"cursor":")" + cursor + "\""));
    CHECK(after["added"].Size() >= 3);  // posted pending ones, new pending ones, the custom one
    p.ok("/sandbox/item/fire_webhook", tok(at, R"(,"webhook_code":"DEFAULT_UPDATE")"));

    // The verification key, by the kid of a webhook the emulator signed.
    auto [jwt, body] = sink.wait(1);
    auto header = plaid::base64url_decode(jwt.substr(0, jwt.find('.')));
    rapidjson::Document h;
    h.Parse(header.c_str());
    std::string kid = h["kid"].GetString();
    auto key = p.ok("/webhook_verification_key/get", R"({"key_id":")" + kid + R"("})");
    CHECK(std::string(key["key"]["alg"].GetString()) == "ES256");
    CHECK(key["key"]["expired_at"].IsNull());

    // Error bodies.
    CHECK(p.error_code("/webhook_verification_key/get", R"({"key_id":"nope"})", 400) == "INVALID_WEBHOOK_VERIFICATION_KEY_ID");
    CHECK(p.error_code("/transactions/sync", tok(at, R"(,"cursor":"bm90LWEtY3Vyc29y")"), 400) == "INVALID_FIELD");
    CHECK(p.error_code("/transactions/sync", tok(at, R"(,"count":501)"), 400) == "INVALID_FIELD");
    CHECK(p.error_code("/sandbox/public_token/create",
                       R"({"institution_id":"ins_109508","initial_products":["transactions"],"options":{"override_username":"user_good","override_password":"error_ITEM_LOCKED"}})",
                       400) == "ITEM_LOCKED");
    CHECK(p.error_code("/sandbox/public_token/create", R"({"institution_id":"ins_0","initial_products":["transactions"]})", 400) ==
          "INVALID_INSTITUTION");
    CHECK(p.error_code("/item/public_token/exchange", R"({"public_token":"public-sandbox-nope"})", 400) == "INVALID_PUBLIC_TOKEN");
    CHECK(p.error_code("/accounts/get", tok("access-sandbox-00000000-0000-4000-a000-000000000000"), 400) == "INVALID_ACCESS_TOKEN");
    {
        auto [status, text] = p.call("/accounts/get", tok(at), false);
        CHECK(status == 400);
        CHECK(text.find("MISSING_FIELDS") != std::string::npos);
    }
    emu.control("POST", "/emulator/faults", R"({"type":"rate_limit","endpoint":"/transactions/sync","count":1})");
    CHECK(p.error_code("/transactions/sync", tok(at), 429) == "TRANSACTIONS_SYNC_LIMIT");
    emu.control("POST", "/emulator/faults", R"({"type":"server_error","endpoint":"/accounts/get","count":1})");
    CHECK(p.error_code("/accounts/get", tok(at), 500) == "INTERNAL_SERVER_ERROR");
    emu.control("POST", "/emulator/faults", R"({"type":"planned_maintenance","count":1})");
    CHECK(p.error_code("/item/get", tok(at), 503) == "PLANNED_MAINTENANCE");
    p.ok("/sandbox/item/reset_login", tok(at));
    CHECK(p.error_code("/transactions/sync", tok(at), 400) == "ITEM_LOGIN_REQUIRED");
    CHECK(p.error_code("/accounts/balance/get", tok(at), 400) == "ITEM_LOGIN_REQUIRED");
    auto item = p.ok("/item/get", tok(at));  // still answers, with the error in the item
    CHECK(std::string(item["item"]["error"]["error_code"].GetString()) == "ITEM_LOGIN_REQUIRED");
    p.ok("/item/remove", tok(at));
    CHECK(p.error_code("/item/get", tok(at), 400) == "INVALID_ACCESS_TOKEN");
    CHECK(p.checked >= 30);
    emu.control("POST", "/emulator/config", R"({"webhook_url":""})");
}

TEST_CASE("sync cursors: pages, pending to posted, a changed amount, mutation during pagination", "[plaid][emulator][sync]") {
    plaid_caller p;
    p.emu.control("DELETE", "/emulator/faults");
    auto at = p.access_token("user_transactions_dynamic");
    auto sync_all = [&](std::string cursor, int count, std::vector<rapidjson::Document>& pages) {
        for (bool more = true; more;) {
            pages.push_back(p.ok("/transactions/sync", tok(at, R"(,"count":)" + std::to_string(count) + R"(,"cursor":")" + cursor + "\""))); 
            more = pages.back()["has_more"].GetBool();
            cursor = pages.back()["next_cursor"].GetString();
        }
        return cursor;
    };
    std::vector<rapidjson::Document> first;
    auto cursor = sync_all("", 10, first);
    CHECK(first.size() == 5);
    std::set<std::string> pending, posted;
    for (const auto& pg : first)
        for (const auto& t : pg["added"].GetArray()) (t["pending"].GetBool() ? pending : posted).insert(t["transaction_id"].GetString());
    CHECK(pending.size() + posted.size() == 50);
    REQUIRE(pending.size() >= 2);

    p.ok("/transactions/refresh", tok(at));
    std::vector<rapidjson::Document> second;
    cursor = sync_all(cursor, 3, second);  // small pages: the pair may span pages
    std::set<std::string> removed, pointed;
    int modified = 0, new_pending = 0;
    for (const auto& pg : second) {
        for (const auto& r : pg["removed"].GetArray()) removed.insert(r["transaction_id"].GetString());
        for (const auto& t : pg["added"].GetArray()) {
            if (t["pending"].GetBool()) ++new_pending;
            else pointed.insert(t["pending_transaction_id"].GetString());
        }
        modified += static_cast<int>(pg["modified"].Size());
    }
    CHECK(removed == pending);  // every pending one was posted...
    CHECK(pointed == pending);  // ...and the posted one points back to it
    CHECK(new_pending == 2);
    CHECK(modified == 1);  // the bank changed one amount

    // Mutation while paging: the failing page cannot be retried alone; the loop restarts.
    p.emu.control("POST", "/emulator/faults", R"({"type":"mutation_during_pagination","page":2,"count":1})");
    p.ok("/transactions/refresh", tok(at));
    auto page1 = p.ok("/transactions/sync", tok(at, R"(,"count":1,"cursor":")" + cursor + "\""));
    REQUIRE(page1["has_more"].GetBool());
    std::string mid = page1["next_cursor"].GetString();
    CHECK(p.error_code("/transactions/sync", tok(at, R"(,"count":1,"cursor":")" + mid + "\""), 400) ==
          "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION");
    CHECK(p.error_code("/transactions/sync", tok(at, R"(,"count":1,"cursor":")" + mid + "\""), 400) ==
          "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION");
    std::vector<rapidjson::Document> third;
    sync_all(cursor, 100, third);
    CHECK(third.size() == 1);
}

TEST_CASE("webhooks signed by the emulator verify, and tampered ones do not", "[plaid][emulator][webhook]") {
    plaid_caller p;
    webhook_sink sink;
    p.emu.control("DELETE", "/emulator/faults");
    p.emu.control("POST", "/emulator/config", R"({"webhook_url":")" + sink.url() + R"("})");
    auto at = p.access_token("user_good");
    p.ok("/sandbox/item/fire_webhook", tok(at, R"(,"webhook_code":"SYNC_UPDATES_AVAILABLE")"));
    auto [jwt, body] = sink.wait(1);
    p.emu.control("POST", "/emulator/config", R"({"webhook_url":""})");
    CHECK(body.find("SYNC_UPDATES_AVAILABLE") != std::string::npos);

    plaid::client_options co;
    co.base_url = p.emu.base_url();
    co.client_id = testing::test_client_id;
    co.secret = testing::test_secret;
    plaid::client client(co);
    plaid::webhook_verifier v(plaid::webhook_verifier::fetch_with(client));
    CHECK(v.verify(jwt, body) == plaid::webhook_verdict::ok);
    CHECK(v.verify(jwt, body) == plaid::webhook_verdict::replayed);

    plaid::webhook_verifier fresh(plaid::webhook_verifier::fetch_with(client));
    CHECK(fresh.verify(jwt, body + "\n") == plaid::webhook_verdict::body_mismatch);
    CHECK(fresh.verify(jwt, body, ids::unix_seconds() + 400) == plaid::webhook_verdict::stale);
    auto dot = jwt.rfind('.');
    std::string sig = plaid::base64url_decode(jwt.substr(dot + 1));
    sig[10] = static_cast<char>(sig[10] ^ 0x55);
    CHECK(fresh.verify(jwt.substr(0, dot + 1) + plaid::base64url_encode(sig), body) == plaid::webhook_verdict::bad_signature);
    plaid::es256_signer other;
    auto forged = plaid::es256_compact_jws(other, "kid-the-emulator-never-issued",
                                           R"({"iat":)" + std::to_string(ids::unix_seconds()) + R"(,"request_body_sha256":")" +
                                               plaid::sha256_hex(body) + R"("})");
    CHECK(fresh.verify(forged, body) == plaid::webhook_verdict::unknown_key);
    CHECK(fresh.verify(std::nullopt, body) == plaid::webhook_verdict::missing_header);
    CHECK(fresh.verify(jwt, body) == plaid::webhook_verdict::ok);
}
