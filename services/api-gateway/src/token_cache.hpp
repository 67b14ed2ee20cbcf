// A short-lived, bounded cache of bearer token -> caller, so that authenticating a request is
// usually a hash lookup rather than a database query. A token logged out on this replica
// stops working at once (logout leaves a tombstone that outlives every cached copy); other
// replicas revoke it when the logout's auth.token_revoked message reaches them, so only a
// late broker lets it work there up to the cache's TTL longer. Token expiry is always exact.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace txp::gateway {

struct cached_caller {
    std::int64_t id = 0;
    std::string username;
    std::string role;
    std::chrono::system_clock::time_point expires_at;  // the token's own expiry
};

class token_cache {
public:
    using clock = std::chrono::steady_clock;

    // ttl <= 0 turns the cache off.
    token_cache(std::chrono::milliseconds ttl, std::size_t max_entries);

    std::optional<cached_caller> find(const std::string& token_hash, clock::time_point now = clock::now(),
                                      std::chrono::system_clock::time_point wall = std::chrono::system_clock::now());
    // Remembers a database answer unless the token was revoked here meanwhile. `looked_up`
    // is when the query started: a revocation after it wins.
    void put(const std::string& token_hash, cached_caller c, clock::time_point looked_up, clock::time_point now = clock::now());
    // The token was logged out: forget it and refuse to cache it again for a while.
    void revoke(const std::string& token_hash, clock::time_point now = clock::now());

    std::chrono::milliseconds ttl() const { return ttl_; }
    std::size_t size() const;

private:
    struct entry {
        cached_caller caller;
        clock::time_point until;
        bool revoked = false;
        clock::time_point revoked_at{};
    };
    void make_room(clock::time_point now);

    std::chrono::milliseconds ttl_;
    std::size_t max_entries_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, entry> entries_;
};

}  // namespace txp::gateway
