// Webhook secrets and signatures: secrets are stored sealed with AES-256-GCM under a key
// from TXP_WEBHOOK_SECRET_KEY (never in clear in the database), and each delivery carries
// Txp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
// The header is free of OpenSSL so the gateway and tests can include it cheaply.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace txp::notifier {

class secret_key {
public:
    // 32 bytes in standard base64 (e.g. `openssl rand -base64 32`); throws std::invalid_argument.
    static secret_key from_base64(std::string_view text);
    // TXP_WEBHOOK_SECRET_KEY; a missing or malformed value is a config::config_error naming it.
    static secret_key from_env();
    const std::array<std::uint8_t, 32>& bytes() const { return key_; }

private:
    std::array<std::uint8_t, 32> key_{};
};

// A fresh secret to show the user once: "whsec_" followed by 64 hex digits (256 bits).
std::string new_webhook_secret();

// AES-256-GCM with a random 96-bit nonce, bound to `context` (the subscription id) as
// associated data so a sealed secret cannot be moved to another row. Result: base64 of
// version byte 1 | nonce | ciphertext | tag.
std::string seal_secret(const secret_key& key, std::string_view secret, std::string_view context);
// Throws std::runtime_error when the text was not sealed with this key and context.
std::string open_secret(const secret_key& key, std::string_view sealed, std::string_view context);

// Hex HMAC-SHA256 over "<t>.<body>" keyed with the secret's bytes as shown to the user.
std::string sign_payload(std::string_view secret, std::int64_t t, std::string_view body);
// "t=<t>,v1=<hex>"
std::string signature_header(std::string_view secret, std::int64_t t, std::string_view body);
// Checks a Txp-Signature header: some v1 matches (constant-time) and |now - t| <= tolerance.
bool verify_signature(std::string_view secret, std::string_view header, std::string_view body, std::int64_t now,
                      std::int64_t tolerance_seconds = 300);

std::string base64_encode(std::string_view bytes);
// Throws std::invalid_argument on anything but canonical padded base64.
std::string base64_decode(std::string_view text);

}  // namespace txp::notifier
