// Unit tests: webhook verification (valid, bad signature, wrong body hash, stale iat,
// unknown kid, replayed, alg none), with a local key instead of Plaid.
#include "txp/plaid/webhook.hpp"

#include "txp/plaid/crypto.hpp"

#include <catch2/catch.hpp>

using namespace txp::plaid;

namespace {

struct fixture {
    es256_signer key;
    std::string kid = "6c5516e1-92dc-479e-a8ff-5a51992e0001";
    int fetches = 0;
    webhook_verifier verifier{[this](const std::string& k) -> std::optional<jwk> {
        ++fetches;
        if (k != kid) return std::nullopt;
        auto pub = key.public_key();
        return jwk{"ES256", kid, "EC", "P-256", pub.x, pub.y, "sig", 1'700'000'000, std::nullopt};
    }};

    std::string token(std::string_view body, std::int64_t iat, const std::string& use_kid = "") {
        std::string payload = R"({"iat":)" + std::to_string(iat) + R"(,"request_body_sha256":")" + sha256_hex(body) + R"("})";
        return es256_compact_jws(key, use_kid.empty() ? kid : use_kid, payload);
    }
};

const std::string body = R"({"environment":"sandbox","item_id":"abc","webhook_code":"SYNC_UPDATES_AVAILABLE","webhook_type":"TRANSACTIONS","initial_update_complete":true,"historical_update_complete":true})";
constexpr std::int64_t now = 1'800'000'000;

}  // namespace

TEST_CASE("a correctly signed webhook verifies once", "[plaid][webhook]") {
    fixture f;
    auto t = f.token(body, now - 10);
    CHECK(f.verifier.verify(t, body, now) == webhook_verdict::ok);
    CHECK(f.verifier.verify(t, body, now + 1) == webhook_verdict::replayed);
    // A second webhook with the same key uses the cache.
    CHECK(f.verifier.verify(f.token(body, now - 5), body, now) == webhook_verdict::ok);
    CHECK(f.fetches == 1);
}

TEST_CASE("webhooks that must be refused", "[plaid][webhook]") {
    fixture f;
    SECTION("no header") { CHECK(f.verifier.verify(std::nullopt, body, now) == webhook_verdict::missing_header); }
    SECTION("garbage") { CHECK(f.verifier.verify("a.b", body, now) == webhook_verdict::malformed_token); }
    SECTION("bad signature") {
        auto t = f.token(body, now);
        auto dot = t.rfind('.');
        es256_signer other;
        auto forged = t.substr(0, dot + 1) + base64url_encode(other.sign(t.substr(0, dot)));
        CHECK(f.verifier.verify(forged, body, now) == webhook_verdict::bad_signature);
    }
    SECTION("wrong body hash") {
        auto t = f.token(body, now);
        std::string reserialised = body + " ";
        CHECK(f.verifier.verify(t, reserialised, now) == webhook_verdict::body_mismatch);
    }
    SECTION("stale iat") {
        CHECK(f.verifier.verify(f.token(body, now - 301), body, now) == webhook_verdict::stale);
        CHECK(f.verifier.verify(f.token(body, now - 299), body, now) == webhook_verdict::ok);
    }
    SECTION("unknown kid") {
        CHECK(f.verifier.verify(f.token(body, now, "no-such-kid"), body, now) == webhook_verdict::unknown_key);
        CHECK(f.verifier.verify(f.token(body, now, "no-such-kid"), body, now) == webhook_verdict::unknown_key);
        CHECK(f.fetches == 1);  // denied kids are cached briefly
    }
    SECTION("alg none") {
        std::string h = base64url_encode(R"({"alg":"none","kid":")" + f.kid + R"("})");
        std::string p = base64url_encode(R"({"iat":)" + std::to_string(now) + R"(,"request_body_sha256":")" + sha256_hex(body) + R"("})");
        CHECK(f.verifier.verify(h + "." + p + ".", body, now) == webhook_verdict::unsupported_alg);
    }
    SECTION("the key cannot be fetched") {
        webhook_verifier v([](const std::string&) -> std::optional<jwk> { throw std::runtime_error("down"); });
        CHECK(v.verify(f.token(body, now), body, now) == webhook_verdict::key_unavailable);
    }
}
