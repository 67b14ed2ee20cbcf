// The exchanges, queues and bindings txp relies on, declared idempotently by every
// publisher and consumer on (re)connect and exported as RabbitMQ definitions for the console.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace txp::amqp {

struct exchange_decl {
    std::string name;
    std::string type;
    bool durable = true;
};

struct queue_decl {
    std::string name;
    bool durable = true;
    bool exclusive = false;
    bool auto_delete = false;
    std::optional<std::int64_t> message_ttl_ms;
    std::optional<std::string> dead_letter_exchange;
    std::optional<std::string> dead_letter_routing_key;
};

struct binding_decl {
    std::string exchange;
    std::string queue;
    std::string routing_key;
};

// A broker policy. AMQP cannot set policies: they reach the broker through the definitions
// file (docker-compose) or scripts/lib/infra.sh's bootstrap_vhost (native runs), which reads
// them from that file.
struct policy_decl {
    std::string name;
    std::string pattern;  // a regular expression over queue names
    std::string apply_to = "queues";
    std::vector<std::pair<std::string, std::variant<std::string, std::int64_t>>> definition;
    int priority = 0;
};

struct topology {
    std::vector<exchange_decl> exchanges;
    std::vector<queue_decl> queues;
    std::vector<binding_decl> bindings;
    std::vector<policy_decl> policies;

    // RabbitMQ definitions (vhosts, exchanges, queues, bindings, policies, all in vhost "/"),
    // pretty-printed, in declaration order. Exclusive queues belong to one connection and
    // are left out.
    std::string to_definitions_json() const;

    // Appends another topology (duplicates are harmless: declaring is idempotent).
    topology& merge(const topology& other);
};

struct retry_tier {
    std::string name;  // "1s", "10s", "60s": the suffix of the retry queue
    std::chrono::milliseconds delay;
};

std::vector<retry_tier> default_retry_tiers();  // 1s, 10s, 60s

inline constexpr const char* commands_exchange = "txp.commands";
inline constexpr const char* retry_exchange = "txp.retry";
inline constexpr const char* error_exchange = "txp.error";
inline constexpr const char* events_exchange = "txp.events";

std::string retry_queue_name(const std::string& queue, const retry_tier& tier);  // "<queue>.retry.<tier>"
std::string error_queue_name(const std::string& queue);                         // "<queue>.error"

// Adds work queue `queue` (durable) bound to `exchange` with each of `routing_keys`, one
// retry queue per tier (bound to txp.retry with its own name as routing key, x-message-ttl
// the tier delay, dead-lettering to the default exchange with routing key `queue` so that
// a retried message returns to this queue only) and its error queue (bound to txp.error
// with routing key `queue`). Declares the txp.retry and txp.error exchanges if missing.
void add_work_queue(topology& t, const std::string& queue, const std::string& exchange,
                    const std::vector<std::string>& routing_keys,
                    const std::vector<retry_tier>& tiers = default_retry_tiers());

// The whole txp topology: txp.commands, txp.retry, txp.error (direct), txp.events (topic);
// ledger.transactions, plaid.sync and notifier.events with their retry and error queues.
topology txp_topology();

}  // namespace txp::amqp
