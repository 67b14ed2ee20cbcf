// Connection pool, failure classification and the retrying transaction helper.
#include "txp/db/db.hpp"

#include "txp/common/config.hpp"
#include "txp/common/log.hpp"

#include <random>
#include <thread>

namespace txp::db {

failure_kind classify_sqlstate(const std::string& s) {
    if (s == "40001" || s == "40P01" || s == "55P03" || s == "57P01" || s == "57P02" || s == "57P03" ||
        s == "57014" /* query_canceled (statement timeout) */ ||
        s == "25006" /* read_only_sql_transaction: a server that was primary is a standby now */) {
        return failure_kind::transient;
    }
    if (s.size() == 5 && (s.compare(0, 2, "08") == 0 || s.compare(0, 2, "53") == 0 || s.compare(0, 2, "58") == 0)) {
        return failure_kind::transient;
    }
    return failure_kind::permanent;
}

std::string primary_message(const std::exception& e) {
    std::string_view s = e.what();
    if (s.substr(0, 6) == "ERROR:") {
        s.remove_prefix(6);
        while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    }
    s = s.substr(0, s.find('\n'));
    return std::string(s.substr(0, 300));
}

std::string sqlstate_of(const std::exception& e) {
    if (auto* de = dynamic_cast<const db_error*>(&e)) return de->sqlstate();
    if (auto* se = dynamic_cast<const pqxx::sql_error*>(&e); se && !se->sqlstate().empty()) return se->sqlstate();
    if (dynamic_cast<const pqxx::unique_violation*>(&e)) return "23505";
    if (dynamic_cast<const pqxx::foreign_key_violation*>(&e)) return "23503";
    if (dynamic_cast<const pqxx::not_null_violation*>(&e)) return "23502";
    if (dynamic_cast<const pqxx::check_violation*>(&e)) return "23514";
    if (dynamic_cast<const pqxx::insufficient_privilege*>(&e)) return "42501";
    if (dynamic_cast<const pqxx::serialization_failure*>(&e)) return "40001";
    if (dynamic_cast<const pqxx::deadlock_detected*>(&e)) return "40P01";
    if (dynamic_cast<const pqxx::undefined_table*>(&e)) return "42P01";
    if (dynamic_cast<const pqxx::syntax_error*>(&e)) return "42601";
    return "";
}

bool connection_unusable(const std::exception& e) {
    if (dynamic_cast<const pqxx::broken_connection*>(&e) || dynamic_cast<const pqxx::in_doubt_error*>(&e)) return true;
    auto s = sqlstate_of(e);
    // The server is shutting down or is a standby now (after a failover the old primary comes
    // back as one): another server of a multi-host URL takes the writes.
    return s == "25006" || s == "57P01" || s == "57P02" || s == "57P03";
}

failure_kind classify(const std::exception& e) {
    if (dynamic_cast<const pqxx::broken_connection*>(&e)) return failure_kind::transient;
    if (dynamic_cast<const pqxx::in_doubt_error*>(&e)) return failure_kind::transient;
    // libpqxx 6 raises serialization failures and deadlocks as transaction_rollback, which
    // is not an sql_error.
    if (dynamic_cast<const pqxx::transaction_rollback*>(&e)) return failure_kind::transient;
    if (auto* de = dynamic_cast<const db_error*>(&e)) return de->kind();
    return classify_sqlstate(sqlstate_of(e));
}

namespace {
void append_quoted(std::string& out, const std::string& s) {
    out += '"';
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}
}  // namespace

std::string array_literal(const std::vector<std::optional<std::string>>& v) {
    std::string out = "{";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        if (v[i]) append_quoted(out, *v[i]);
        else out += "NULL";
    }
    return out + "}";
}

std::string array_literal(const std::vector<std::string>& v) {
    std::string out = "{";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        append_quoted(out, v[i]);
    }
    return out + "}";
}

std::string array_literal(const std::vector<std::int64_t>& v) {
    std::string out = "{";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(v[i]);
    }
    return out + "}";
}

std::string array_literal(const std::vector<std::optional<std::int64_t>>& v) {
    std::string out = "{";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        out += v[i] ? std::to_string(*v[i]) : std::string("NULL");
    }
    return out + "}";
}

pool_options pool_options_from_env(const std::string& application_name, std::size_t size) {
    pool_options o;
    o.url = config::require_url("TXP_DATABASE_URL", "postgresql,postgres");
    o.size = size;
    o.application_name = application_name;
    return o;
}

std::string redact_url(const std::string& url) {
    auto scheme = url.find("://");
    auto at = url.rfind('@');
    if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
    auto colon = url.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return url;
    return url.substr(0, colon + 1) + "***" + url.substr(at);
}

lease::~lease() {
    if (pool_ && conn_) pool_->give_back(std::move(conn_), discard_);
}

pool::pool(pool_options opts) : opts_(std::move(opts)) {
    if (opts_.size == 0) opts_.size = 1;
}

pool::~pool() = default;

std::string connection_url(const std::string& url, const std::string& application_name) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "application_name=" + application_name +
           "&connect_timeout=5";
}

std::unique_ptr<pqxx::connection> pool::connect() {
    try {
        auto c = std::make_unique<pqxx::connection>(connection_url(opts_.url, opts_.application_name));
        // libpqxx 6 would reconnect a broken connection by itself on its next use, without
        // on_connect's session settings, and to whichever server the URL finds then: a broken
        // connection is dropped instead and the pool opens a new one (see lease::use).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // deprecated in 6.4, the feature it turns off with it
        c->inhibit_reactivation(true);
#pragma GCC diagnostic pop
        if (opts_.on_connect) opts_.on_connect(*c);
        return c;
    } catch (const pqxx::broken_connection& e) {
        throw db_error(failure_kind::transient, std::string("cannot connect to PostgreSQL at ") + redact_url(opts_.url));
    }
}

lease pool::acquire() {
    std::unique_lock lk(mu_);
    auto deadline = std::chrono::steady_clock::now() + opts_.acquire_timeout;
    for (;;) {
        if (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            return lease(this, std::move(c));
        }
        if (open_ < opts_.size) {
            ++open_;
            lk.unlock();
            try {
                return lease(this, connect());
            } catch (...) {
                lk.lock();
                --open_;
                cv_.notify_one();
                throw;
            }
        }
        if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= opts_.size) {
            throw db_error(failure_kind::transient, "no database connection available in time");
        }
    }
}

void pool::give_back(std::unique_ptr<pqxx::connection> c, bool discard) {
    std::lock_guard lk(mu_);
    if (discard || !c->is_open()) {
        --open_;
    } else {
        idle_.push_back(std::move(c));
    }
    cv_.notify_one();
}

bool pool::ping() {
    try {
        auto l = acquire();
        try {
            pqxx::nontransaction n(*l);
            n.exec("SELECT 1");
            return true;
        } catch (...) {
            l.discard();
            return false;
        }
    } catch (...) {
        return false;
    }
}

void with_transaction(pool& p, const std::function<void(pqxx::work&)>& fn, const retry_options& r) {
    thread_local std::mt19937 rng{std::random_device{}()};
    auto backoff = r.first_backoff;
    for (int attempt = 1;; ++attempt) {
        try {
            p.acquire().use([&](pqxx::connection& c) {
                pqxx::work w(c);
                fn(w);
                w.commit();
            });
            return;
        } catch (const std::exception& e) {
            auto kind = classify(e);
            if (kind == failure_kind::permanent) {
                if (dynamic_cast<const db_error*>(&e)) throw;
                throw db_error(failure_kind::permanent, e.what(), sqlstate_of(e));
            }
            if (attempt >= r.attempts) throw db_error(failure_kind::transient, e.what(), sqlstate_of(e));
            std::uniform_int_distribution<long> jitter(backoff.count() / 2, backoff.count() * 3 / 2 + 1);
            log::debug("transient database failure, retrying",
                       {{"attempt", attempt}, {"error", std::string_view(e.what()).substr(0, 200)}});
            std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
            backoff = std::min(backoff * 2, r.max_backoff);
        }
    }
}

}  // namespace txp::db
