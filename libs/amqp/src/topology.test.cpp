// The txp topology: names, retry dead-lettering through the default exchange, the export.
#include <catch2/catch.hpp>

#include <algorithm>
#include <regex>
#include <stdexcept>

#include <cstdlib>

#include "txp/amqp/topology.hpp"

using namespace txp::amqp;

namespace {
const queue_decl* find_queue(const topology& t, const std::string& name) {
    auto it = std::find_if(t.queues.begin(), t.queues.end(), [&](const queue_decl& q) { return q.name == name; });
    return it == t.queues.end() ? nullptr : &*it;
}
bool has_binding(const topology& t, const std::string& ex, const std::string& q, const std::string& key) {
    return std::any_of(t.bindings.begin(), t.bindings.end(), [&](const binding_decl& b) {
        return b.exchange == ex && b.queue == q && b.routing_key == key;
    });
}
}  // namespace

TEST_CASE("txp_topology declares each main queue with its tiers and error queue", "[amqp][topology]") {
    topology t = txp_topology(queue_type::classic);
    REQUIRE(t.exchanges.size() == 4);
    CHECK(t.exchanges[3].name == "txp.events");
    CHECK(t.exchanges[3].type == "topic");

    CHECK(has_binding(t, "txp.commands", "ledger.transactions", "ledger.transaction"));
    CHECK(has_binding(t, "txp.commands", "plaid.sync", "plaid.sync"));
    for (const char* key : {"tx.*", "plaid.*", "notify.*"}) CHECK(has_binding(t, "txp.events", "notifier.events", key));

    for (const std::string q : {"ledger.transactions", "plaid.sync", "notifier.events"}) {
        INFO(q);
        REQUIRE(find_queue(t, q) != nullptr);
        CHECK(find_queue(t, q)->durable);
        for (const auto& tier : default_retry_tiers()) {
            const queue_decl* r = find_queue(t, q + ".retry." + tier.name);
            REQUIRE(r != nullptr);
            CHECK(r->durable);
            CHECK(r->message_ttl_ms == tier.delay.count());
            CHECK(r->dead_letter_exchange == std::string());  // the default exchange
            CHECK(r->dead_letter_routing_key == q);
            CHECK(has_binding(t, "txp.retry", r->name, r->name));
        }
        REQUIRE(find_queue(t, q + ".error") != nullptr);
        CHECK(has_binding(t, "txp.error", q + ".error", q));
    }
    CHECK(t.queues.size() == 3 * 5);
    for (const auto& q : t.queues) {
        INFO(q.name);
        CHECK(q.type == queue_type::classic);
        CHECK_FALSE(q.delivery_limit);
        CHECK_FALSE(q.dead_letter_at_least_once);
    }

    // Every txp queue is a lazy version-2 classic queue through the policy, and nothing else is.
    REQUIRE(t.policies.size() == 1);
    CHECK(t.policies[0].apply_to == "queues");
    REQUIRE(t.policies[0].definition.size() == 2);
    CHECK(t.policies[0].definition[0] == std::pair<std::string, std::variant<std::string, std::int64_t>>{"queue-mode", "lazy"});
    CHECK(t.policies[0].definition[1] ==
          std::pair<std::string, std::variant<std::string, std::int64_t>>{"queue-version", std::int64_t{2}});
    std::regex pattern(t.policies[0].pattern);
    for (const auto& q : t.queues) CHECK(std::regex_search(q.name, pattern));
    CHECK_FALSE(std::regex_search(std::string("amqp_bench.ledger"), pattern));
    CHECK_FALSE(std::regex_search(std::string("ledgerx"), pattern));
}

TEST_CASE("definitions export is deterministic and leaves exclusive queues out", "[amqp][topology]") {
    topology t;
    t.exchanges.push_back({"ex", "direct", true});
    t.queues.push_back(queue_decl{.name = "q\"1", .message_ttl_ms = 1000, .dead_letter_exchange = "",
                                  .dead_letter_routing_key = "back"});
    t.queues.push_back(queue_decl{.name = "mine", .exclusive = true, .auto_delete = true});
    t.bindings.push_back({"ex", "q\"1", "k"});
    t.bindings.push_back({"ex", "mine", "k"});
    std::string json = t.to_definitions_json();
    CHECK(json == t.to_definitions_json());
    CHECK(json.find("\"q\\\"1\"") != std::string::npos);
    CHECK(json.find("\"x-message-ttl\": 1000") != std::string::npos);
    CHECK(json.find("\"x-dead-letter-exchange\": \"\"") != std::string::npos);
    CHECK(json.find("mine") == std::string::npos);
    CHECK(json.find("\"vhosts\"") != std::string::npos);
    CHECK(json.find("\"policies\": []") != std::string::npos);

    t.policies.push_back(policy_decl{.name = "p", .pattern = "^q\\.",
                                     .definition = {{"queue-mode", std::string("lazy")}, {"queue-version", std::int64_t{2}}},
                                     .priority = 2});
    json = t.to_definitions_json();
    CHECK(json.find("\"pattern\": \"^q\\\\.\"") != std::string::npos);
    CHECK(json.find("\"apply-to\": \"queues\"") != std::string::npos);
    CHECK(json.find("\"queue-mode\": \"lazy\",\n        \"queue-version\": 2\n") != std::string::npos);
    CHECK(json.find("\"priority\": 2") != std::string::npos);
}

TEST_CASE("as quorum queues, every txp queue is replicated and no message is dropped on its way", "[amqp][topology]") {
    topology t = txp_topology(queue_type::quorum);
    REQUIRE(t.queues.size() == 3 * 5);
    for (const auto& q : t.queues) {
        INFO(q.name);
        CHECK(q.type == queue_type::quorum);
        CHECK(q.durable);
        CHECK_FALSE(q.exclusive);
        CHECK_FALSE(q.auto_delete);
    }
    for (const std::string q : {"ledger.transactions", "plaid.sync", "notifier.events"}) {
        INFO(q);
        // The main queue parks a message its consumers keep failing to settle, at-least-once,
        // in its own error queue (txp.error routes the queue's name there).
        const queue_decl* main = find_queue(t, q);
        REQUIRE(main != nullptr);
        CHECK(main->delivery_limit == main_queue_delivery_limit);
        CHECK(main->dead_letter_exchange == std::string("txp.error"));
        CHECK(main->dead_letter_routing_key == q);
        CHECK(main->dead_letter_at_least_once);
        CHECK(has_binding(t, "txp.error", q + ".error", q));
        // A retry tier hands an expired message back to its main queue at-least-once.
        for (const auto& tier : default_retry_tiers()) {
            const queue_decl* r = find_queue(t, q + ".retry." + tier.name);
            REQUIRE(r != nullptr);
            CHECK(r->message_ttl_ms == tier.delay.count());
            CHECK(r->dead_letter_exchange == std::string());
            CHECK(r->dead_letter_routing_key == q);
            CHECK(r->dead_letter_at_least_once);
            CHECK_FALSE(r->delivery_limit);
        }
        // The parking lot dead-letters nothing: what is there stays until an operator moves it.
        const queue_decl* error = find_queue(t, q + ".error");
        REQUIRE(error != nullptr);
        CHECK_FALSE(error->dead_letter_exchange);
        CHECK_FALSE(error->delivery_limit);
    }
    // The lazy-queue policy is for classic queues only.
    CHECK(t.policies.empty());

    std::string json = t.to_definitions_json();
    CHECK(json.find("\"x-queue-type\": \"quorum\"") != std::string::npos);
    CHECK(json.find("\"x-delivery-limit\": 20") != std::string::npos);
    CHECK(json.find("\"x-dead-letter-strategy\": \"at-least-once\",\n        \"x-overflow\": \"reject-publish\"") !=
          std::string::npos);
    CHECK(json.find("txp-lazy-queues") == std::string::npos);
    CHECK(txp_topology(queue_type::classic).to_definitions_json().find("x-queue-type") == std::string::npos);
}

TEST_CASE("the queue type is one setting, and a bad value is refused by name", "[amqp][topology]") {
    CHECK(parse_queue_type("classic") == queue_type::classic);
    CHECK(parse_queue_type("quorum") == queue_type::quorum);
    CHECK_THROWS_AS(parse_queue_type("Quorum"), std::invalid_argument);
    CHECK_THROWS_AS(parse_queue_type(""), std::invalid_argument);
    CHECK(std::string(to_string(queue_type::quorum)) == "quorum");

    ::unsetenv("TXP_QUEUE_TYPE");
    CHECK(queue_type_from_env() == default_queue_type);
    ::setenv("TXP_QUEUE_TYPE", "classic", 1);
    CHECK(queue_type_from_env() == queue_type::classic);
    CHECK(txp_topology().queues.front().type == queue_type::classic);
    ::setenv("TXP_QUEUE_TYPE", "quorum", 1);
    CHECK(txp_topology().queues.front().type == queue_type::quorum);
    ::setenv("TXP_QUEUE_TYPE", "mirrored", 1);
    CHECK_THROWS_WITH(queue_type_from_env(), Catch::Contains("TXP_QUEUE_TYPE") && Catch::Contains("classic or quorum"));
    ::unsetenv("TXP_QUEUE_TYPE");
}
