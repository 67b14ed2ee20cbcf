// Verification of Plaid webhooks (PLAID.md): the Plaid-Verification header is an ES256 JWT
// whose kid names a key served by /webhook_verification_key/get; its payload carries iat and
// the SHA-256 (hex) of the raw body bytes. Keys are cached by kid; a token is accepted once.
#pragma once

#include "txp/plaid/client.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace txp::plaid {

enum class webhook_verdict {
    ok,
    missing_header,
    malformed_token,   // not a three-part JWT, bad base64url or JSON, missing claims
    unsupported_alg,   // alg is not ES256 (none, HS256, ... are refused)
    unknown_key,       // Plaid does not know the kid
    expired_key,       // the key has an expired_at
    key_unavailable,   // the key could not be fetched (Plaid unreachable): answer 5xx, Plaid retries
    bad_signature,
    stale,             // iat more than max_age away from now
    body_mismatch,     // request_body_sha256 does not match the bytes received
    replayed,          // this exact token was accepted before
};
const char* to_string(webhook_verdict v);

struct webhook_verifier_options {
    std::chrono::seconds max_age{300};
    std::chrono::seconds key_cache_ttl{24 * 3600};
    std::chrono::seconds unknown_key_ttl{60};  // a kid Plaid denied is not asked again for this long
};

class webhook_verifier {
public:
    // Returns the key, nullopt when Plaid does not know it; throws when it cannot tell.
    using key_fetcher = std::function<std::optional<jwk>(const std::string& kid)>;
    // Records a verified token; returns false when it was seen already (replay). The default
    // remembers in memory for max_age; a multi-replica gateway may pass a shared store.
    using replay_guard = std::function<bool(const std::string& token_sha256, std::int64_t iat)>;

    explicit webhook_verifier(key_fetcher fetch, webhook_verifier_options opts = {}, replay_guard guard = nullptr);

    // A fetcher over a client's /webhook_verification_key/get (the client must outlive it).
    static key_fetcher fetch_with(client& c);

    webhook_verdict verify(std::optional<std::string_view> plaid_verification_header, std::string_view raw_body,
                           std::int64_t now_unix);
    webhook_verdict verify(std::optional<std::string_view> header, std::string_view raw_body);

private:
    struct cached_key {
        std::optional<jwk> key;
        std::int64_t fetched_at;
    };
    bool remember(const std::string& token_hash, std::int64_t iat, std::int64_t now);

    key_fetcher fetch_;
    webhook_verifier_options opts_;
    replay_guard guard_;
    std::mutex mu_;
    std::map<std::string, cached_key> keys_;
    std::map<std::string, std::int64_t> seen_;  // token sha256 -> iat
};

}  // namespace txp::plaid
