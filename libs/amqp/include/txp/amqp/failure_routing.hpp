// Where a message goes after its handler failed: the next retry tier for a transient fault,
// the error queue (parking lot) for a permanent one or when the tiers are used up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "txp/amqp/message.hpp"
#include "txp/amqp/topology.hpp"

namespace txp::amqp {

enum class failure_kind { transient, permanent };

struct failure {
    failure_kind kind;
    std::string reason;  // short and stable, e.g. "db_unavailable", "schema_invalid"
    std::string detail;  // human text for the operator
};

// Header names, as operators see them in the console.
inline constexpr const char* header_attempts = "x-attempts";
inline constexpr const char* header_first_failed_at = "x-first-failed-at";
inline constexpr const char* header_last_error_reason = "x-last-error-reason";
inline constexpr const char* header_error_reason = "x-error-reason";
inline constexpr const char* header_error_detail = "x-error-detail";
inline constexpr const char* header_failed_service = "x-failed-service";
inline constexpr const char* header_origin_queue = "x-origin-queue";

// The message to publish (with confirms, before acking `d`) for delivery `d` of main queue
// `queue` that failed with `f`. The body is untouched and the properties kept; x-attempts is
// the previous value + 1. Transient with attempts <= tiers.size(): txp.retry with routing
// key "<queue>.retry.<tier>". Otherwise: txp.error with routing key `queue` and the
// x-error-* headers. x-first-failed-at (ISO-8601 UTC) is set on the first failure and kept.
outgoing route_failure(const delivery& d, const std::string& queue, const failure& f, std::string_view service,
                       const std::vector<retry_tier>& tiers = default_retry_tiers());

std::int64_t attempts(const delivery& d);  // the x-attempts header, or 0
bool is_parked(const outgoing& o);         // goes to txp.error

}  // namespace txp::amqp
