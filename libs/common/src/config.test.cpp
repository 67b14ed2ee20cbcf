// Configuration errors name the variable and what is expected.
#include "txp/common/config.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

using namespace txp::config;

TEST_CASE("integers are parsed within range and refused otherwise", "[config]") {
    ::setenv("TXP_T_INT", "42", 1);
    CHECK(get_int("TXP_T_INT", 7, 1, 100) == 42);
    ::unsetenv("TXP_T_INT");
    CHECK(get_int("TXP_T_INT", 7, 1, 100) == 7);
    for (const char* bad : {"abc", "12x", "1000", "-1", "1.5"}) {
        ::setenv("TXP_T_INT", bad, 1);
        try {
            get_int("TXP_T_INT", 7, 1, 100);
            FAIL("accepted " << bad);
        } catch (const config_error& e) {
            std::string what = e.what();
            CHECK(what.find("TXP_T_INT") != std::string::npos);
            CHECK(what.find("an integer from 1 to 100") != std::string::npos);
            CHECK(what.find('\n') == std::string::npos);
        }
    }
    ::unsetenv("TXP_T_INT");
}

TEST_CASE("a missing required variable names itself", "[config]") {
    ::unsetenv("TXP_T_MISSING");
    REQUIRE_THROWS_WITH(require_string("TXP_T_MISSING"), Catch::Contains("TXP_T_MISSING") && Catch::Contains("not set"));
}

TEST_CASE("URLs must have an allowed scheme and are never echoed whole", "[config]") {
    ::setenv("TXP_T_URL", "mysql://user:secretpw@host/db", 1);
    try {
        require_url("TXP_T_URL", "postgresql,postgres");
        FAIL("accepted a mysql URL");
    } catch (const config_error& e) {
        std::string what = e.what();
        CHECK(what.find("TXP_T_URL") != std::string::npos);
        CHECK(what.find("secretpw") == std::string::npos);
    }
    ::setenv("TXP_T_URL", "postgresql://u:p@127.0.0.1/db", 1);
    CHECK(require_url("TXP_T_URL", "postgresql,postgres") == "postgresql://u:p@127.0.0.1/db");
    ::unsetenv("TXP_T_URL");
}

TEST_CASE("durations and booleans", "[config]") {
    CHECK(parse_duration("250ms") == std::chrono::milliseconds(250));
    CHECK(parse_duration("5s") == std::chrono::milliseconds(5000));
    CHECK(parse_duration("2m") == std::chrono::milliseconds(120000));
    CHECK(parse_duration("75") == std::chrono::milliseconds(75));
    CHECK_THROWS(parse_duration("5 parsecs"));
    CHECK_THROWS(parse_duration("-1s"));
    ::setenv("TXP_T_BOOL", "maybe", 1);
    CHECK_THROWS_AS(get_bool("TXP_T_BOOL", false), config_error);
    ::setenv("TXP_T_BOOL", "yes", 1);
    CHECK(get_bool("TXP_T_BOOL", false));
    ::unsetenv("TXP_T_BOOL");
}
