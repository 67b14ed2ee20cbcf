// See leader.hpp.
#include "txp/db/leader.hpp"

#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/db/db.hpp"

namespace txp::db {

leader_loop::leader_loop(leader_options opts, round_fn round) : opts_(std::move(opts)), round_(std::move(round)) {}

leader_loop::~leader_loop() { stop(); }

void leader_loop::start() {
    thread_ = std::thread([this] {
        std::unique_lock lk(mu_);
        while (!stopping_) {
            lk.unlock();
            try {
                run_once();
            } catch (const std::exception& e) {
                log::warn("periodic job failed; trying again next round", {{"job", opts_.job}, {"error", e.what()}});
            }
            lk.lock();
            cv_.wait_for(lk, opts_.interval, [&] { return stopping_; });
        }
    });
}

void leader_loop::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool leader_loop::lead() {
    auto& gauge = metrics::global().get_gauge("txp_leader", "1 while this replica leads the job", {{"job", opts_.job}});
    try {
        if (!conn_) {
            leading_ = false;
            conn_ = std::make_unique<pqxx::connection>(connection_url(opts_.database_url, opts_.application_name));
        }
        pqxx::nontransaction n(*conn_);
        if (!leading_) {
            leading_ = n.exec_params("SELECT pg_try_advisory_lock($1)", opts_.lock_key)[0][0].as<bool>();
            if (leading_) log::info("this replica leads the job", {{"job", opts_.job}});
        } else {
            n.exec("SELECT 1");  // the session, and with it the lock, is still there
        }
    } catch (const std::exception& e) {
        if (leading_) log::warn("lost the lead with the database connection", {{"job", opts_.job}, {"error", e.what()}});
        conn_.reset();
        leading_ = false;
    }
    gauge.set(leading_ ? 1 : 0);
    return leading_;
}

bool leader_loop::run_once(const round_fn& fn) {
    std::lock_guard lk(run_mu_);
    if (!lead()) return false;
    try {
        (fn ? fn : round_)(*conn_);
    } catch (const pqxx::broken_connection&) {
        conn_.reset();
        leading_ = false;
        throw;
    }
    return true;
}

}  // namespace txp::db
