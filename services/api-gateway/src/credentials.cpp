// Argon2id password hashing and bearer tokens through libsodium.
#include "credentials.hpp"

#include <sodium.h>

#include <stdexcept>

namespace txp::gateway {

namespace {
// OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB of memory, 2 iterations, parallelism 1.
constexpr unsigned long long pwhash_opslimit = 2;
constexpr std::size_t pwhash_memlimit = 19u * 1024u * 1024u;

std::string to_hex(const unsigned char* data, std::size_t n) {
    std::string out(n * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), data, n);
    out.resize(n * 2);
    return out;
}
}  // namespace

void init_crypto() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
}

std::string hash_password(std::string_view password) {
    char out[crypto_pwhash_argon2id_STRBYTES];
    if (crypto_pwhash_argon2id_str(out, password.data(), password.size(), pwhash_opslimit, pwhash_memlimit) != 0) {
        throw std::runtime_error("password hashing ran out of memory");
    }
    return out;
}

bool verify_password(std::string_view password, const std::string& hash) {
    if (hash.size() >= crypto_pwhash_argon2id_STRBYTES) return false;
    return crypto_pwhash_argon2id_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::string new_token() {
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    auto token = std::string(token_prefix) + to_hex(raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    return token;
}

bool looks_like_token(std::string_view token) {
    if (token.size() != token_prefix.size() + 64 || token.substr(0, token_prefix.size()) != token_prefix) return false;
    for (char c : token.substr(token_prefix.size())) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::string sha256_hex(std::string_view data) {
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
    return to_hex(digest, sizeof digest);
}

}  // namespace txp::gateway
