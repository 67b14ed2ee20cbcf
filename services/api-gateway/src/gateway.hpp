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

// Plaid settings for the /v1/plaid/* routes (plaid_routes.cpp).
struct plaid_config;
// Webhook and event-stream settings for the notifier's routes (notify_routes.hpp).
struct notify_config;

struct options {
    std::string database_url;
    std::string amqp_url;
    std::string http_address = "127.0.0.1";
    std::uint16_t http_port = 8000;  // 0: any free port (logged as "api-gateway listening")
    int http_threads = 2;            // io threads: parse, route, authenticate from the cache, write
    int handler_threads = 8;         // for the handlers that block on the database or on Argon2id
    std::size_t db_pool_size = 8;    // for reads and authentication (acceptance has its own connections)
    int accept_committers = 1;       // acceptance batcher threads, one connection each
    std::size_t accept_batch = 64;   // requests accepted in one database transaction at most
    // Admission (see batcher_options): at most this many accepted transactions without an
    // outcome per gateway (0: no limit), and how long a request may wait for room before 503.
    std::size_t max_in_flight = 0;
    std::chrono::milliseconds admission_wait{std::chrono::seconds(5)};
    // How long a token -> user lookup is reused. A token logged out on this replica dies at
    // once; on other replicas when auth.token_revoked reaches them, and at the latest after
    // this long (if the broker is late). 0 turns the cache off.
    std::chrono::milliseconds auth_cache_ttl{std::chrono::seconds(5)};
    std::size_t auth_cache_size = 100000;  // entries (about 200 bytes each)
    // Published outbox rows are deleted at once (0) or kept this long for an operator.
    std::chrono::seconds outbox_keep_sent{0};
    // Outbox relay threads: while one waits for the broker's confirms of its batch, the next
    // publishes what was accepted meanwhile.
    std::size_t outbox_relays = 2;
    int wallet_readers = 1;          // threads answering GET /v1/wallets/{id}, one connection each
    std::size_t body_limit = 64 * 1024;
    std::chrono::milliseconds token_ttl{std::chrono::hours(24)};
    double rate_limit_rps = 50;  // per token; 0 turns it off; burst is twice this
    double login_rate_per_min = 10;  // per username and client address
    bool migrate = true;
    // Plaid: off (the routes answer 503) unless TXP_PLAID_CLIENT_ID is set; see plaid_config_from_env.
    std::shared_ptr<const plaid_config> plaid;
    // Webhooks answer 503 unless TXP_WEBHOOK_SECRET_KEY is set; see notify_config_from_env.
    std::shared_ptr<const notify_config> notify;

    // From TXP_* variables; throws config::config_error naming the variable.
    static options from_env();
};

// TXP_PLAID_BASE_URL or TXP_PLAID_ENV, TXP_PLAID_CLIENT_ID, TXP_PLAID_SECRET, TXP_PLAID_TOKEN_KEY,
// TXP_PLAID_WEBHOOK_URL: nullptr when TXP_PLAID_CLIENT_ID is unset; throws config::config_error
// naming a variable that is set but malformed (or missing while the client id is set).
std::shared_ptr<const plaid_config> plaid_config_from_env();

// TXP_WEBHOOK_SECRET_KEY (unset: webhooks off), TXP_WEBHOOK_ALLOW, TXP_SSE_MAX_PER_USER,
// TXP_SSE_MAX_STREAMS, TXP_SSE_HEARTBEAT; throws config::config_error naming a malformed one.
std::shared_ptr<const notify_config> notify_config_from_env();

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
// The web console served at / (console.html).
std::string_view console_html();

class outcome_waiters;
class acceptance_batcher;
class wallet_reader;

// Answers requests; thread-safe. Most reads block their io thread on the database; money
// requests go to the acceptance batcher and single-wallet reads to the wallet reader, which
// answer from their own threads; waiting requests (Prefer: wait) do not hold an io thread.
class api {
public:
    using readiness_check = std::function<std::vector<std::pair<std::string, bool>>()>;
    api(db::pool& pool, const options& opts, outcome_waiters* waiters, acceptance_batcher& batcher, wallet_reader& wallets,
        readiness_check ready);
    ~api();
    api(const api&) = delete;
    api& operator=(const api&) = delete;

    void handle(http::request&& req, std::shared_ptr<http::response_writer> w);

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

// Prepares the API's hot statements on a connection (for the pool's on_connect).
void prepare_api_statements(pqxx::connection& c);

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
