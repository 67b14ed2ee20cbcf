// Cryptography for Plaid integration: base64/base64url, SHA-256, AES-256-GCM for access
// tokens at rest, and ES256 (ECDSA P-256 with SHA-256) JSON Web Signatures as Plaid uses
// them to sign webhooks. OpenSSL stays inside crypto.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace txp::plaid {

std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);  // no padding
// Both throw std::invalid_argument on characters outside the alphabet; padding is optional.
std::string base64_decode(std::string_view text);
std::string base64url_decode(std::string_view text);

std::string sha256_hex(std::string_view bytes);  // lower-case hex
bool constant_time_equal(std::string_view a, std::string_view b);

// AES-256-GCM. A sealed token is: version byte 0x01 | 12-byte random nonce | ciphertext |
// 16-byte tag. The associated data (e.g. the item id) binds a ciphertext to its row, so a
// token copied to another row does not decrypt.
class token_cipher {
public:
    explicit token_cipher(const std::array<unsigned char, 32>& key);
    ~token_cipher();
    token_cipher(const token_cipher&) = delete;
    token_cipher& operator=(const token_cipher&) = delete;
    token_cipher(token_cipher&&) noexcept;

    // A standard base64 text of exactly 32 bytes; throws std::invalid_argument otherwise.
    static token_cipher from_base64(std::string_view key_b64);
    // TXP_PLAID_TOKEN_KEY (base64 of 32 bytes); a missing or malformed key throws
    // txp::config::config_error with a one-line message.
    static token_cipher from_env(const char* variable = "TXP_PLAID_TOKEN_KEY");

    std::string seal(std::string_view plaintext, std::string_view associated_data) const;
    // Throws std::runtime_error when the blob was altered, belongs to other associated data,
    // or was sealed with another key.
    std::string open(std::string_view sealed, std::string_view associated_data) const;

private:
    std::array<unsigned char, 32> key_;
};

// A public EC P-256 key as a JWK carries it: x and y, base64url of 32 big-endian bytes.
struct ec_public_key {
    std::string x;
    std::string y;
};

// An ES256 signing key (the emulator signs webhooks with one).
class es256_signer {
public:
    es256_signer();  // a fresh random P-256 key
    ~es256_signer();
    es256_signer(const es256_signer&) = delete;
    es256_signer& operator=(const es256_signer&) = delete;

    ec_public_key public_key() const;
    // The JWS signature of `data`: r || s, 64 bytes.
    std::string sign(std::string_view data) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Verifies a 64-byte r || s ES256 signature of `data`. False for a bad key or signature.
bool es256_verify(const ec_public_key& key, std::string_view data, std::string_view signature);

// A compact JWS: base64url(header).base64url(payload).base64url(signature), header
// {"alg":"ES256","kid":kid,"typ":"JWT"}.
std::string es256_compact_jws(const es256_signer& key, std::string_view kid, std::string_view payload_json);

}  // namespace txp::plaid
