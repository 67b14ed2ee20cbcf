// Retry tiers and the error queue on the real broker: a transient failure comes back to its
// own queue after the tier's TTL; a parked message carries the operator's headers.
#include <catch2/catch.hpp>

#include "amqp_support.hpp"

using namespace txp::amqp;
using namespace amqp_test;

namespace {
std::string text_header(const delivery& d, const char* name) {
    auto it = d.props.headers.find(name);
    if (it == d.props.headers.end() || !std::holds_alternative<std::string>(it->second)) return "<missing>";
    return std::get<std::string>(it->second);
}
}  // namespace

TEST_CASE("a transient failure returns to its queue after the 1s tier, then parks", "[amqp][integration]") {
    scratch_queue q("retry", /*with_retry=*/true);
    publisher pub(options("amqp_test.retry.pub"), q.topo);
    consumer con(options("amqp_test.retry.con"), q.topo, q.name, 10);
    admin a(options("amqp_test.retry.admin"));

    const std::string body = R"({"amount":100,"currency":"USD","note":"unchanged"})";
    outgoing original = q.message("retry-1", body);
    original.props.correlation_id = "req-42";
    pub.publish_one(original);

    auto first = con.next(10s);
    REQUIRE(first.has_value());
    CHECK(attempts(*first) == 0);

    const failure transient{failure_kind::transient, "db_unavailable", "connection refused"};
    outgoing hop = route_failure(*first, q.name, transient, "amqp-tests");
    CHECK(hop.routing_key == q.name + ".retry.1s");
    const auto published_at = clock::now();  // before: the TTL runs from when the queue took it
    pub.publish_one(hop);
    REQUIRE(con.ack(*first));

    auto back = con.next(20s);
    REQUIRE(back.has_value());
    // The TTL is the queue's: it cannot have come back before it expired.
    CHECK(clock::now() - published_at >= 950ms);
    CHECK(back->props.message_id == "retry-1");
    CHECK(back->props.correlation_id == "req-42");
    CHECK(back->body == body);
    CHECK(attempts(*back) == 1);
    CHECK(back->exchange.empty());           // dead-lettered through the default exchange
    CHECK(back->routing_key == q.name);      // straight to its own queue
    CHECK(text_header(*back, "x-last-error-reason") == "db_unavailable");
    const std::string first_failed_at = text_header(*back, "x-first-failed-at");
    CHECK(first_failed_at != "<missing>");

    // The second hop goes to the 10s tier: check the routing without waiting for it.
    outgoing second = route_failure(*back, q.name, transient, "amqp-tests");
    CHECK(second.routing_key == q.name + ".retry.10s");
    pub.publish_one(second);
    CHECK(eventually([&] { return a.queue_depth(q.name + ".retry.10s") == 1; }, 5s));
    REQUIRE(con.ack(*back));

    // Take it out of the 10s tier by hand, as if it had expired, and exhaust the tiers.
    auto in_tier = a.get(q.name + ".retry.10s");
    REQUIRE(in_tier.has_value());
    a.ack(in_tier->delivery_tag);
    CHECK(attempts(*in_tier) == 2);
    outgoing third = route_failure(*in_tier, q.name, transient, "amqp-tests");
    CHECK(third.routing_key == q.name + ".retry.60s");
    delivery after_third;
    after_third.body = third.body;
    after_third.props = third.props;
    outgoing parked = route_failure(after_third, q.name, transient, "amqp-tests");
    REQUIRE(is_parked(parked));
    pub.publish_one(parked);

    std::optional<delivery> err;
    REQUIRE(eventually([&] { return (err = a.get(q.name + ".error")).has_value(); }, 5s));
    a.ack(err->delivery_tag);
    CHECK(err->body == body);
    CHECK(err->props.message_id == "retry-1");
    CHECK(attempts(*err) == 4);
    CHECK(text_header(*err, "x-error-reason") == "db_unavailable");
    CHECK(text_header(*err, "x-error-detail") == "connection refused");
    CHECK(text_header(*err, "x-failed-service") == "amqp-tests");
    CHECK(text_header(*err, "x-origin-queue") == q.name);
    CHECK(text_header(*err, "x-first-failed-at") == first_failed_at);
    CHECK_FALSE(con.next(200ms).has_value());
}

TEST_CASE("a permanent failure goes straight to the error queue", "[amqp][integration]") {
    scratch_queue q("park", /*with_retry=*/true);
    publisher pub(options("amqp_test.park.pub"), q.topo);
    consumer con(options("amqp_test.park.con"), q.topo, q.name, 10);
    admin a(options("amqp_test.park.admin"));

    pub.publish_one(q.message("park-1", "not json"));
    auto d = con.next(10s);
    REQUIRE(d.has_value());
    outgoing parked = route_failure(*d, q.name, {failure_kind::permanent, "unparseable", "expected JSON"}, "amqp-tests");
    CHECK(parked.exchange == "txp.error");
    pub.publish_one(parked);
    REQUIRE(con.ack(*d));

    std::optional<delivery> err;
    REQUIRE(eventually([&] { return (err = a.get(q.name + ".error")).has_value(); }, 5s));
    CHECK(err->body == "not json");
    CHECK(attempts(*err) == 1);
    CHECK(text_header(*err, "x-error-reason") == "unparseable");
    for (const auto& tier : default_retry_tiers()) CHECK(a.queue_depth(retry_queue_name(q.name, tier)) == 0);
}
