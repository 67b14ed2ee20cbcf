// /healthz, /readyz and /metrics, served by ops_server over a real socket.
#include "txp/http/client.hpp"
#include "txp/http/ops.hpp"

#include "txp/common/json.hpp"
#include "txp/common/metrics.hpp"

#include <catch2/catch.hpp>

#include <atomic>

using namespace txp::http;

namespace {

client_response ops_get(const ops_server& s, const std::string& path, const std::string& method = "GET") {
    client_request r;
    r.method = method;
    r.url = "http://127.0.0.1:" + std::to_string(s.port()) + path;
    return fetch(r);
}

}  // namespace

TEST_CASE("ops_server answers health, readiness and metrics", "[http][ops]") {
    std::atomic<bool> broker_up{true};
    ops_server s("127.0.0.1", 0, [&] {
        return std::vector<std::pair<std::string, bool>>{{"database", true}, {"broker", broker_up.load()}};
    });
    s.start();

    auto health = ops_get(s, "/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == R"({"status":"ok"})");

    auto ready = ops_get(s, "/readyz");
    CHECK(ready.status == 200);
    CHECK(ready.body == R"({"status":"ready","checks":{"database":true,"broker":true}})");

    broker_up = false;
    auto not_ready = ops_get(s, "/readyz");
    CHECK(not_ready.status == 503);
    auto doc = txp::json::parse(not_ready.body);
    CHECK(std::string(doc["status"].GetString()) == "not_ready");
    CHECK(doc["checks"]["database"].GetBool());
    CHECK_FALSE(doc["checks"]["broker"].GetBool());

    auto& c = txp::metrics::global().get_counter("txp_http_ops_test_total", "incremented by the ops test");
    c.inc(3);
    auto m = ops_get(s, "/metrics");
    CHECK(m.status == 200);
    CHECK(m.header_value("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(m.body.find("txp_http_ops_test_total " + std::to_string(c.value()) + "\n") != std::string::npos);
    // The server's own request counter is there too, labelled by method and status.
    CHECK(m.body.find("txp_http_requests_total{method=\"GET\",status=\"503\"}") != std::string::npos);

    auto missing = ops_get(s, "/nope");
    CHECK(missing.status == 404);
    CHECK(missing.header_value("content-type") == "application/problem+json");

    CHECK(ops_get(s, "/healthz", "POST").status == 405);
    s.stop();
}

TEST_CASE("handle_ops leaves other paths to the caller and treats a throwing check as not ready", "[http][ops]") {
    request r;
    r.method = "GET";
    r.path = "/v1/wallets";
    CHECK_FALSE(handle_ops(r, {}).has_value());
    r.path = "/readyz";
    auto res = handle_ops(r, []() -> std::vector<std::pair<std::string, bool>> { throw std::runtime_error("db down"); });
    REQUIRE(res);
    CHECK(res->status == 503);
    CHECK(res->body.find("db down") == std::string::npos);
}
