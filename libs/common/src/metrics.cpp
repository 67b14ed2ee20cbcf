// Prometheus text exposition for the process-wide metrics registry.
#include "txp/common/metrics.hpp"

#include <cstdio>

namespace txp::metrics {

namespace {

std::string label_key(const labels& l) {
    std::string out;
    for (std::size_t i = 0; i < l.size(); ++i) {
        if (i) out += ',';
        out += l[i].first;
        out += "=\"";
        for (char c : l[i].second) {
            if (c == '\\' || c == '"') out += '\\';
            if (c == '\n') { out += "\\n"; continue; }
            out += c;
        }
        out += '"';
    }
    return out;
}

std::string seconds(std::uint64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llu.%06llu", static_cast<unsigned long long>(us / 1000000),
                  static_cast<unsigned long long>(us % 1000000));
    return buf;
}

}  // namespace

histogram::histogram(std::vector<std::uint64_t> bounds_us)
    : bounds_(std::move(bounds_us)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void histogram::observe_us(std::uint64_t us) {
    std::size_t i = 0;
    while (i < bounds_.size() && us > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(us, std::memory_order_relaxed);
}

std::vector<std::uint64_t> histogram::cumulative() const {
    std::vector<std::uint64_t> out(bounds_.size() + 1);
    std::uint64_t acc = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        acc += buckets_[i].load(std::memory_order_relaxed);
        out[i] = acc;
    }
    return out;
}

counter& registry::get_counter(const std::string& name, const std::string& help, const labels& l) {
    std::lock_guard lk(mu_);
    auto& f = families_[name];
    f.help = help;
    f.type = "counter";
    auto& p = f.counters[label_key(l)];
    if (!p) p = std::make_unique<counter>();
    return *p;
}

gauge& registry::get_gauge(const std::string& name, const std::string& help, const labels& l) {
    std::lock_guard lk(mu_);
    auto& f = families_[name];
    f.help = help;
    f.type = "gauge";
    auto& p = f.gauges[label_key(l)];
    if (!p) p = std::make_unique<gauge>();
    return *p;
}

histogram& registry::get_histogram(const std::string& name, const std::string& help, const labels& l) {
    std::lock_guard lk(mu_);
    auto& f = families_[name];
    f.help = help;
    f.type = "histogram";
    auto& p = f.histograms[label_key(l)];
    if (!p) p = std::make_unique<histogram>(default_latency_buckets_us());
    return *p;
}

std::string registry::render() const {
    std::lock_guard lk(mu_);
    std::string out;
    for (const auto& [name, f] : families_) {
        out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + " " + f.type + "\n";
        auto braces = [](const std::string& k) { return k.empty() ? std::string() : "{" + k + "}"; };
        for (const auto& [k, c] : f.counters) out += name + braces(k) + " " + std::to_string(c->value()) + "\n";
        for (const auto& [k, g] : f.gauges) out += name + braces(k) + " " + std::to_string(g->value()) + "\n";
        for (const auto& [k, h] : f.histograms) {
            auto cum = h->cumulative();
            auto bounds = h->bounds_us();
            std::string sep = k.empty() ? "" : k + ",";
            for (std::size_t i = 0; i < bounds.size(); ++i) {
                out += name + "_bucket{" + sep + "le=\"" + seconds(bounds[i]) + "\"} " + std::to_string(cum[i]) + "\n";
            }
            out += name + "_bucket{" + sep + "le=\"+Inf\"} " + std::to_string(cum.back()) + "\n";
            out += name + "_sum" + braces(k) + " " + seconds(h->sum_us()) + "\n";
            out += name + "_count" + braces(k) + " " + std::to_string(h->count()) + "\n";
        }
    }
    return out;
}

registry& global() {
    static registry r;
    return r;
}

std::vector<std::uint64_t> default_latency_buckets_us() {
    return {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
}

}  // namespace txp::metrics
