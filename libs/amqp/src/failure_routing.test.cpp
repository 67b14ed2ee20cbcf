// route_failure: tier progression, parking, headers, body untouched.
#include <catch2/catch.hpp>

#include <regex>

#include "txp/amqp/failure_routing.hpp"

using namespace txp::amqp;

namespace {
delivery make_delivery() {
    delivery d;
    d.body = R"({"amount":1234,"currency":"EUR"})";
    d.props.message_id = "m-1";
    d.props.correlation_id = "req-9";
    d.props.type = "ledger.transaction.v1";
    d.props.headers["x-custom"] = std::string("kept");
    d.queue = "ledger.transactions";
    return d;
}
// What the consumer of the next hop would see.
delivery as_delivery(const outgoing& o) {
    delivery d;
    d.body = o.body;
    d.props = o.props;
    return d;
}
std::string header(const outgoing& o, const char* name) {
    auto it = o.props.headers.find(name);
    REQUIRE(it != o.props.headers.end());
    REQUIRE(std::holds_alternative<std::string>(it->second));
    return std::get<std::string>(it->second);
}
}  // namespace

TEST_CASE("transient failures climb 1s, 10s, 60s, then park", "[amqp][failure]") {
    const failure f{failure_kind::transient, "db_unavailable", "connection refused"};
    delivery d = make_delivery();
    const std::string body = d.body;
    CHECK(attempts(d) == 0);

    std::string first_failed_at;
    const char* keys[] = {"ledger.transactions.retry.1s", "ledger.transactions.retry.10s",
                          "ledger.transactions.retry.60s"};
    for (int i = 0; i < 3; ++i) {
        outgoing o = route_failure(d, "ledger.transactions", f, "ledger");
        CHECK(o.exchange == "txp.retry");
        CHECK(o.routing_key == keys[i]);
        CHECK_FALSE(is_parked(o));
        CHECK(o.body == body);
        CHECK(o.props.message_id == "m-1");
        CHECK(o.props.correlation_id == "req-9");
        CHECK(o.props.persistent);
        CHECK(header(o, "x-custom") == "kept");
        CHECK(header(o, "x-last-error-reason") == "db_unavailable");
        if (i == 0) {
            first_failed_at = header(o, "x-first-failed-at");
            CHECK(std::regex_match(first_failed_at, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
        } else {
            CHECK(header(o, "x-first-failed-at") == first_failed_at);
        }
        d = as_delivery(o);
        CHECK(attempts(d) == i + 1);
    }
    outgoing parked = route_failure(d, "ledger.transactions", f, "ledger");
    CHECK(is_parked(parked));
    CHECK(parked.exchange == "txp.error");
    CHECK(parked.routing_key == "ledger.transactions");
    CHECK(parked.body == body);
    CHECK(std::get<std::int64_t>(parked.props.headers.at("x-attempts")) == 4);
    CHECK(header(parked, "x-error-reason") == "db_unavailable");
    CHECK(header(parked, "x-error-detail") == "connection refused");
    CHECK(header(parked, "x-failed-service") == "ledger");
    CHECK(header(parked, "x-origin-queue") == "ledger.transactions");
    CHECK(header(parked, "x-first-failed-at") == first_failed_at);
}

TEST_CASE("a permanent failure parks at once", "[amqp][failure]") {
    outgoing o = route_failure(make_delivery(), "plaid.sync", {failure_kind::permanent, "schema_invalid", "no amount"},
                               "plaid-sync");
    CHECK(is_parked(o));
    CHECK(o.routing_key == "plaid.sync");
    CHECK(std::get<std::int64_t>(o.props.headers.at("x-attempts")) == 1);
    CHECK(header(o, "x-error-reason") == "schema_invalid");
    CHECK(header(o, "x-failed-service") == "plaid-sync");
}

TEST_CASE("attempts reads integer and text headers", "[amqp][failure]") {
    delivery d;
    d.props.headers["x-attempts"] = std::int64_t{2};
    CHECK(attempts(d) == 2);
    d.props.headers["x-attempts"] = std::string("3");
    CHECK(attempts(d) == 3);
    d.props.headers["x-attempts"] = std::string("junk");
    CHECK(attempts(d) == 0);
}
