// In-memory token buckets keyed by a string (a token's hash, "username|ip"): per replica,
// which is what a limit against accidents and brute force needs.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace txp::gateway {

class rate_limiter {
public:
    // `rate` tokens per second refill a bucket of `burst`; rate <= 0 turns the limiter off.
    rate_limiter(double rate, double burst);

    // Takes one token; when the bucket is empty returns the seconds until one is available
    // (at least 1, for Retry-After), else 0.
    int take(const std::string& key);
    // The same with an explicit clock, for tests.
    int take(const std::string& key, std::chrono::steady_clock::time_point now);

    bool enabled() const { return rate_ > 0; }

private:
    struct bucket {
        double tokens;
        std::chrono::steady_clock::time_point updated;
    };
    void prune(std::chrono::steady_clock::time_point now);

    double rate_;
    double burst_;
    std::mutex mu_;
    std::unordered_map<std::string, bucket> buckets_;
};

}  // namespace txp::gateway
