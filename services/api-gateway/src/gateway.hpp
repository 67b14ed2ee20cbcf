// api-gateway: the HTTP API people use. Configuration, the route table (which the OpenAPI
// test iterates), the request handler, and the service that wires the HTTP server, the
// database pool, the outbox relay and the outcome listener together.
#pragma once

#include "txp/db/db.hpp"
#include "txp/http/message.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace txp::gateway {

struct options {
    std::string database_url;
    std::string amqp_url;
    std::string http_address = "127.0.0.1";
    std::uint16_t http_port = 8000;  // 0: any free port (logged as "api-gateway listening")
    int http_threads = 8;            // handlers block on the database
    std::size_t db_pool_size = 8;
    std::size_t body_limit = 64 * 1024;
    std::chrono::milliseconds token_ttl{std::chrono::hours(24)};
    double rate_limit_rps = 50;  // per token; 0 turns it off; burst is twice this
    double login_rate_per_min = 10;  // per username and client address
    bool migrate = true;

    // From TXP_* variables; throws config::config_error naming the variable.
    static options from_env();
};

// One route the API serves: "GET" and "/v1/wallets/{id}".
struct route_info {
    std::string method;
    std::string pattern;
};
// Every method and path pattern the router answers, including the operational ones.
const std::vector<route_info>& route_table();

// The OpenAPI 3 document and the /docs page, both compiled into the binary.
std::string_view openapi_json();
std::string_view docs_html();

class outcome_waiters;

// Answers requests; thread-safe. Handlers block on the database; waiting requests do not
// hold an io thread.
class api {
public:
    using readiness_check = std::function<std::vector<std::pair<std::string, bool>>()>;
    api(db::pool& pool, const options& opts, outcome_waiters* waiters, readiness_check ready);
    ~api();
    api(const api&) = delete;
    api& operator=(const api&) = delete;

    void handle(http::request&& req, std::shared_ptr<http::response_writer> w);

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

// Applies deploy/migrations/gateway (under the migrations lock); returns how many ran.
int migrate(db::pool& pool);
// True when the ledger's acceptance function exists (its migration has run).
bool ledger_ready(db::pool& pool);

// Demo users demo1..demo5 (ids 1-5, owners of demo wallets 101-105) and admin (id 6). Idempotent.
void seed_demo(db::pool& pool, const std::string& demo_password, const std::string& admin_password);

// The running service.
class service {
public:
    explicit service(options opts);
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    // Migrates (when asked), starts the relay, the outcome listener and the HTTP server.
    void start();
    std::uint16_t port() const;
    // Graceful: stop accepting, finish in-flight requests, answer waiters, last relay flush.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace txp::gateway
