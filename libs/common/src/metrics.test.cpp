// Prometheus text exposition.
#include "txp/common/metrics.hpp"

#include <catch2/catch.hpp>

using namespace txp::metrics;

TEST_CASE("counters, gauges and histograms render in text format", "[metrics]") {
    registry r;
    r.get_counter("txp_tx_total", "Transactions", {{"outcome", "completed"}}).inc(3);
    r.get_counter("txp_tx_total", "Transactions", {{"outcome", "rejected"}}).inc();
    r.get_gauge("txp_inflight", "In flight").set(-2);
    auto& h = r.get_histogram("txp_lat_seconds", "Latency");
    h.observe_us(700);
    h.observe_us(20000000);
    auto text = r.render();
    CHECK(text.find("# TYPE txp_tx_total counter") != std::string::npos);
    CHECK(text.find("txp_tx_total{outcome=\"completed\"} 3\n") != std::string::npos);
    CHECK(text.find("txp_tx_total{outcome=\"rejected\"} 1\n") != std::string::npos);
    CHECK(text.find("txp_inflight -2\n") != std::string::npos);
    CHECK(text.find("txp_lat_seconds_bucket{le=\"0.000500\"} 0\n") != std::string::npos);
    CHECK(text.find("txp_lat_seconds_bucket{le=\"0.001000\"} 1\n") != std::string::npos);
    CHECK(text.find("txp_lat_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
    CHECK(text.find("txp_lat_seconds_count 2\n") != std::string::npos);
    CHECK(text.find("txp_lat_seconds_sum 20.000700\n") != std::string::npos);
}
