// Request accessors, problem bodies, request ids and URL parsing.
#include "txp/http/client.hpp"
#include "txp/http/message.hpp"

#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

using namespace txp::http;

TEST_CASE("query_param percent-decodes names and values and reads '+' as a space", "[http]") {
    request r;
    r.query = "a=1&b=hello+world&c=%2Fx%20y&flag&e=%zz&na%6De=v&a=2";
    CHECK(r.query_param("a") == "1");  // the first occurrence wins
    CHECK(r.query_param("b") == "hello world");
    CHECK(r.query_param("c") == "/x y");
    CHECK(r.query_param("flag") == "");
    CHECK(r.query_param("e") == "%zz");
    CHECK(r.query_param("name") == "v");
    CHECK_FALSE(r.query_param("missing").has_value());
    CHECK(percent_decode("a+b%2B", false) == "a+b+");
}

TEST_CASE("header_value is case-insensitive", "[http]") {
    request r;
    r.headers = {{"Content-Type", "text/plain"}, {"X-Thing", "1"}};
    CHECK(r.header_value("content-type") == "text/plain");
    CHECK(r.header_value("X-THING") == "1");
    CHECK_FALSE(r.header_value("X-Other").has_value());
}

TEST_CASE("request ids from clients must be short plain tokens", "[http]") {
    CHECK(is_valid_request_id("abc-123_X.y"));
    CHECK(is_valid_request_id(std::string(64, 'a')));
    CHECK_FALSE(is_valid_request_id(std::string(65, 'a')));
    CHECK_FALSE(is_valid_request_id(""));
    CHECK_FALSE(is_valid_request_id("has space"));
    CHECK_FALSE(is_valid_request_id("inject\r\nX: y"));
}

TEST_CASE("problem builds an RFC 9457 body with the request id", "[http]") {
    auto r = problem(422, "validation", "Invalid request", "amount must be positive", "req-1",
                     {{"errors", R"([{"field":"amount"}])"}, {"note", "not json"}});
    CHECK(r.status == 422);
    CHECK(r.content_type == "application/problem+json");
    auto doc = txp::json::parse(r.body);
    CHECK(std::string(doc["type"].GetString()) == "https://txp.dev/problems/validation");
    CHECK(std::string(doc["title"].GetString()) == "Invalid request");
    CHECK(doc["status"].GetInt() == 422);
    CHECK(std::string(doc["detail"].GetString()) == "amount must be positive");
    CHECK(std::string(doc["request_id"].GetString()) == "req-1");
    REQUIRE(doc["errors"].IsArray());
    CHECK(std::string(doc["errors"][0]["field"].GetString()) == "amount");
    CHECK(std::string(doc["note"].GetString()) == "not json");
}

TEST_CASE("url::parse splits scheme, host, port and target", "[http]") {
    auto a = url::parse("https://sandbox.plaid.com/transactions/sync");
    CHECK(a.scheme == "https");
    CHECK(a.host == "sandbox.plaid.com");
    CHECK(a.port == 443);
    CHECK(a.target == "/transactions/sync");

    auto b = url::parse("HTTP://127.0.0.1:8080?x=1#frag");
    CHECK(b.scheme == "http");
    CHECK(b.port == 8080);
    CHECK(b.target == "/?x=1");

    auto c = url::parse("http://[::1]:9000/a");
    CHECK(c.host == "::1");
    CHECK(c.port == 9000);

    CHECK(url::parse("http://example.com").target == "/");
    CHECK_THROWS_AS(url::parse("ftp://example.com/"), std::invalid_argument);
    CHECK_THROWS_AS(url::parse("example.com/"), std::invalid_argument);
    CHECK_THROWS_AS(url::parse("http://:80/"), std::invalid_argument);
    CHECK_THROWS_AS(url::parse("http://host:99999/"), std::invalid_argument);
    CHECK_THROWS_AS(url::parse("http://host:12x/"), std::invalid_argument);
    CHECK_THROWS_AS(url::parse("http://user:pw@host/"), std::invalid_argument);
    CHECK_THROWS_AS(url::parse("http://host/a b"), std::invalid_argument);
}
