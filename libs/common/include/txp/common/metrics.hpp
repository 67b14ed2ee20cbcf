// Prometheus text-format metrics: counters, gauges and histograms, labelled, thread-safe.
// Hot paths keep a reference to the series they update; lookups by label happen once.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace txp::metrics {

using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
public:
    void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

class gauge {
public:
    void set(std::int64_t v) { v_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
    std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> v_{0};
};

// Durations are observed in microseconds and exported in seconds.
class histogram {
public:
    explicit histogram(std::vector<std::uint64_t> bounds_us);
    void observe_us(std::uint64_t us);
    std::vector<std::uint64_t> bounds_us() const { return bounds_; }
    std::vector<std::uint64_t> cumulative() const;
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    std::uint64_t sum_us() const { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<std::uint64_t> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_{0};
};

class registry {
public:
    counter& get_counter(const std::string& name, const std::string& help, const labels& l = {});
    gauge& get_gauge(const std::string& name, const std::string& help, const labels& l = {});
    histogram& get_histogram(const std::string& name, const std::string& help, const labels& l = {});

    // The whole registry in Prometheus text exposition format 0.0.4.
    std::string render() const;

private:
    struct family {
        std::string help;
        std::string type;
        std::map<std::string, std::unique_ptr<counter>> counters;
        std::map<std::string, std::unique_ptr<gauge>> gauges;
        std::map<std::string, std::unique_ptr<histogram>> histograms;
    };
    mutable std::mutex mu_;
    std::map<std::string, family> families_;
};

// The process-wide registry that /metrics serves.
registry& global();

// Default latency buckets: 0.5 ms .. 10 s.
std::vector<std::uint64_t> default_latency_buckets_us();

}  // namespace txp::metrics
