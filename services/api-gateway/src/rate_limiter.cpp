// Token buckets; see rate_limiter.hpp.
#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace txp::gateway {

namespace {
// Above this many keys, full buckets (idle keys) are dropped so memory stays bounded.
constexpr std::size_t prune_threshold = 100000;
}  // namespace

rate_limiter::rate_limiter(double rate, double burst) : rate_(rate), burst_(std::max(burst, 1.0)) {}

int rate_limiter::take(const std::string& key) { return take(key, std::chrono::steady_clock::now()); }

int rate_limiter::take(const std::string& key, std::chrono::steady_clock::time_point now) {
    if (rate_ <= 0) return 0;
    std::lock_guard lock(mu_);
    if (buckets_.size() > prune_threshold) prune(now);
    auto [it, fresh] = buckets_.try_emplace(key, bucket{burst_, now});
    auto& b = it->second;
    if (!fresh) {
        std::chrono::duration<double> elapsed = now - b.updated;
        b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed.count()) * rate_);
        b.updated = now;
    }
    if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
        return 0;
    }
    return std::max(1, static_cast<int>(std::ceil((1.0 - b.tokens) / rate_)));
}

void rate_limiter::prune(std::chrono::steady_clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        std::chrono::duration<double> idle = now - it->second.updated;
        if (it->second.tokens + idle.count() * rate_ >= burst_) it = buckets_.erase(it);
        else ++it;
    }
}

}  // namespace txp::gateway
