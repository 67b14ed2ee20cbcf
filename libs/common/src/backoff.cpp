// See backoff.hpp.
#include "txp/common/backoff.hpp"

#include <algorithm>

namespace txp {

backoff::backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial.count() > 0 ? initial : std::chrono::milliseconds(1)),
      max_(max < initial_ ? initial_ : max),
      current_(initial_),
      rng_(std::random_device{}()) {}

std::chrono::milliseconds backoff::next_delay() {
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    auto d = std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(current_.count()) * jitter(rng_)));
    current_ = std::min(current_ * 2, max_);
    return d;
}

}  // namespace txp
