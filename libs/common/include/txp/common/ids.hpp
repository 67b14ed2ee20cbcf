// Identifiers and timestamps shared by every service.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace txp::ids {

std::string uuid_v4();                 // random (CSPRNG), lower-case canonical form
// RFC 9562 version 7: 48-bit Unix milliseconds, then 74 random bits (CSPRNG). Ids made
// later sort after earlier ones (to the millisecond), so a B-tree index on them grows at its
// right edge instead of touching a random page per insert.
std::string uuid_v7();
bool is_uuid(std::string_view s);      // canonical 8-4-4-4-12 hex
std::int64_t unix_seconds();
std::int64_t unix_micros();
std::string iso8601_now();             // 2026-11-22T15:04:05.123Z
std::string random_hex(std::size_t bytes);  // CSPRNG, for tokens and secrets

}  // namespace txp::ids
