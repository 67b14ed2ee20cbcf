// Unit tests: Plaid errors classified per PLAID.md; the client's headers and error parsing
// against a local HTTP server; secrets never in error messages.
#include "txp/plaid/client.hpp"

#include "txp/http/server.hpp"

#include <catch2/catch.hpp>

#include <mutex>

using namespace txp;
using namespace txp::plaid;

TEST_CASE("errors are classified as PLAID.md's table says", "[plaid][client]") {
    CHECK(classify(400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED", "") == error_class::item_login_required);
    CHECK(classify(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "") == error_class::invalid_access_token);
    CHECK(classify(400, "ITEM_ERROR", "PRODUCT_NOT_READY", "") == error_class::product_not_ready);
    CHECK(classify(400, "TRANSACTIONS_ERROR", "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION", "") ==
          error_class::mutation_during_pagination);
    CHECK(classify(400, "INVALID_REQUEST", "INVALID_FIELD", "cursor not associated with access_token") ==
          error_class::invalid_cursor);
    CHECK(classify(400, "INVALID_REQUEST", "INVALID_FIELD", "count must be at most 500") == error_class::permanent);
    CHECK(classify(429, "RATE_LIMIT_EXCEEDED", "TRANSACTIONS_SYNC_LIMIT", "") == error_class::rate_limited);
    CHECK(classify(500, "API_ERROR", "INTERNAL_SERVER_ERROR", "") == error_class::server_error);
    CHECK(classify(503, "API_ERROR", "PLANNED_MAINTENANCE", "") == error_class::server_error);
    CHECK(classify(0, "TRANSPORT", "timeout", "") == error_class::transport);
    CHECK(api_error("/x", 429, "RATE_LIMIT_EXCEEDED", "RATE_LIMIT", "m", std::nullopt, "r").retryable());
    CHECK_FALSE(api_error("/x", 400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED", "m", std::nullopt, "r").retryable());
}

TEST_CASE("the client sends credentials and version headers and parses Plaid's error body", "[plaid][client]") {
    std::mutex mu;
    http::request seen;
    http::server srv({}, [&](http::request&& r, std::shared_ptr<http::response_writer> w) {
        {
            std::lock_guard lk(mu);
            seen = r;
        }
        http::response resp;
        resp.status = 400;
        resp.content_type = "application/json; charset=utf-8";
        resp.body = R"({"display_message":null,"documentation_url":"https://plaid.com/docs/?ref=error#item-errors","error_code":"ITEM_LOGIN_REQUIRED","error_message":"the login details of this item have changed","error_type":"ITEM_ERROR","request_id":"abc123","suggested_action":null})";
        w->send(std::move(resp));
    });
    srv.start();
    client_options o;
    o.base_url = "http://127.0.0.1:" + std::to_string(srv.port());
    o.client_id = "client-123";
    o.secret = "super-secret-value";
    client c(o);
    try {
        c.transactions_sync("access-sandbox-secret-token", "", 100);
        FAIL("no error");
    } catch (const api_error& e) {
        CHECK(e.http_status() == 400);
        CHECK(e.error_type() == "ITEM_ERROR");
        CHECK(e.error_code() == "ITEM_LOGIN_REQUIRED");
        CHECK(e.request_id() == "abc123");
        CHECK_FALSE(e.display_message().has_value());
        CHECK(e.classification() == error_class::item_login_required);
        std::string what = e.what();
        CHECK(what.find("super-secret-value") == std::string::npos);
        CHECK(what.find("access-sandbox-secret-token") == std::string::npos);
    }
    std::lock_guard lk(mu);
    CHECK(seen.method == "POST");
    CHECK(seen.path == "/transactions/sync");
    CHECK(seen.header_value("PLAID-CLIENT-ID") == std::optional<std::string_view>("client-123"));
    CHECK(seen.header_value("PLAID-SECRET") == std::optional<std::string_view>("super-secret-value"));
    CHECK(seen.header_value("Plaid-Version") == std::optional<std::string_view>("2020-09-14"));
    CHECK(seen.body.find("\"count\":100") != std::string::npos);
    srv.stop();
}

TEST_CASE("amounts keep their exact decimal text", "[plaid][client]") {
    auto p = parse_sync_page(R"({"accounts":[],"added":[{"account_id":"a","amount":0.1,"iso_currency_code":"USD","unofficial_currency_code":null,"date":"2024-01-02","authorized_date":null,"name":"x","merchant_name":null,"pending":false,"pending_transaction_id":null,"payment_channel":"online","transaction_id":"t1"},{"account_id":"a","amount":-1200,"iso_currency_code":"USD","unofficial_currency_code":null,"date":"2024-01-02","name":"y","pending":true,"transaction_id":"t2"}],"modified":[],"removed":[{"transaction_id":"t0","account_id":"a"}],"next_cursor":"c1","has_more":false,"request_id":"r","transactions_update_status":"HISTORICAL_UPDATE_COMPLETE"})");
    REQUIRE(p.added.size() == 2);
    CHECK(p.added[0].amount == "0.1");
    CHECK(p.added[1].amount == "-1200");
    CHECK(p.added[1].pending);
    CHECK(p.removed.at(0).transaction_id == "t0");
    CHECK(p.next_cursor == "c1");
    CHECK_THROWS_AS(parse_sync_page(R"({"added":[]})"), api_error);
}
