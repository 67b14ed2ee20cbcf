// Retry-tier and parking-lot routing for failed deliveries.
#include <ctime>
#include <string>

#include "txp/amqp/failure_routing.hpp"

namespace txp::amqp {
namespace {

std::string now_iso8601_utc() {
    using namespace std::chrono;
    auto now = system_clock::now();
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::time_t t = system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms));
    return buf;
}

}  // namespace

std::int64_t attempts(const delivery& d) {
    auto it = d.props.headers.find(header_attempts);
    if (it == d.props.headers.end()) return 0;
    if (const auto* i = std::get_if<std::int64_t>(&it->second)) return *i;
    // Someone (an operator re-publishing by hand) may have typed it as a string.
    if (const auto* s = std::get_if<std::string>(&it->second)) {
        try {
            return std::stoll(*s);
        } catch (const std::exception&) {
            return 0;
        }
    }
    return 0;
}

outgoing route_failure(const delivery& d, const std::string& queue, const failure& f, std::string_view service,
                       const std::vector<retry_tier>& tiers) {
    outgoing o;
    o.body = d.body;
    o.props = d.props;
    o.props.persistent = true;
    auto& h = o.props.headers;

    const std::int64_t n = attempts(d) + 1;
    h[header_attempts] = n;
    auto first = h.find(header_first_failed_at);
    if (first == h.end() || !std::holds_alternative<std::string>(first->second) ||
        std::get<std::string>(first->second).empty()) {
        h[header_first_failed_at] = now_iso8601_utc();
    }

    if (f.kind == failure_kind::transient && n <= static_cast<std::int64_t>(tiers.size())) {
        o.exchange = retry_exchange;
        o.routing_key = retry_queue_name(queue, tiers[static_cast<std::size_t>(n - 1)]);
        h[header_last_error_reason] = f.reason;
        return o;
    }
    o.exchange = error_exchange;
    o.routing_key = queue;
    h[header_error_reason] = f.reason;
    h[header_error_detail] = f.detail;
    h[header_failed_service] = std::string(service);
    h[header_origin_queue] = queue;
    h[header_last_error_reason] = f.reason;
    return o;
}

bool is_parked(const outgoing& o) { return o.exchange == error_exchange; }

}  // namespace txp::amqp
