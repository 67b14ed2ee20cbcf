// The txp broker topology and its export in RabbitMQ's definitions format.
#include <stdexcept>
#include <string>

#include "txp/amqp/topology.hpp"
#include "txp/common/config.hpp"

namespace txp::amqp {
namespace {

void json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    static const char* hex = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

// Writes `items` as a JSON array of objects, each rendered by `one` at the given indentation.
template <typename T, typename F>
void json_array(std::string& out, const char* key, const std::vector<T>& items, F one, bool last) {
    out += "  \"";
    out += key;
    out += "\": [";
    bool first = true;
    for (const T& item : items) {
        std::string obj = one(item);
        if (obj.empty()) continue;
        out += first ? "\n" : ",\n";
        out += obj;
        first = false;
    }
    out += first ? "]" : "\n  ]";
    out += last ? "\n" : ",\n";
}

}  // namespace

std::string topology::to_definitions_json() const {
    std::string out = "{\n";
    out += "  \"vhosts\": [\n    {\n      \"name\": \"/\"\n    }\n  ],\n";
    json_array(out, "exchanges", exchanges, [](const exchange_decl& e) {
        std::string o = "    {\n      \"name\": ";
        json_string(o, e.name);
        o += ",\n      \"vhost\": \"/\",\n      \"type\": ";
        json_string(o, e.type);
        o += ",\n      \"durable\": ";
        o += json_bool(e.durable);
        o += ",\n      \"auto_delete\": false,\n      \"internal\": false,\n      \"arguments\": {}\n    }";
        return o;
    }, false);
    json_array(out, "queues", queues, [](const queue_decl& q) {
        if (q.exclusive) return std::string();
        std::string o = "    {\n      \"name\": ";
        json_string(o, q.name);
        o += ",\n      \"vhost\": \"/\",\n      \"durable\": ";
        o += json_bool(q.durable);
        o += ",\n      \"auto_delete\": ";
        o += json_bool(q.auto_delete);
        o += ",\n      \"arguments\": {";
        std::string args;
        auto sep = [&] { args += args.empty() ? "\n" : ",\n"; };
        if (q.dead_letter_exchange) {
            sep();
            args += "        \"x-dead-letter-exchange\": ";
            json_string(args, *q.dead_letter_exchange);
        }
        if (q.dead_letter_routing_key) {
            sep();
            args += "        \"x-dead-letter-routing-key\": ";
            json_string(args, *q.dead_letter_routing_key);
        }
        if (q.message_ttl_ms) {
            sep();
            args += "        \"x-message-ttl\": " + std::to_string(*q.message_ttl_ms);
        }
        if (q.type == queue_type::quorum) {
            sep();
            args += "        \"x-queue-type\": \"quorum\"";
            if (q.delivery_limit) {
                sep();
                args += "        \"x-delivery-limit\": " + std::to_string(*q.delivery_limit);
            }
            if (q.dead_letter_at_least_once) {
                sep();
                args += "        \"x-dead-letter-strategy\": \"at-least-once\",\n        \"x-overflow\": \"reject-publish\"";
            }
        }
        o += args;
        o += args.empty() ? "}\n    }" : "\n      }\n    }";
        return o;
    }, false);
    json_array(out, "bindings", bindings, [this](const binding_decl& b) {
        for (const auto& q : queues) {
            if (q.name == b.queue && q.exclusive) return std::string();
        }
        std::string o = "    {\n      \"source\": ";
        json_string(o, b.exchange);
        o += ",\n      \"vhost\": \"/\",\n      \"destination\": ";
        json_string(o, b.queue);
        o += ",\n      \"destination_type\": \"queue\",\n      \"routing_key\": ";
        json_string(o, b.routing_key);
        o += ",\n      \"arguments\": {}\n    }";
        return o;
    }, false);
    json_array(out, "policies", policies, [](const policy_decl& p) {
        std::string o = "    {\n      \"vhost\": \"/\",\n      \"name\": ";
        json_string(o, p.name);
        o += ",\n      \"pattern\": ";
        json_string(o, p.pattern);
        o += ",\n      \"apply-to\": ";
        json_string(o, p.apply_to);
        o += ",\n      \"definition\": {";
        bool first = true;
        for (const auto& [k, v] : p.definition) {
            o += first ? "\n        " : ",\n        ";
            json_string(o, k);
            o += ": ";
            if (const auto* text = std::get_if<std::string>(&v)) json_string(o, *text);
            else o += std::to_string(std::get<std::int64_t>(v));
            first = false;
        }
        o += first ? "}" : "\n      }";
        o += ",\n      \"priority\": " + std::to_string(p.priority) + "\n    }";
        return o;
    }, true);
    out += "}\n";
    return out;
}

topology& topology::merge(const topology& other) {
    exchanges.insert(exchanges.end(), other.exchanges.begin(), other.exchanges.end());
    queues.insert(queues.end(), other.queues.begin(), other.queues.end());
    bindings.insert(bindings.end(), other.bindings.begin(), other.bindings.end());
    policies.insert(policies.end(), other.policies.begin(), other.policies.end());
    return *this;
}

std::vector<retry_tier> default_retry_tiers() {
    using std::chrono::seconds;
    return {{"1s", seconds(1)}, {"10s", seconds(10)}, {"60s", seconds(60)}};
}

std::string retry_queue_name(const std::string& queue, const retry_tier& tier) { return queue + ".retry." + tier.name; }
std::string error_queue_name(const std::string& queue) { return queue + ".error"; }

namespace {
void add_exchange_once(topology& t, const std::string& name, const std::string& type) {
    for (const auto& e : t.exchanges) {
        if (e.name == name) return;
    }
    t.exchanges.push_back({name, type, true});
}
}  // namespace

void add_work_queue(topology& t, const std::string& queue, const std::string& exchange,
                    const std::vector<std::string>& routing_keys, const std::vector<retry_tier>& tiers,
                    queue_type type) {
    add_exchange_once(t, retry_exchange, "direct");
    add_exchange_once(t, error_exchange, "direct");
    const bool quorum = type == queue_type::quorum;

    queue_decl main{.name = queue, .type = type};
    if (quorum) {
        // A message its consumers keep failing to settle (a crash on it, every time) is parked
        // by the broker; the worker's own retry and error routing (x-attempts) handles every
        // failure it sees. At-least-once: the error queue must have it before it is removed.
        main.dead_letter_exchange = error_exchange;
        main.dead_letter_routing_key = queue;
        main.delivery_limit = main_queue_delivery_limit;
        main.dead_letter_at_least_once = true;
    }
    t.queues.push_back(std::move(main));
    for (const auto& key : routing_keys) t.bindings.push_back({exchange, queue, key});
    for (const auto& tier : tiers) {
        std::string name = retry_queue_name(queue, tier);
        // Dead-letter through the default exchange: straight back to this queue only, even
        // when the queue is fed by a topic exchange that would fan a re-publish out. A quorum
        // retry queue hands an expired message on at-least-once: it stays in the tier until
        // the main queue confirmed it (classic queues dead-letter at-most-once: a message
        // expiring while its main queue is unavailable is dropped).
        t.queues.push_back(queue_decl{.name = name,
                                      .message_ttl_ms = tier.delay.count(),
                                      .dead_letter_exchange = std::string(),
                                      .dead_letter_routing_key = queue,
                                      .type = type,
                                      .dead_letter_at_least_once = quorum});
        t.bindings.push_back({retry_exchange, name, name});
    }
    std::string error_queue = error_queue_name(queue);
    t.queues.push_back(queue_decl{.name = error_queue, .type = type});
    t.bindings.push_back({error_exchange, error_queue, queue});
}

const char* to_string(queue_type t) { return t == queue_type::quorum ? "quorum" : "classic"; }

queue_type parse_queue_type(std::string_view text) {
    if (text == "classic") return queue_type::classic;
    if (text == "quorum") return queue_type::quorum;
    throw std::invalid_argument("queue type must be classic or quorum");
}

queue_type queue_type_from_env() {
    auto v = config::get("TXP_QUEUE_TYPE");
    if (!v) return default_queue_type;
    try {
        return parse_queue_type(*v);
    } catch (const std::invalid_argument&) {
        throw config::config_error("configuration: TXP_QUEUE_TYPE must be classic or quorum (got \"" +
                                  (v->size() > 24 ? v->substr(0, 8) + "..." : *v) + "\")");
    }
}

topology txp_topology() { return txp_topology(queue_type_from_env()); }

topology txp_topology(queue_type type) {
    topology t;
    t.exchanges = {
        {commands_exchange, "direct", true},
        {retry_exchange, "direct", true},
        {error_exchange, "direct", true},
        {events_exchange, "topic", true},
    };
    const auto tiers = default_retry_tiers();
    add_work_queue(t, "ledger.transactions", commands_exchange, {"ledger.transaction"}, tiers, type);
    add_work_queue(t, "plaid.sync", commands_exchange, {"plaid.sync"}, tiers, type);
    add_work_queue(t, "notifier.events", events_exchange, {"tx.*", "plaid.*", "notify.*"}, tiers, type);
    // Quorum queues have no lazy mode or versions (their log is on disk already): the policy
    // would only stand in the way of one that applies to them.
    if (type == queue_type::quorum) return t;
    // Lazy classic queues keep messages on disk rather than in the queue process's memory: a
    // backlog (workers stopped, a burst) costs no memory, and the broker does not spend its
    // CPU garbage-collecting a large queue heap (measured: the ledger drain with 200,000
    // queued messages went from 3,900 to 4,900 transactions/s). Version 2 of the classic
    // queue's index and store (RabbitMQ 3.10+) costs the broker less CPU per message
    // (measured with amqp_bench: 12,300-13,300 -> 16,800-17,000 persistent msg/s).
    t.policies.push_back(policy_decl{.name = "txp-lazy-queues",
                                     .pattern = "^(ledger|plaid|notifier)\\.",
                                     .definition = {{"queue-mode", std::string("lazy")}, {"queue-version", std::int64_t{2}}}});
    return t;
}

}  // namespace txp::amqp
