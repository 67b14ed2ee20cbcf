// Internals of the API shared by its translation units: the problem helpers, the
// authenticated caller, JSON body checks and the transaction helper.
#pragma once

#include "acceptance_batcher.hpp"
#include "gateway.hpp"
#include "outcome_waiters.hpp"
#include "rate_limiter.hpp"
#include "token_cache.hpp"
#include "wallet_reader.hpp"

#include "txp/common/json.hpp"
#include "txp/db/db.hpp"
#include "txp/http/message.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>

namespace txp::outbox {
class outbox;
}

namespace txp::gateway {

// An answer other than success, thrown out of a handler (and out of a DB transaction,
// which it rolls back).
class api_error : public std::exception {
public:
    explicit api_error(http::response r) : response_(std::move(r)) {}
    const char* what() const noexcept override { return "api error"; }
    http::response& response() { return response_; }

private:
    http::response response_;
};

[[noreturn]] void fail(unsigned status, std::string_view type, std::string_view title, std::string_view detail,
                       std::vector<http::problem_member> extra = {});
[[noreturn]] void fail_field(const std::string& field, const std::string& detail, unsigned status = 400);
[[noreturn]] void fail_not_found(std::string_view what);

// The request id of the request this thread is handling (for problems thrown deep down).
const std::string& current_request_id();

struct caller {
    std::int64_t id = 0;
    std::string username;
    std::string role;
    std::string token_hash;
    std::chrono::system_clock::time_point token_expires_at = std::chrono::system_clock::time_point::max();
    bool admin() const { return role == "admin"; }
    std::string idempotency_scope() const { return "user:" + std::to_string(id); }
};

struct context {
    const http::request& req;
    std::shared_ptr<http::response_writer> writer;
    std::map<std::string, std::string> params;  // path parameters by name
    std::optional<caller> user;
    const caller& me() const { return *user; }
};

// The request body as a JSON object whose members are all in `allowed` (400 naming an
// unknown one; 400 malformed-json; the content type was checked by the router).
rapidjson::Document json_body(const http::request& req, std::initializer_list<const char*> allowed);

// A path parameter that must be a positive integer id; anything else is 404 (no such thing).
std::int64_t id_param(const context& c, const char* name, std::string_view what);

// Integer query parameter within [min, max]; 400 naming it otherwise.
std::optional<std::int64_t> int_query(const http::request& req, const char* name, std::int64_t min, std::int64_t max);

// SQL expression rendering a timestamptz as ISO-8601 UTC with microseconds.
std::string iso(std::string_view column);

http::response json_response(unsigned status, std::string body);

// Runs attempt() again after a transient database failure (up to 4 times, with jitter);
// api_error and permanent failures propagate unchanged.
template <typename F>
auto retry_transient(F&& attempt) {
    thread_local std::mt19937 rng{std::random_device{}()};
    for (int n = 1;; ++n) {
        try {
            return attempt();
        } catch (const api_error&) {
            throw;
        } catch (const std::exception& e) {
            if (n >= 4 || db::classify(e) != db::failure_kind::transient) throw;
            std::uniform_int_distribution<int> jitter(5, 20 * n);
            std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
        }
    }
}

// Runs fn(work) in a transaction and commits, retrying transient database failures a few
// times; api_error and permanent failures propagate unchanged (after rollback).
template <typename F>
auto in_transaction(db::pool& pool, F&& fn) {
    return retry_transient([&] {
        return pool.acquire().use([&](pqxx::connection& c) {
            pqxx::work w(c);
            auto result = fn(w);
            w.commit();
            return result;
        });
    });
}

// Runs fn(conn) for a single statement without BEGIN/COMMIT (one round trip instead of
// three), retrying transient failures like in_transaction. Only for one-statement reads.
template <typename F>
auto single_read(db::pool& pool, F&& fn) {
    return retry_transient([&] {
        return pool.acquire().use([&](pqxx::connection& c) {
            pqxx::nontransaction n(c);
            return fn(n);
        });
    });
}

// The problem+json answer for an exception a handler (or the acceptance batcher) raised:
// the ledger's TX400/TX404/TX409, bad data, an unavailable database, or an internal error.
http::response error_response(const std::exception& e, const std::string& request_id, const std::string& path);

// The statements prepare_api_statements() prepares on every pooled connection.
inline constexpr const char* auth_statement = "txp_gateway_auth";
// One transaction by id ($1), with the owners of its wallets (for GET /v1/transactions/{id}).
inline constexpr const char* transaction_statement = "txp_gateway_transaction";

// Wallet and transaction representations. Column lists match the writers.
extern const char* const wallet_columns;       // for "FROM ledger.wallets w"
extern const char* const transaction_columns;  // for "FROM ledger.transactions t"
void write_wallet(json::writer& w, const pqxx::row& r);
// `wallet` (when set) is the wallet whose history this is: adds direction and its balance_after.
void write_transaction(json::writer& w, const pqxx::row& r, const caller& viewer, std::optional<std::int64_t> wallet,
                       bool sees_source, bool sees_destination);

// Threads for the handlers that block on the database (or on Argon2id), so that the io
// threads only parse, route and write, and stay few.
class blocking_pool {
public:
    explicit blocking_pool(int threads) {
        for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { run(); });
    }
    // Runs what was posted, then joins.
    ~blocking_pool() {
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;

    void post(std::function<void()> task) {
        {
            std::lock_guard lk(mu_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
    }

private:
    void run() {
        for (;;) {
            std::function<void()> task;
            {
                std::unique_lock lk(mu_);
                cv_.wait(lk, [&] { return !tasks_.empty() || stopping_; });
                if (tasks_.empty()) return;
                task = std::move(tasks_.front());
                tasks_.pop_front();
            }
            task();
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

// The /v1/plaid/* routes' shared state (plaid_routes.cpp); nullptr when Plaid is not configured.
class plaid_gateway;
std::shared_ptr<plaid_gateway> make_plaid_gateway(db::pool& pool, const options& opts);

// The notifier's routes' shared state (notify_routes.cpp): webhook settings and the SSE
// stream registry, which it registers with the waiters' events thread for notify.created.
class notify_gateway;
std::shared_ptr<notify_gateway> make_notify_gateway(const options& opts, outcome_waiters* waiters);
// Ends the event streams a logged-out token opened.
void close_streams_of_token(notify_gateway& n, const std::string& token_hash);

// gateway.outbox, whose inserts NOTIFY txp_outbox (the relay LISTENs): what the handlers
// write messages into (sync jobs, auth.token_revoked). Accepted transactions go in set-based
// from the acceptance batcher.
const outbox::outbox& gateway_outbox();

struct api::impl {
    db::pool& pool;
    options opts;
    outcome_waiters* waiters;
    acceptance_batcher& batcher;
    wallet_reader& wallets;
    api::readiness_check ready;
    rate_limiter per_token;
    rate_limiter per_login;
    token_cache tokens;
    std::string dummy_hash;  // verified against when a username is unknown (same timing)
    std::shared_ptr<plaid_gateway> plaid = make_plaid_gateway(pool, opts);
    std::shared_ptr<notify_gateway> notify = make_notify_gateway(opts, waiters);
    blocking_pool workers;   // last: joined first, while everything its tasks use still exists

    impl(db::pool& p, const options& o, outcome_waiters* w, acceptance_batcher& b, wallet_reader& wr, api::readiness_check r);
    ~impl();

    void handle(http::request&& req, std::shared_ptr<http::response_writer> w);
    caller authenticate(const http::request& req);
    // A token logged out (here, or on another replica through auth.token_revoked): out of the
    // cache, and its event streams ended.
    void forget_token(const std::string& token_hash);

    // Handlers: a response, or nullopt when the request was parked (Prefer: wait).
    using handler_fn = std::optional<http::response> (impl::*)(context&);
    std::optional<http::response> register_user(context& c);
    std::optional<http::response> login(context& c);
    std::optional<http::response> logout(context& c);
    std::optional<http::response> profile(context& c);
    std::optional<http::response> list_wallets(context& c);
    std::optional<http::response> my_wallet(context& c);
    std::optional<http::response> get_wallet(context& c);
    std::optional<http::response> wallet_transactions(context& c);
    std::optional<http::response> post_transaction(context& c);
    std::optional<http::response> my_deposit(context& c);
    std::optional<http::response> my_withdraw(context& c);
    std::optional<http::response> my_transfer(context& c);
    std::optional<http::response> get_transaction(context& c);
    std::optional<http::response> openapi(context& c);
    std::optional<http::response> docs(context& c);
    // /v1/plaid/* (plaid_routes.cpp)
    std::optional<http::response> plaid_link_token(context& c);
    std::optional<http::response> plaid_exchange(context& c);
    std::optional<http::response> plaid_sandbox_link(context& c);
    std::optional<http::response> plaid_items(context& c);
    std::optional<http::response> plaid_accounts(context& c);
    std::optional<http::response> plaid_sync_item(context& c);
    std::optional<http::response> plaid_refresh_balance(context& c);
    std::optional<http::response> plaid_remove_item(context& c);
    std::optional<http::response> plaid_transactions(context& c);
    std::optional<http::response> plaid_link_wallet(context& c);
    std::optional<http::response> plaid_webhook(context& c);
    // Webhooks, the feed, the event stream and the console (notify_routes.cpp)
    std::optional<http::response> create_webhook(context& c);
    std::optional<http::response> list_webhooks(context& c);
    std::optional<http::response> delete_webhook(context& c);
    std::optional<http::response> list_notifications(context& c);
    std::optional<http::response> open_event_stream(context& c);
    std::optional<http::response> console(context& c);

    struct money_request {
        std::string type;
        std::optional<std::int64_t> wallet_id;  // nullopt: the caller's own ("me") wallet
        std::optional<std::int64_t> to_wallet_id;
        std::optional<std::int64_t> to_user_id;
        std::int64_t amount = 0;
        std::optional<std::string> currency;  // nullopt: the wallet's currency
        std::optional<std::string> description;
        std::optional<std::string> metadata;  // JSON object text
        std::string key;
    };
    std::optional<http::response> accept_money(context& c, money_request m);
    std::optional<http::response> convenience(context& c, const std::string& type);
};

}  // namespace txp::gateway
