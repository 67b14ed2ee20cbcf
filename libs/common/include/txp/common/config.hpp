// Configuration from environment variables. A missing or malformed variable throws
// config_error whose what() is one line naming the variable and what is expected.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace txp::config {

class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Raw value, or nullopt when unset (an empty value counts as unset).
std::optional<std::string> get(std::string_view name);

std::string require_string(std::string_view name);
std::string get_string(std::string_view name, std::string_view fallback);

// Integers in [min, max]; anything else (garbage, out of range) is a config_error.
std::int64_t get_int(std::string_view name, std::int64_t fallback, std::int64_t min, std::int64_t max);
std::int64_t require_int(std::string_view name, std::int64_t min, std::int64_t max);

bool get_bool(std::string_view name, bool fallback);

// Durations such as "250ms", "5s", "2m", or a bare number of milliseconds.
std::chrono::milliseconds get_duration(std::string_view name, std::chrono::milliseconds fallback);

// A URL with one of the given schemes ("postgresql,postgres" or "amqp,amqps").
std::string require_url(std::string_view name, std::string_view schemes);

// A replica id for logs and metrics: TXP_REPLICA_ID, else "<hostname>-<pid>".
std::string replica_id();

// Parses a duration text as get_duration does; throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);

}  // namespace txp::config
