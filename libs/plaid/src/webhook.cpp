// Plaid webhook verification (see webhook.hpp).
#include "txp/plaid/webhook.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/plaid/crypto.hpp"

#include <rapidjson/document.h>

#include <cstdlib>

namespace txp::plaid {

const char* to_string(webhook_verdict v) {
    switch (v) {
        case webhook_verdict::ok: return "ok";
        case webhook_verdict::missing_header: return "missing_header";
        case webhook_verdict::malformed_token: return "malformed_token";
        case webhook_verdict::unsupported_alg: return "unsupported_alg";
        case webhook_verdict::unknown_key: return "unknown_key";
        case webhook_verdict::expired_key: return "expired_key";
        case webhook_verdict::key_unavailable: return "key_unavailable";
        case webhook_verdict::bad_signature: return "bad_signature";
        case webhook_verdict::stale: return "stale";
        case webhook_verdict::body_mismatch: return "body_mismatch";
        case webhook_verdict::replayed: return "replayed";
    }
    return "?";
}

webhook_verifier::webhook_verifier(key_fetcher fetch, webhook_verifier_options opts, replay_guard guard)
    : fetch_(std::move(fetch)), opts_(opts), guard_(std::move(guard)) {}

webhook_verifier::key_fetcher webhook_verifier::fetch_with(client& c) {
    return [&c](const std::string& kid) { return c.webhook_verification_key_get(kid); };
}

webhook_verdict webhook_verifier::verify(std::optional<std::string_view> header, std::string_view raw_body) {
    return verify(header, raw_body, ids::unix_seconds());
}

bool webhook_verifier::remember(const std::string& token_hash, std::int64_t iat, std::int64_t now) {
    if (guard_) return guard_(token_hash, iat);
    std::lock_guard lk(mu_);
    for (auto it = seen_.begin(); it != seen_.end();) {
        if (std::llabs(now - it->second) > opts_.max_age.count() * 2) it = seen_.erase(it);
        else ++it;
    }
    return seen_.emplace(token_hash, iat).second;
}

webhook_verdict webhook_verifier::verify(std::optional<std::string_view> header, std::string_view raw_body,
                                         std::int64_t now) {
    if (!header || header->empty()) return webhook_verdict::missing_header;
    std::string_view token = *header;
    auto d1 = token.find('.');
    auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
        return webhook_verdict::malformed_token;
    }
    std::string header_json, payload_json, signature;
    try {
        header_json = base64url_decode(token.substr(0, d1));
        payload_json = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
        signature = base64url_decode(token.substr(d2 + 1));
    } catch (const std::invalid_argument&) {
        return webhook_verdict::malformed_token;
    }
    rapidjson::Document h, p;
    h.Parse(header_json.data(), header_json.size());
    p.Parse(payload_json.data(), payload_json.size());
    if (h.HasParseError() || p.HasParseError() || !h.IsObject() || !p.IsObject()) return webhook_verdict::malformed_token;
    auto alg = h.FindMember("alg");
    if (alg == h.MemberEnd() || !alg->value.IsString()) return webhook_verdict::malformed_token;
    if (std::string_view(alg->value.GetString()) != "ES256") return webhook_verdict::unsupported_alg;
    auto kid_it = h.FindMember("kid");
    if (kid_it == h.MemberEnd() || !kid_it->value.IsString() || kid_it->value.GetStringLength() == 0 ||
        kid_it->value.GetStringLength() > 256) {
        return webhook_verdict::malformed_token;
    }
    std::string kid = kid_it->value.GetString();
    auto iat_it = p.FindMember("iat");
    auto hash_it = p.FindMember("request_body_sha256");
    if (iat_it == p.MemberEnd() || !iat_it->value.IsInt64() || hash_it == p.MemberEnd() || !hash_it->value.IsString()) {
        return webhook_verdict::malformed_token;
    }
    std::int64_t iat = iat_it->value.GetInt64();

    // The key: cached by kid (a kid Plaid denied is remembered briefly, so that forged
    // tokens cannot make us call Plaid for every request).
    std::optional<jwk> key;
    {
        std::unique_lock lk(mu_);
        auto it = keys_.find(kid);
        auto ttl = (it != keys_.end() && it->second.key) ? opts_.key_cache_ttl : opts_.unknown_key_ttl;
        if (it != keys_.end() && now - it->second.fetched_at < ttl.count()) {
            key = it->second.key;
            if (!key) return webhook_verdict::unknown_key;
        } else {
            lk.unlock();
            try {
                key = fetch_(kid);
            } catch (const std::exception& e) {
                log::warn("cannot fetch the webhook verification key", {{"kid", kid}, {"error", e.what()}});
                return webhook_verdict::key_unavailable;
            }
            lk.lock();
            keys_[kid] = {key, now};
            if (!key) return webhook_verdict::unknown_key;
        }
    }
    if (key->alg != "ES256" || key->kty != "EC" || key->crv != "P-256") return webhook_verdict::unsupported_alg;
    if (key->expired_at) return webhook_verdict::expired_key;
    if (!es256_verify({key->x, key->y}, token.substr(0, d2), signature)) return webhook_verdict::bad_signature;
    if (std::llabs(now - iat) > opts_.max_age.count()) return webhook_verdict::stale;
    if (!constant_time_equal(sha256_hex(raw_body), std::string_view(hash_it->value.GetString(), hash_it->value.GetStringLength()))) {
        return webhook_verdict::body_mismatch;
    }
    if (!remember(sha256_hex(token), iat, now)) return webhook_verdict::replayed;
    return webhook_verdict::ok;
}

}  // namespace txp::plaid
