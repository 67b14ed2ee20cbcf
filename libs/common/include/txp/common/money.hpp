// Money: integer minor units with an ISO 4217 currency. Never a floating-point number.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace txp::money {

// The currency's minor-unit exponent (USD 2, JPY 0, KWD 3), or nullopt if it is not an
// active ISO 4217 code this system accepts.
std::optional<int> minor_unit_exponent(std::string_view currency);
bool is_currency(std::string_view currency);

// Exact conversion of a decimal JSON number's text ("12.34", "-0.5", "100", "1e2" is refused)
// to minor units of a currency with the given exponent. Fails (nullopt) on more fractional
// digits than the exponent allows, on overflow, and on anything that is not a plain decimal.
std::optional<std::int64_t> parse_decimal(std::string_view text, int exponent);

// "12.34" for (1234, 2), "-0.05" for (-5, 2), "100" for (100, 0).
std::string format_decimal(std::int64_t minor, int exponent);

// Overflow-checked addition.
std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b);

}  // namespace txp::money
