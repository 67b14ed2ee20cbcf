// Strict JSON: malformed text, deep nesting and wrong number shapes are refused clearly.
#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

using namespace txp;

TEST_CASE("malformed and trailing-garbage JSON is refused", "[json]") {
    CHECK_THROWS_AS(json::parse("{\"a\":"), json::parse_error);
    CHECK_THROWS_AS(json::parse("{\"a\":1} x"), json::parse_error);
    CHECK_THROWS_AS(json::parse(""), json::parse_error);
    CHECK_THROWS_AS(json::parse("{\"a\":\"\xff\"}"), json::parse_error);
    CHECK_NOTHROW(json::parse("  {\"a\":1}  "));
}

TEST_CASE("nesting depth is bounded", "[json]") {
    std::string deep(100, '[');
    deep += std::string(100, ']');
    CHECK_THROWS_WITH(json::parse(deep), Catch::Contains("deeper"));
    // Brackets inside strings do not count.
    CHECK_NOTHROW(json::parse("{\"s\":\"" + std::string(100, '[') + "\"}"));
}

TEST_CASE("integers must be exact int64 values", "[json]") {
    auto doc = json::parse(R"({"a":5,"b":1.5,"c":"12","d":9223372036854775808,"e":1e3,"f":-9223372036854775808,"g":1e300})");
    CHECK(json::require_int(doc, "a") == 5);
    CHECK_THROWS_WITH(json::require_int(doc, "b"), Catch::Contains("integer"));
    CHECK_THROWS_WITH(json::require_int(doc, "c"), Catch::Contains("not a string"));
    CHECK_THROWS_WITH(json::require_int(doc, "d"), Catch::Contains("too large"));
    CHECK_THROWS_AS(json::require_int(doc, "e"), json::field_error);
    CHECK(json::require_int(doc, "f") == INT64_MIN);
    CHECK_THROWS_WITH(json::require_int(doc, "g"), Catch::Contains("out of range"));
    CHECK_THROWS_WITH(json::require_int(doc, "missing"), Catch::Contains("required"));
    try {
        json::require_int(doc, "b");
    } catch (const json::field_error& e) {
        CHECK(e.field() == "b");
    }
}

TEST_CASE("strings are length-bounded", "[json]") {
    auto doc = json::parse(R"({"s":"hello","n":3})");
    CHECK(json::require_string(doc, "s") == "hello");
    CHECK_THROWS_WITH(json::require_string(doc, "s", 3), Catch::Contains("longer than 3"));
    CHECK_THROWS_WITH(json::require_string(doc, "n"), Catch::Contains("must be a string"));
    CHECK_FALSE(json::optional_string(doc, "absent"));
}

TEST_CASE("the writer produces parseable JSON", "[json]") {
    json::writer w;
    w.start_object().kv("id", "x\"y").kv("n", std::int64_t{-3}).kv("b", false).key("null").null().end_object();
    auto doc = json::parse(w.str());
    CHECK(std::string(doc["id"].GetString()) == "x\"y");
    CHECK(doc["n"].GetInt64() == -3);
}
