#include "txp/common/backoff.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

TEST_CASE("backoff doubles up to its cap, jittered around the base, and reset starts over", "[backoff]") {
    txp::backoff b(10ms, 1000ms);
    std::chrono::milliseconds base = 10ms;
    for (int i = 0; i < 20; ++i) {
        auto d = b.next_delay();
        CHECK(d >= base / 2);
        CHECK(d < base * 3 / 2 + 1ms);
        base = std::min(base * 2, std::chrono::milliseconds(1000));
        CHECK(b.base() == base);
    }
    CHECK(b.base() == 1000ms);
    b.reset();
    CHECK(b.base() == 10ms);
    auto d = b.next_delay();
    CHECK(d >= 5ms);
    CHECK(d < 16ms);
}

TEST_CASE("backoff: a zero initial delay is 1 ms, a cap below it is the initial delay", "[backoff]") {
    txp::backoff zero(0ms, 100ms);
    CHECK(zero.base() == 1ms);
    txp::backoff low(50ms, 10ms);
    low.next_delay();
    CHECK(low.base() == 50ms);
}
