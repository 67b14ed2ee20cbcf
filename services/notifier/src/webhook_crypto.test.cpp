// Sealed secrets and webhook signatures.
#include "webhook_crypto.hpp"

#include "txp/common/config.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <vector>

using namespace txp::notifier;

namespace {
const char* key_b64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";  // "0123456789abcdef0123456789abcdef"
}

TEST_CASE("base64 round-trips and refuses garbage", "[notifier][crypto]") {
    for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
        CHECK(base64_decode(base64_encode(s)) == s);
    }
    CHECK(base64_encode("abc") == "YWJj");
    CHECK_THROWS_AS(base64_decode("YWJ"), std::invalid_argument);
    CHECK_THROWS_AS(base64_decode("YW=j"), std::invalid_argument);
    CHECK_THROWS_AS(base64_decode("YW!j"), std::invalid_argument);
}

TEST_CASE("the secret key comes from TXP_WEBHOOK_SECRET_KEY and must be 32 bytes", "[notifier][crypto]") {
    CHECK(secret_key::from_base64(key_b64).bytes()[0] == '0');
    CHECK_THROWS_AS(secret_key::from_base64("YWJj"), std::invalid_argument);
    ::unsetenv("TXP_WEBHOOK_SECRET_KEY");
    try {
        secret_key::from_env();
        FAIL("no error");
    } catch (const txp::config::config_error& e) {
        CHECK(std::string(e.what()).find("TXP_WEBHOOK_SECRET_KEY") != std::string::npos);
        CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
    ::setenv("TXP_WEBHOOK_SECRET_KEY", "short", 1);
    CHECK_THROWS_AS(secret_key::from_env(), txp::config::config_error);
    ::setenv("TXP_WEBHOOK_SECRET_KEY", key_b64, 1);
    CHECK(secret_key::from_env().bytes()[31] == 'f');
    ::unsetenv("TXP_WEBHOOK_SECRET_KEY");
}

TEST_CASE("sealed secrets open only with the same key and context", "[notifier][crypto]") {
    auto key = secret_key::from_base64(key_b64);
    auto other = secret_key::from_base64(base64_encode(std::string(32, 'x')));
    auto secret = new_webhook_secret();
    CHECK(secret.rfind("whsec_", 0) == 0);
    CHECK(secret.size() == 6 + 64);
    auto sealed = seal_secret(key, secret, "sub-1");
    CHECK(sealed.find(secret) == std::string::npos);
    CHECK(seal_secret(key, secret, "sub-1") != sealed);  // fresh nonce each time
    CHECK(open_secret(key, sealed, "sub-1") == secret);
    CHECK_THROWS(open_secret(other, sealed, "sub-1"));
    CHECK_THROWS(open_secret(key, sealed, "sub-2"));
    auto tampered = base64_decode(sealed);
    tampered[20] ^= 1;
    CHECK_THROWS(open_secret(key, base64_encode(tampered), "sub-1"));
    CHECK_THROWS(open_secret(key, "not base64!", "sub-1"));
}

TEST_CASE("signatures: HMAC-SHA256 over t.body, verified in constant time within a tolerance", "[notifier][crypto]") {
    // Known answer (printf '1.{}' | openssl dgst -sha256 -hmac key).
    CHECK(sign_payload("key", 1, "{}") == "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224");
    auto header = signature_header("whsec_x", 1700000000, R"({"a":1})");
    CHECK(header.rfind("t=1700000000,v1=", 0) == 0);
    CHECK(verify_signature("whsec_x", header, R"({"a":1})", 1700000000));
    CHECK(verify_signature("whsec_x", header, R"({"a":1})", 1700000000 + 299));
    CHECK_FALSE(verify_signature("whsec_x", header, R"({"a":1})", 1700000000 + 301));  // replayed too late
    CHECK_FALSE(verify_signature("whsec_y", header, R"({"a":1})", 1700000000));
    CHECK_FALSE(verify_signature("whsec_x", header, R"({"a":2})", 1700000000));
    CHECK_FALSE(verify_signature("whsec_x", "t=1700000000", R"({"a":1})", 1700000000));
    CHECK_FALSE(verify_signature("whsec_x", "garbage", R"({"a":1})", 1700000000));
    // Several v1 values (key rotation): any one may match.
    CHECK(verify_signature("whsec_x", "t=1700000000,v1=00," + header.substr(header.find("v1=")), R"({"a":1})", 1700000000));
}
