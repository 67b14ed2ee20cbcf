// Messages are validated against their schemas in proto/.
#include "txp/common/schema.hpp"

#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

using namespace txp;

TEST_CASE("a valid ledger transaction passes, invalid ones are recognised", "[schema]") {
    schema::registry reg(TXP_TEST_PROTO_DIR);
    REQUIRE(reg.knows("ledger.transaction.v1"));
    const std::string good = R"({"transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"deposit",
        "wallet_id":101,"amount":500,"currency":"USD","sequence":1,"accepted_at":"2026-11-22T10:00:00Z"})";
    CHECK_FALSE(reg.validate("ledger.transaction.v1", json::parse(good)));

    auto bad = [&](const std::string& text) { return reg.validate("ledger.transaction.v1", json::parse(text)); };
    CHECK(bad(R"({"transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"deposit","wallet_id":101,"amount":0,"currency":"USD","sequence":1,"accepted_at":"x"})"));
    CHECK(bad(R"({"transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"deposit","wallet_id":101,"amount":1.5,"currency":"USD","sequence":1,"accepted_at":"x"})"));
    CHECK(bad(R"({"transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"steal","wallet_id":101,"amount":5,"currency":"USD","sequence":1,"accepted_at":"x"})"));
    CHECK(bad(R"({"transaction_id":"nope","type":"deposit","wallet_id":101,"amount":5,"currency":"USD","sequence":1,"accepted_at":"x"})"));
    CHECK(bad(R"({"transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"deposit","wallet_id":101,"amount":5,"currency":"USD","sequence":1,"accepted_at":"x","extra":1})"));
    auto reason = bad(R"({"type":"deposit"})");
    REQUIRE(reason);
    CHECK(reason->find("required") != std::string::npos);
    CHECK(reg.validate("no.such.type", json::parse("{}")));
}

TEST_CASE("every schema in proto/ loads", "[schema]") {
    schema::registry reg(TXP_TEST_PROTO_DIR);
    CHECK(reg.knows("tx.event.v1"));
}
