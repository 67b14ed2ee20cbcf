// Where a broker is and what a message looks like on the wire, free of rabbitmq-c types so
// that services can include it without pulling in the C client.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace txp::amqp {

struct endpoint {
    std::string host = "127.0.0.1";
    int port = 5672;
    std::string user = "guest";
    std::string password = "guest";
    std::string vhost = "/";

    // amqp://user:pass@host:port/vhost; user, password and vhost are percent-decoded
    // (%2f is "/"), a missing or empty vhost is "/", a missing port is 5672. Throws
    // std::invalid_argument with a message that never contains the password.
    static endpoint parse(std::string_view url);

    // host:port/vhost, safe to log.
    std::string describe() const;
};

// A comma-separated list of amqp:// URLs, one per node of a cluster ("amqp://u:p@h1:5672/v,
// amqp://u:p@h2:5672/v"); a single URL is a list of one. Each is parsed as endpoint::parse
// does; an empty entry is an error.
std::vector<endpoint> parse_endpoints(std::string_view urls);

struct connection_options {
    endpoint ep;  // the node connected to first
    // The cluster's other nodes. After a connection to one node fails or is lost, the
    // publisher and the consumer connect to the next in turn (ep, others..., ep, ...), and
    // back off only once every node has failed in a row.
    std::vector<endpoint> others;
    std::chrono::seconds heartbeat{10};
    std::string connection_name;  // client property connection_name, shown in the console
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{10000};

    // ep and others from a list for parse_endpoints (TXP_AMQP_URL).
    void set_endpoints(std::string_view urls);
    // The i-th node in turn: ep for 0, then others, wrapping around.
    const endpoint& node(std::size_t i) const { return i % (others.size() + 1) == 0 ? ep : others[i % (others.size() + 1) - 1]; }
    std::size_t node_count() const { return others.size() + 1; }
};

using header_value = std::variant<std::string, std::int64_t, bool>;
using header_table = std::map<std::string, header_value>;

// A header as text ("" when absent; numbers and booleans written out), for reasons and logs.
inline std::string header_text(const header_table& h, const std::string& name) {
    auto it = h.find(name);
    if (it == h.end()) return "";
    if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
    if (const auto* i = std::get_if<std::int64_t>(&it->second)) return std::to_string(*i);
    return std::get<bool>(it->second) ? "true" : "false";
}

struct properties {
    std::string message_id;
    std::string correlation_id;
    std::string type;
    std::string content_type = "application/json";
    std::string app_id;
    std::int64_t timestamp = 0;  // seconds since the epoch, 0 = not set
    header_table headers;
    bool persistent = true;
};

struct outgoing {
    std::string exchange;
    std::string routing_key;
    std::string body;
    properties props;
    // Mandatory (the default): a message no queue is bound to comes back as `returned`, an
    // error its publisher handles. false for a broadcast that may have no listener at the
    // moment (auth.token_revoked): unroutable, it is simply confirmed.
    bool mandatory = true;
};

struct delivery {
    std::string body;
    properties props;
    std::string exchange;
    std::string routing_key;
    std::string queue;
    bool redelivered = false;
    std::uint64_t delivery_tag = 0;
    // The consumer connection this came through: acks for an older generation are no-ops,
    // because the broker has already requeued the message when that connection died.
    std::uint64_t generation = 0;
};

}  // namespace txp::amqp
