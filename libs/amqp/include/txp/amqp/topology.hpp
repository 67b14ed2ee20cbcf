// The exchanges, queues and bindings txp relies on, declared idempotently by every
// publisher and consumer on (re)connect and exported as RabbitMQ definitions for the console.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace txp::amqp {

struct exchange_decl {
    std::string name;
    std::string type;
    bool durable = true;
};

// Classic queues live on one node; quorum queues (x-queue-type quorum, RabbitMQ 3.8+) are
// replicated over the cluster's nodes with Raft and survive losing a minority of them. Quorum
// queues are always durable, never exclusive or auto-delete, and have no priorities or lazy
// mode.
enum class queue_type { classic, quorum };

const char* to_string(queue_type t);
// "classic" or "quorum"; throws std::invalid_argument for anything else.
queue_type parse_queue_type(std::string_view text);
// TXP_QUEUE_TYPE, or default_queue_type when unset; a bad value throws std::invalid_argument
// naming the variable.
queue_type queue_type_from_env();
inline constexpr queue_type default_queue_type = queue_type::quorum;

struct queue_decl {
    std::string name;
    bool durable = true;
    bool exclusive = false;
    bool auto_delete = false;
    std::optional<std::int64_t> message_ttl_ms;
    std::optional<std::string> dead_letter_exchange;
    std::optional<std::string> dead_letter_routing_key;
    queue_type type = queue_type::classic;  // quorum: x-queue-type quorum
    // Quorum only: how often a message may be handed out and returned (a consumer that
    // crashed or nacked it) before the broker dead-letters it (x-delivery-limit).
    std::optional<std::int64_t> delivery_limit;
    // Quorum only: the broker keeps a dead-lettered message until the target queue confirmed
    // it (x-dead-letter-strategy at-least-once, which requires x-overflow reject-publish)
    // instead of dropping it when the target is unavailable.
    bool dead_letter_at_least_once = false;
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

// x-delivery-limit of the main queues when they are quorum queues: a message handed out this
// many times without being settled (its consumer crashed on it each time, say) is parked in
// the error queue by the broker instead of going round forever.
inline constexpr std::int64_t main_queue_delivery_limit = 20;

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
// with routing key `queue`), all of type `type`. Declares the txp.retry and txp.error
// exchanges if missing. As quorum queues, the retry tiers dead-letter at-least-once (an
// expired retry is removed only once its main queue has it), and the main queue has
// main_queue_delivery_limit and dead-letters at-least-once to txp.error with routing key
// `queue`, i.e. to its error queue.
void add_work_queue(topology& t, const std::string& queue, const std::string& exchange,
                    const std::vector<std::string>& routing_keys,
                    const std::vector<retry_tier>& tiers = default_retry_tiers(),
                    queue_type type = queue_type::classic);

// The whole txp topology: txp.commands, txp.retry, txp.error (direct), txp.events (topic);
// ledger.transactions, plaid.sync and notifier.events with their retry and error queues, of
// type `type`. Classic: with the txp-lazy-queues policy (lazy, version 2); quorum: no policy.
topology txp_topology(queue_type type);
// The same, of the type TXP_QUEUE_TYPE names (queue_type_from_env()).
topology txp_topology();

}  // namespace txp::amqp
