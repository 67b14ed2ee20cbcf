// AES-256-GCM sealing of webhook secrets and HMAC-SHA256 signatures, over OpenSSL.
#include "webhook_crypto.hpp"

#include "txp/common/config.hpp"
#include "txp/common/ids.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>
#include <vector>

namespace txp::notifier {

namespace {

constexpr std::uint8_t sealed_version = 1;
constexpr std::size_t nonce_len = 12;
constexpr std::size_t tag_len = 16;

using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

std::string hex(const unsigned char* p, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) throw std::invalid_argument("base64 length is not a multiple of 4");
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' ||
                  (c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '='));
        if (!ok) throw std::invalid_argument("not base64");
    }
    std::string out(3 * text.size() / 4, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) throw std::invalid_argument("not base64");
    std::size_t pad = 0;
    if (!text.empty() && text.back() == '=') ++pad;
    if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

secret_key secret_key::from_base64(std::string_view text) {
    std::string raw = base64_decode(text);
    if (raw.size() != 32) throw std::invalid_argument("the key must be 32 bytes, got " + std::to_string(raw.size()));
    secret_key k;
    std::copy(raw.begin(), raw.end(), k.key_.begin());
    return k;
}

secret_key secret_key::from_env() {
    auto v = config::get("TXP_WEBHOOK_SECRET_KEY");
    if (!v) {
        throw config::config_error(
            "TXP_WEBHOOK_SECRET_KEY is not set: expected 32 random bytes in base64 (openssl rand -base64 32)");
    }
    try {
        return from_base64(*v);
    } catch (const std::invalid_argument& e) {
        throw config::config_error(std::string("TXP_WEBHOOK_SECRET_KEY is malformed: ") + e.what() +
                                   " (expected 32 random bytes in base64, e.g. openssl rand -base64 32)");
    }
}

std::string new_webhook_secret() { return "whsec_" + ids::random_hex(32); }

std::string seal_secret(const secret_key& key, std::string_view secret, std::string_view context) {
    std::string out(1 + nonce_len + secret.size() + tag_len, '\0');
    auto* buf = reinterpret_cast<unsigned char*>(out.data());
    buf[0] = sealed_version;
    if (RAND_bytes(buf + 1, nonce_len) != 1) throw std::runtime_error("no randomness for a nonce");
    cipher_ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
    int len = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), buf + 1) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                          static_cast<int>(context.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), buf + 1 + nonce_len, &len, reinterpret_cast<const unsigned char*>(secret.data()),
                          static_cast<int>(secret.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), buf + 1 + nonce_len + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_len, buf + 1 + nonce_len + secret.size()) != 1) {
        throw std::runtime_error("AES-256-GCM encryption failed");
    }
    return base64_encode(out);
}

std::string open_secret(const secret_key& key, std::string_view sealed, std::string_view context) {
    std::string raw;
    try {
        raw = base64_decode(sealed);
    } catch (const std::invalid_argument&) {
        throw std::runtime_error("sealed secret is not base64");
    }
    if (raw.size() < 1 + nonce_len + tag_len || static_cast<std::uint8_t>(raw[0]) != sealed_version) {
        throw std::runtime_error("sealed secret has an unknown format");
    }
    auto* buf = reinterpret_cast<unsigned char*>(raw.data());
    std::size_t ct_len = raw.size() - 1 - nonce_len - tag_len;
    std::string out(ct_len, '\0');
    cipher_ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
    int len = 0;
    if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), buf + 1) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                          static_cast<int>(context.size())) != 1 ||
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, buf + 1 + nonce_len,
                          static_cast<int>(ct_len)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_len, buf + 1 + nonce_len + ct_len) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &len) != 1) {
        throw std::runtime_error("sealed secret does not open with this key (wrong TXP_WEBHOOK_SECRET_KEY?)");
    }
    return out;
}

std::string sign_payload(std::string_view secret, std::int64_t t, std::string_view body) {
    std::string msg = std::to_string(t);
    msg += '.';
    msg.append(body);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(msg.data()),
              msg.size(), md, &len)) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return hex(md, len);
}

std::string signature_header(std::string_view secret, std::int64_t t, std::string_view body) {
    return "t=" + std::to_string(t) + ",v1=" + sign_payload(secret, t, body);
}

bool verify_signature(std::string_view secret, std::string_view header, std::string_view body, std::int64_t now,
                      std::int64_t tolerance_seconds) {
    std::optional<std::int64_t> t;
    std::vector<std::string_view> v1;
    std::size_t start = 0;
    while (start < header.size()) {
        auto comma = header.find(',', start);
        auto part = header.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        start = comma == std::string_view::npos ? header.size() : comma + 1;
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        if (part.rfind("t=", 0) == 0) {
            auto digits = part.substr(2);
            if (digits.empty() || digits.size() > 12) return false;
            std::int64_t v = 0;
            for (char c : digits) {
                if (c < '0' || c > '9') return false;
                v = v * 10 + (c - '0');
            }
            t = v;
        } else if (part.rfind("v1=", 0) == 0) {
            v1.push_back(part.substr(3));
        }
    }
    if (!t || v1.empty()) return false;
    if (*t > now + tolerance_seconds || *t < now - tolerance_seconds) return false;
    std::string expected = sign_payload(secret, *t, body);
    for (auto candidate : v1) {
        if (candidate.size() == expected.size() && CRYPTO_memcmp(candidate.data(), expected.data(), expected.size()) == 0) {
            return true;
        }
    }
    return false;
}

}  // namespace txp::notifier
