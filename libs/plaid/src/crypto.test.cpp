// Unit tests: base64, AES-256-GCM token sealing, ES256 signatures.
#include "txp/plaid/crypto.hpp"

#include "txp/common/config.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

using namespace txp::plaid;

TEST_CASE("base64 and base64url round-trip every length", "[plaid][crypto]") {
    std::string s;
    for (int i = 0; i < 70; ++i) {
        CHECK(base64_decode(base64_encode(s)) == s);
        CHECK(base64url_decode(base64url_encode(s)) == s);
        s += static_cast<char>(i * 37 + 250);
    }
    CHECK(base64_encode("hello") == "aGVsbG8=");
    CHECK(base64url_encode("\xfb\xff") == "-_8");
    CHECK_THROWS_AS(base64_decode("a*b"), std::invalid_argument);
}

TEST_CASE("sha256 hex", "[plaid][crypto]") {
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("sealed access tokens open only with the same key and associated data", "[plaid][crypto]") {
    auto c = token_cipher::from_base64(base64_encode(std::string(32, '\x07')));
    const std::string token = "access-sandbox-0af2c971-41a6-4fc5-a97d-f2b27ab0a648";
    auto sealed = c.seal(token, "item-1");
    CHECK(sealed.find(token) == std::string::npos);
    CHECK(sealed.find("access-sandbox") == std::string::npos);
    CHECK(c.open(sealed, "item-1") == token);
    CHECK(c.seal(token, "item-1") != sealed);  // a fresh nonce every time
    CHECK_THROWS(c.open(sealed, "item-2"));
    auto tampered = sealed;
    tampered[20] ^= 1;
    CHECK_THROWS(c.open(tampered, "item-1"));
    auto other = token_cipher::from_base64(base64_encode(std::string(32, '\x08')));
    CHECK_THROWS(other.open(sealed, "item-1"));
}

TEST_CASE("the token key comes from the environment or start-up stops with one line", "[plaid][crypto]") {
    ::unsetenv("TXP_TEST_TOKEN_KEY");
    try {
        token_cipher::from_env("TXP_TEST_TOKEN_KEY");
        FAIL("no error");
    } catch (const txp::config::config_error& e) {
        std::string what = e.what();
        CHECK(what.find("TXP_TEST_TOKEN_KEY") != std::string::npos);
        CHECK(what.find('\n') == std::string::npos);
    }
    ::setenv("TXP_TEST_TOKEN_KEY", base64_encode(std::string(31, 'k')).c_str(), 1);
    CHECK_THROWS_AS(token_cipher::from_env("TXP_TEST_TOKEN_KEY"), txp::config::config_error);
    ::setenv("TXP_TEST_TOKEN_KEY", base64_encode(std::string(32, 'k')).c_str(), 1);
    CHECK_NOTHROW(token_cipher::from_env("TXP_TEST_TOKEN_KEY"));
}

TEST_CASE("ES256 signatures verify with the public key only", "[plaid][crypto]") {
    es256_signer k;
    auto pub = k.public_key();
    auto sig = k.sign("payload");
    REQUIRE(sig.size() == 64);
    CHECK(es256_verify(pub, "payload", sig));
    CHECK_FALSE(es256_verify(pub, "payload!", sig));
    auto bad = sig;
    bad[5] ^= 1;
    CHECK_FALSE(es256_verify(pub, "payload", bad));
    es256_signer other;
    CHECK_FALSE(es256_verify(other.public_key(), "payload", sig));
    CHECK_FALSE(es256_verify({"x", "y"}, "payload", sig));
}
