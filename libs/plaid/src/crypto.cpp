// OpenSSL behind txp::plaid's crypto helpers (see crypto.hpp).
#include "txp/plaid/crypto.hpp"

#include "txp/common/config.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>
#include <vector>

namespace txp::plaid {

namespace {

constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view in, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(in[k])); };
    for (; i + 3 <= in.size(); i += 3) {
        unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    std::size_t rest = in.size() - i;
    if (rest == 1) {
        unsigned v = byte(i) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (pad) out += "==";
    } else if (rest == 2) {
        unsigned v = byte(i) << 16 | byte(i + 1) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        if (pad) out += '=';
    }
    return out;
}

std::string decode(std::string_view in, bool url) {
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    std::string out;
    out.reserve(in.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == (url ? '-' : '+')) v = 62;
        else if (c == (url ? '_' : '/')) v = 63;
        else throw std::invalid_argument("not base64");
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6) throw std::invalid_argument("truncated base64");
    return out;
}

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;
struct cipher_ctx_free {
    void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

const unsigned char* uc(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

std::string base64_encode(std::string_view bytes) { return encode(bytes, b64_alphabet, true); }
std::string base64url_encode(std::string_view bytes) { return encode(bytes, b64url_alphabet, false); }
std::string base64_decode(std::string_view text) { return decode(text, false); }
std::string base64url_decode(std::string_view text) { return decode(text, true); }

std::string sha256_hex(std::string_view bytes) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(uc(bytes), bytes.size(), md);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char b : md) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---- AES-256-GCM ---------------------------------------------------------------------

token_cipher::token_cipher(const std::array<unsigned char, 32>& key) : key_(key) {}
token_cipher::~token_cipher() { OPENSSL_cleanse(key_.data(), key_.size()); }
token_cipher::token_cipher(token_cipher&& o) noexcept : key_(o.key_) {}

token_cipher token_cipher::from_base64(std::string_view key_b64) {
    std::string raw = base64_decode(key_b64);
    if (raw.size() != 32) throw std::invalid_argument("the key must be 32 bytes, base64-encoded");
    std::array<unsigned char, 32> k{};
    std::copy(raw.begin(), raw.end(), k.begin());
    OPENSSL_cleanse(raw.data(), raw.size());
    return token_cipher(k);
}

token_cipher token_cipher::from_env(const char* variable) {
    auto v = config::get(variable);
    if (!v) {
        throw config::config_error(std::string(variable) +
                                   " is not set: it must be the base64 encoding of 32 random bytes (e.g. `openssl rand -base64 32`)");
    }
    try {
        return from_base64(*v);
    } catch (const std::invalid_argument&) {
        throw config::config_error(std::string(variable) + " must be the base64 encoding of exactly 32 bytes");
    }
}

std::string token_cipher::seal(std::string_view plaintext, std::string_view aad) const {
    unsigned char nonce[12];
    if (RAND_bytes(nonce, sizeof nonce) != 1) throw std::runtime_error("RAND_bytes failed");
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    std::string out(1 + sizeof nonce + plaintext.size() + 16, '\0');
    out[0] = 0x01;
    std::copy(nonce, nonce + sizeof nonce, out.begin() + 1);
    int len = 0;
    auto* ct = reinterpret_cast<unsigned char*>(out.data()) + 1 + sizeof nonce;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, uc(aad), static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), ct, &len, uc(plaintext), static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, ct + plaintext.size()) != 1) {
        throw std::runtime_error("AES-256-GCM encryption failed");
    }
    return out;
}

std::string token_cipher::open(std::string_view sealed, std::string_view aad) const {
    if (sealed.size() < 1 + 12 + 16 || sealed[0] != 0x01) throw std::runtime_error("not a sealed token");
    auto nonce = uc(sealed.substr(1, 12));
    auto body = sealed.substr(13, sealed.size() - 13 - 16);
    std::string tag(sealed.substr(sealed.size() - 16));
    std::string out(body.size(), '\0');
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    auto* pt = reinterpret_cast<unsigned char*>(out.data());
    if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, uc(aad), static_cast<int>(aad.size())) != 1 ||
        EVP_DecryptUpdate(ctx.get(), pt, &len, uc(body), static_cast<int>(body.size())) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), pt + len, &len) != 1) {
        OPENSSL_cleanse(out.data(), out.size());
        throw std::runtime_error("the sealed token does not authenticate (altered, other row, or other key)");
    }
    return out;
}

// ---- ES256 -----------------------------------------------------------------------------

struct es256_signer::impl {
    pkey_ptr key;
};

es256_signer::es256_signer() : impl_(std::make_unique<impl>()) {
    impl_->key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!impl_->key) throw std::runtime_error("EC P-256 key generation failed");
}

es256_signer::~es256_signer() = default;

ec_public_key es256_signer::public_key() const {
    unsigned char buf[65];
    std::size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(impl_->key.get(), OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof buf, &len) != 1 ||
        len != 65 || buf[0] != 0x04) {
        throw std::runtime_error("cannot export the EC public key");
    }
    std::string_view raw(reinterpret_cast<const char*>(buf), len);
    return {base64url_encode(raw.substr(1, 32)), base64url_encode(raw.substr(33, 32))};
}

std::string es256_signer::sign(std::string_view data) const {
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    std::size_t der_len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &der_len, uc(data), data.size()) != 1) {
        throw std::runtime_error("ES256 signing failed");
    }
    std::vector<unsigned char> der(der_len);
    if (EVP_DigestSign(ctx.get(), der.data(), &der_len, uc(data), data.size()) != 1) {
        throw std::runtime_error("ES256 signing failed");
    }
    const unsigned char* p = der.data();
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len));
    if (!sig) throw std::runtime_error("ES256 signature decoding failed");
    unsigned char rs[64];
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig, &r, &s);
    bool ok = BN_bn2binpad(r, rs, 32) == 32 && BN_bn2binpad(s, rs + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    if (!ok) throw std::runtime_error("ES256 signature encoding failed");
    return std::string(reinterpret_cast<const char*>(rs), sizeof rs);
}

bool es256_verify(const ec_public_key& key, std::string_view data, std::string_view signature) {
    if (signature.size() != 64) return false;
    std::string x, y;
    try {
        x = base64url_decode(key.x);
        y = base64url_decode(key.y);
    } catch (const std::invalid_argument&) {
        return false;
    }
    if (x.size() != 32 || y.size() != 32) return false;
    std::string point = "\x04" + x + y;

    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    if (!bld) return false;
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    OSSL_PARAM_BLD_free(bld);
    if (!params) return false;
    EVP_PKEY* raw_key = nullptr;
    EVP_PKEY_CTX* kctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    bool built = kctx && EVP_PKEY_fromdata_init(kctx) == 1 &&
                 EVP_PKEY_fromdata(kctx, &raw_key, EVP_PKEY_PUBLIC_KEY, params) == 1;
    EVP_PKEY_CTX_free(kctx);
    OSSL_PARAM_free(params);
    pkey_ptr pkey(raw_key);
    if (!built || !pkey) return false;

    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(uc(signature), 32, nullptr);
    BIGNUM* s = BN_bin2bn(uc(signature) + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return false;
    }
    unsigned char* der = nullptr;
    int der_len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (der_len <= 0) return false;
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) == 1 &&
              EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(der_len), uc(data), data.size()) == 1;
    OPENSSL_free(der);
    return ok;
}

std::string es256_compact_jws(const es256_signer& key, std::string_view kid, std::string_view payload_json) {
    std::string header = R"({"alg":"ES256","kid":")" + std::string(kid) + R"(","typ":"JWT"})";
    std::string input = base64url_encode(header) + "." + base64url_encode(payload_json);
    return input + "." + base64url_encode(key.sign(input));
}

}  // namespace txp::plaid
