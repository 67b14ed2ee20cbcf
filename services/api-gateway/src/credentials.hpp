// Passwords (Argon2id through libsodium) and bearer tokens (256 random bits, stored only
// as their SHA-256): everything secret the gateway handles.
#pragma once

#include <string>
#include <string_view>

namespace txp::gateway {

// Calls sodium_init once; throws when libsodium cannot start.
void init_crypto();

// Argon2id with OWASP's setting (t=2, m=19 MiB, p=1), as a self-describing PHC string.
std::string hash_password(std::string_view password);
// Constant-time verification against a hash_password() string; false for garbage hashes.
bool verify_password(std::string_view password, const std::string& hash);

inline constexpr std::string_view token_prefix = "txp_";
// "txp_" + 64 hex digits of CSPRNG output.
std::string new_token();
// True for the shape new_token() produces (cheap pre-check before touching the database).
bool looks_like_token(std::string_view token);
// Lower-case hex SHA-256: what the database keeps instead of the token.
std::string sha256_hex(std::string_view data);

}  // namespace txp::gateway
