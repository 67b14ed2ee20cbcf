// Exponential backoff with jitter, for anything that retries a failed connection or request
// (broker reconnects, the load generator's resends).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace txp {

// Each delay is the current base times a random factor in [0.5, 1.5) (so that many clients
// that failed together do not retry together); the base doubles after each delay, up to max,
// and reset() brings it back to initial after a success.
class backoff {
public:
    backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);
    std::chrono::milliseconds next_delay();  // jittered; doubles the base for the next time
    void reset() { current_ = initial_; }
    std::chrono::milliseconds base() const { return current_; }

private:
    std::chrono::milliseconds initial_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds current_;
    std::mt19937_64 rng_;
};

}  // namespace txp
