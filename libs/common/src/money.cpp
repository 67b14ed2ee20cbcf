// ISO 4217 currencies and exact decimal <-> minor-unit conversion.
#include "txp/common/money.hpp"

#include <array>
#include <utility>

namespace txp::money {

namespace {
// Active ISO 4217 codes with their minor-unit exponents (a practical subset; extend as needed).
constexpr std::array<std::pair<std::string_view, int>, 52> currencies{{
    {"AED", 2}, {"ARS", 2}, {"AUD", 2}, {"BGN", 2}, {"BHD", 3}, {"BRL", 2}, {"CAD", 2}, {"CHF", 2}, {"CLP", 0},
    {"CNY", 2}, {"COP", 2}, {"CZK", 2}, {"DKK", 2}, {"EGP", 2}, {"EUR", 2}, {"GBP", 2}, {"HKD", 2}, {"HUF", 2},
    {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KES", 2}, {"KRW", 0}, {"KWD", 3},
    {"MAD", 2}, {"MXN", 2}, {"MYR", 2}, {"NGN", 2}, {"NOK", 2}, {"NZD", 2}, {"OMR", 3}, {"PEN", 2}, {"PHP", 2},
    {"PKR", 2}, {"PLN", 2}, {"QAR", 2}, {"RON", 2}, {"SAR", 2}, {"SEK", 2}, {"SGD", 2}, {"THB", 2}, {"TND", 3},
    {"TRY", 2}, {"TWD", 2}, {"UAH", 2}, {"USD", 2}, {"VND", 0}, {"XOF", 0}, {"ZAR", 2},
}};
}  // namespace

std::optional<int> minor_unit_exponent(std::string_view currency) {
    for (const auto& [code, exp] : currencies) {
        if (code == currency) return exp;
    }
    return std::nullopt;
}

bool is_currency(std::string_view currency) { return minor_unit_exponent(currency).has_value(); }

std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
    std::int64_t out;
    if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
    return out;
}

std::optional<std::int64_t> parse_decimal(std::string_view text, int exponent) {
    if (text.empty() || exponent < 0 || exponent > 6) return std::nullopt;
    bool negative = false;
    std::size_t i = 0;
    if (text[0] == '-') {
        negative = true;
        i = 1;
    }
    if (i >= text.size()) return std::nullopt;
    std::int64_t value = 0;
    int frac_digits = -1;  // -1: no point seen yet
    bool any_digit = false;
    for (; i < text.size(); ++i) {
        char c = text[i];
        if (c == '.') {
            if (frac_digits >= 0 || !any_digit) return std::nullopt;
            frac_digits = 0;
            continue;
        }
        if (c < '0' || c > '9') return std::nullopt;
        any_digit = true;
        if (frac_digits >= 0) {
            // Trailing zeros beyond the exponent are harmless ("1.50" for JPY is not; "1.230" for USD is).
            if (frac_digits >= exponent) {
                if (c != '0') return std::nullopt;
                ++frac_digits;
                continue;
            }
            ++frac_digits;
        }
        if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, c - '0', &value)) {
            return std::nullopt;
        }
    }
    if (!any_digit || frac_digits == 0) return std::nullopt;  // "1." is not a number
    int have = frac_digits < 0 ? 0 : std::min(frac_digits, exponent);
    for (int k = have; k < exponent; ++k) {
        if (__builtin_mul_overflow(value, 10, &value)) return std::nullopt;
    }
    return negative ? -value : value;
}

std::string format_decimal(std::int64_t minor, int exponent) {
    bool negative = minor < 0;
    // Work in unsigned to format INT64_MIN safely.
    unsigned long long mag = negative ? 0ULL - static_cast<unsigned long long>(minor) : static_cast<unsigned long long>(minor);
    std::string digits = std::to_string(mag);
    if (exponent > 0) {
        if (digits.size() <= static_cast<std::size_t>(exponent)) {
            digits.insert(0, static_cast<std::size_t>(exponent) + 1 - digits.size(), '0');
        }
        digits.insert(digits.size() - static_cast<std::size_t>(exponent), 1, '.');
    }
    return negative ? "-" + digits : digits;
}

}  // namespace txp::money
