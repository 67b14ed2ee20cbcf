// See token_cache.hpp.
#include "token_cache.hpp"

#include <algorithm>

namespace txp::gateway {

token_cache::token_cache(std::chrono::milliseconds ttl, std::size_t max_entries)
    : ttl_(ttl), max_entries_(std::max<std::size_t>(1, max_entries)) {}

std::optional<cached_caller> token_cache::find(const std::string& token_hash, clock::time_point now,
                                               std::chrono::system_clock::time_point wall) {
    if (ttl_.count() <= 0) return std::nullopt;
    std::lock_guard lk(mu_);
    auto it = entries_.find(token_hash);
    if (it == entries_.end() || it->second.revoked) return std::nullopt;
    if (now >= it->second.until || wall >= it->second.caller.expires_at) {
        entries_.erase(it);
        return std::nullopt;
    }
    return it->second.caller;
}

void token_cache::put(const std::string& token_hash, cached_caller c, clock::time_point looked_up, clock::time_point now) {
    if (ttl_.count() <= 0) return;
    std::lock_guard lk(mu_);
    auto it = entries_.find(token_hash);
    if (it != entries_.end() && it->second.revoked && it->second.revoked_at >= looked_up) return;
    if (it == entries_.end() && entries_.size() >= max_entries_) make_room(now);
    entries_[token_hash] = entry{std::move(c), now + ttl_, false, {}};
}

void token_cache::revoke(const std::string& token_hash, clock::time_point now) {
    if (ttl_.count() <= 0) return;
    std::lock_guard lk(mu_);
    auto it = entries_.find(token_hash);
    if (it == entries_.end() && entries_.size() >= max_entries_) make_room(now);
    // A lookup that started before the logout committed may still answer "valid"; put()
    // refuses it by its start time while this tombstone lives (one TTL, far longer than a lookup).
    entries_[token_hash] = entry{{}, now + ttl_, true, now};
}

std::size_t token_cache::size() const {
    std::lock_guard lk(mu_);
    return entries_.size();
}

// Drops expired entries; if that frees nothing, drops everything (a full cache of live tokens
// only costs a round of database lookups). Tombstones younger than a TTL are kept.
void token_cache::make_room(clock::time_point now) {
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (now >= it->second.until) it = entries_.erase(it);
        else ++it;
    }
    if (entries_.size() < max_entries_) return;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (!it->second.revoked) it = entries_.erase(it);
        else ++it;
    }
    if (entries_.size() >= max_entries_) entries_.clear();
}

}  // namespace txp::gateway
