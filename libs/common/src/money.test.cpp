// Exact decimal conversion: no floating point touches money.
#include "txp/common/money.hpp"

#include <catch2/catch.hpp>

using namespace txp::money;

TEST_CASE("currencies and exponents", "[money]") {
    CHECK(minor_unit_exponent("USD") == 2);
    CHECK(minor_unit_exponent("JPY") == 0);
    CHECK(minor_unit_exponent("KWD") == 3);
    CHECK_FALSE(is_currency("usd"));
    CHECK_FALSE(is_currency("XYZ"));
    CHECK_FALSE(is_currency(""));
}

TEST_CASE("decimal text converts exactly", "[money]") {
    CHECK(parse_decimal("12.34", 2) == 1234);
    CHECK(parse_decimal("0.1", 2) == 10);
    CHECK(parse_decimal("-5.4", 2) == -540);
    CHECK(parse_decimal("100", 2) == 10000);
    CHECK(parse_decimal("1.230", 2) == 123);
    CHECK(parse_decimal("6.33", 2) == 633);  // 6.33 is not exact in binary floating point
    CHECK(parse_decimal("1234", 0) == 1234);
    CHECK_FALSE(parse_decimal("1.234", 2));
    CHECK_FALSE(parse_decimal("1.5", 0));
    CHECK_FALSE(parse_decimal("1e2", 2));
    CHECK_FALSE(parse_decimal("1.", 2));
    CHECK_FALSE(parse_decimal(".5", 2));
    CHECK_FALSE(parse_decimal("-", 2));
    CHECK_FALSE(parse_decimal("99999999999999999999", 2));
    CHECK_FALSE(parse_decimal("92233720368547758.08", 2));
    CHECK(parse_decimal("92233720368547758.07", 2) == INT64_MAX);
}

TEST_CASE("minor units format back to decimal text", "[money]") {
    CHECK(format_decimal(1234, 2) == "12.34");
    CHECK(format_decimal(-5, 2) == "-0.05");
    CHECK(format_decimal(100, 0) == "100");
    CHECK(format_decimal(INT64_MIN, 2) == "-92233720368547758.08");
    CHECK_FALSE(checked_add(INT64_MAX, 1));
    CHECK(checked_add(5, -7) == -2);
}
