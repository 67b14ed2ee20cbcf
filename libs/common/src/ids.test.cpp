// Identifiers: format of v4 and v7 UUIDs, and v7's time order.
#include "txp/common/ids.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <thread>

using namespace txp;

namespace {

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The 48-bit millisecond timestamp at the front of a v7 UUID.
std::int64_t v7_ms(const std::string& u) { return std::stoll(u.substr(0, 8) + u.substr(9, 4), nullptr, 16); }

}  // namespace

TEST_CASE("UUIDs carry their version and the RFC variant", "[ids]") {
    for (int i = 0; i < 200; ++i) {
        auto a = ids::uuid_v4(), b = ids::uuid_v7();
        REQUIRE(ids::is_uuid(a));
        REQUIRE(ids::is_uuid(b));
        CHECK(a[14] == '4');
        CHECK(b[14] == '7');
        CHECK(std::string("89ab").find(a[19]) != std::string::npos);
        CHECK(std::string("89ab").find(b[19]) != std::string::npos);
    }
}

TEST_CASE("a v7 UUID starts with the time it was made, so later ones sort after", "[ids]") {
    auto before = unix_ms();
    auto first = ids::uuid_v7();
    auto after = unix_ms();
    CHECK(v7_ms(first) >= before);
    CHECK(v7_ms(first) <= after);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto later = ids::uuid_v7();
    CHECK(later > first);
    // Within one millisecond the rest is random: many ids, no repeats.
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) seen.insert(ids::uuid_v7());
    CHECK(seen.size() == 10000);
}
