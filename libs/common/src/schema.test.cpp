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

TEST_CASE("a schema refers to another file of proto/: tx.events.v1 holds tx.event.v1 elements", "[schema]") {
    schema::registry reg(TXP_TEST_PROTO_DIR);
    REQUIRE(reg.knows("tx.events.v1"));
    const std::string event = R"({"event_id":"0f8fad5b-d9cb-469f-a165-70867728950e:completed",
        "transaction_id":"0f8fad5b-d9cb-469f-a165-70867728950e","status":"completed","type":"deposit",
        "wallet_id":101,"amount":500,"currency":"USD","occurred_at":"2026-11-22T10:00:00Z"})";
    CHECK_FALSE(reg.validate("tx.events.v1", json::parse(R"({"events":[)" + event + "," + event + "]}")));
    CHECK(reg.validate("tx.events.v1", json::parse(R"({"events":[]})")));
    // An element that breaks tx.event.v1 (a float amount) fails the whole message.
    auto bad = std::string(event);
    bad.replace(bad.find("500"), 3, "5.5");
    auto reason = reg.validate("tx.events.v1", json::parse(R"({"events":[)" + event + "," + bad + "]}"));
    REQUIRE(reason);
    CHECK(reason->find("/events/1") != std::string::npos);
}
