// PostgreSQL through libpqxx: a small connection pool, a transaction helper that retries
// transient failures, and the classification of failures used by every service.
#pragma once

#include <pqxx/pqxx>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace txp::db {

enum class failure_kind { transient, permanent };

// Transient: serialization failure, deadlock, lock timeout, lost or refused connection,
// server shutting down, out of resources, commit outcome unknown, a write on a server that is
// a standby (after a failover). Everything else: permanent.
failure_kind classify(const std::exception& e);
failure_kind classify_sqlstate(const std::string& sqlstate);

// True when the connection that raised `e` must not be used again: lost, its commit in
// doubt, its server shutting down, or its server a standby now (read-only).
bool connection_unusable(const std::exception& e);

// An error after the helper gave up; kind() says whether retrying later may succeed.
class db_error : public std::runtime_error {
public:
    db_error(failure_kind k, const std::string& what, std::string sqlstate = "")
        : std::runtime_error(what), kind_(k), sqlstate_(std::move(sqlstate)) {}
    failure_kind kind() const { return kind_; }
    const std::string& sqlstate() const { return sqlstate_; }

private:
    failure_kind kind_;
    std::string sqlstate_;
};

// The SQLSTATE of a database exception. libpqxx 6.4 leaves sqlstate() empty for the codes
// it maps to its own exception classes, so those are recovered from the class.
std::string sqlstate_of(const std::exception& e);
// The first line of a server error without its "ERROR:" prefix (no CONTEXT, no function
// names), at most 300 characters: what may be shown to a client for errors the SQL raises
// on purpose ("ERROR:  amount must be ...\nCONTEXT: ..." -> "amount must be ...").
std::string primary_message(const std::exception& e);

// A nullable column as an optional.
template <typename T>
std::optional<T> opt(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return f.as<T>();
}

class pool;

// A connection borrowed from the pool; returned on destruction (dropped if broken).
class lease {
public:
    lease(pool* p, std::unique_ptr<pqxx::connection> c) : pool_(p), conn_(std::move(c)) {}
    lease(lease&& o) noexcept = default;
    lease& operator=(lease&&) = delete;
    ~lease();
    pqxx::connection& operator*() { return *conn_; }
    pqxx::connection* operator->() { return conn_.get(); }
    // Marks the connection unusable (it is closed instead of returned).
    void discard() { discard_ = true; }
    // Runs fn(connection). A connection that must not be used again (connection_unusable: lost,
    // commit in doubt, server shutting down or now a standby) is marked so before the
    // exception goes on, so it is never handed out again.
    template <typename F>
    decltype(auto) use(F&& fn) {
        try {
            return fn(*conn_);
        } catch (const std::exception& e) {
            if (connection_unusable(e)) discard_ = true;
            throw;
        }
    }

private:
    pool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    bool discard_ = false;
};

struct pool_options {
    std::string url;                 // postgresql://user:pass@host:port/db
    std::size_t size = 4;
    std::chrono::milliseconds acquire_timeout{5000};
    std::string application_name = "txp";
    // Runs on every new connection (prepare statements, SET options).
    std::function<void(pqxx::connection&)> on_connect;
};

class pool {
public:
    explicit pool(pool_options opts);
    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    // Throws db_error(transient) when no connection can be had within acquire_timeout.
    lease acquire();
    // True when a trivial query succeeds (for /readyz).
    bool ping();
    const pool_options& options() const { return opts_; }

private:
    friend class lease;
    void give_back(std::unique_ptr<pqxx::connection> c, bool discard);
    std::unique_ptr<pqxx::connection> connect();

    pool_options opts_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<pqxx::connection>> idle_;
    std::size_t open_ = 0;
};

struct retry_options {
    int attempts = 5;
    std::chrono::milliseconds first_backoff{10};
    std::chrono::milliseconds max_backoff{500};
};

// Runs fn(work) in a transaction and commits; on a transient failure rolls back, waits
// with jittered exponential backoff and runs fn again (fn must be safe to re-run). After
// the last attempt, or at once on a permanent failure, throws db_error with the kind.
void with_transaction(pool& p, const std::function<void(pqxx::work&)>& fn, const retry_options& r = {});

// Pool options for a service: TXP_DATABASE_URL (required, postgresql:// URL), the given size
// and application name (shown in pg_stat_activity).
pool_options pool_options_from_env(const std::string& application_name, std::size_t size);

// PostgreSQL array literals for set-based statements ($1::bigint[] etc.); nullopt is NULL.
std::string array_literal(const std::vector<std::optional<std::string>>& v);
std::string array_literal(const std::vector<std::string>& v);
std::string array_literal(const std::vector<std::int64_t>& v);
std::string array_literal(const std::vector<std::optional<std::int64_t>>& v);

// Redacts the password of a connection URL for log lines.
std::string redact_url(const std::string& url);

// The URL with application_name (shown in pg_stat_activity) and a 5 s connect timeout added.
std::string connection_url(const std::string& url, const std::string& application_name);

}  // namespace txp::db
