// ledger-worker: applies accepted transactions from ledger.transactions to the ledger.
//   ledger-worker              run the worker (the default)
//   ledger-worker migrate      apply the ledger schema's migrations and exit
//   ledger-worker seed-demo    create demo wallets 101-105 with an opening balance
//   ledger-worker reconcile    check every ledger invariant; exit 1 if any is broken
//   ledger-worker recover      one recovery round over every transaction still queued and
//                              every outcome not announced, then exit (an operator's sweep)
#include "ledger.hpp"
#include "recovery.hpp"
#include "worker.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/common/shutdown.hpp"
#include "txp/db/db.hpp"
#include "txp/db/migrations.hpp"
#include "txp/http/ops.hpp"

#include <cstdio>
#include <iostream>
#include <string>

using namespace txp;

namespace {

db::pool_options pool_options(std::size_t size) { return db::pool_options_from_env("ledger-worker", size); }

void migrate(db::pool& pool) { db::migrate_schema(pool, "ledger"); }

ledger::recovery_options recovery_options(const amqp::connection_options& amqp) {
    ledger::recovery_options ro;
    ro.amqp = amqp;
    ro.amqp.connection_name += " recovery";
    ro.database_url = config::require_url("TXP_DATABASE_URL", "postgresql,postgres");
    ro.interval = config::get_duration("TXP_RECOVERY_INTERVAL", ro.interval);
    ro.after = config::get_duration("TXP_RECOVERY_AFTER", ro.after);
    if (ro.interval.count() <= 0) throw config::config_error("TXP_RECOVERY_INTERVAL: expected a positive duration (e.g. 5s)");
    if (ro.after.count() <= 0) throw config::config_error("TXP_RECOVERY_AFTER: expected a positive duration (e.g. 15s)");
    return ro;
}

int run_worker() {
    auto amqp_url = config::require_url("TXP_AMQP_URL", "amqp,amqps");
    auto address = config::get_string("TXP_HTTP_ADDRESS", "127.0.0.1");
    auto port = static_cast<std::uint16_t>(config::get_int("TXP_HTTP_PORT", 9101, 0, 65535));
    ledger::worker_options wo;
    wo.amqp.set_endpoints(amqp_url);
    wo.amqp.connection_name = "ledger-worker " + log::replica();
    wo.batch_size = static_cast<std::size_t>(config::get_int("TXP_BATCH_SIZE", 100, 1, 1000));
    wo.prefetch = static_cast<std::uint16_t>(config::get_int("TXP_PREFETCH", 300, 1, 10000));
    wo.hold_early = config::get_duration("TXP_HOLD_EARLY", std::chrono::milliseconds(1000));
    wo.busy_patience = config::get_duration("TXP_BUSY_PATIENCE", std::chrono::milliseconds(200));
    wo.linger = config::get_duration("TXP_BATCH_LINGER", wo.linger);
    bool do_migrate = config::get_bool("TXP_MIGRATE", true);
    auto ro = recovery_options(wo.amqp);

    shutdown::install();
    // The consumer thread's batches, and the recovery loop's.
    db::pool pool(pool_options(3));
    if (do_migrate) migrate(pool);

    http::ops_server ops(address, port, [&] {
        return std::vector<std::pair<std::string, bool>>{
            {"database", pool.ping()}, {"broker", amqp::broker_reachable(wo.amqp, wo.queue)}};
    });
    ops.start();
    log::info("ledger-worker started", {{"ops_port", static_cast<std::int64_t>(ops.port())}});

    ledger::recovery rec(ro, pool, log::replica());
    rec.start();
    ledger::worker w(wo, pool, log::replica());
    w.run([] { return shutdown::requested(); });
    rec.stop();
    ops.stop();
    log::info("ledger-worker stopped cleanly", {{"processed", w.processed()}});
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string cmd = argc > 1 ? argv[1] : "run";
    try {
        log::init_from_env("ledger-worker");
        if (cmd == "run") return run_worker();
        if (cmd == "migrate") {
            db::pool pool(pool_options(1));
            migrate(pool);
            return 0;
        }
        if (cmd == "seed-demo") {
            db::pool pool(pool_options(1));
            migrate(pool);
            auto opening = config::get_int("TXP_DEMO_OPENING_BALANCE", 100000, 0, 1000000000000);
            ledger::seed_demo(pool, opening);
            std::printf("demo wallets 101-105 ready (opening balance %lld minor units each)\n",
                        static_cast<long long>(opening));
            return 0;
        }
        if (cmd == "recover") {
            amqp::connection_options ao;
            ao.set_endpoints(config::require_url("TXP_AMQP_URL", "amqp,amqps"));
            ao.connection_name = "ledger-worker recover";
            db::pool pool(pool_options(1));
            ledger::recovery rec(recovery_options(ao), pool, log::replica());
            auto r = rec.run_round(true);
            if (!r.leader) {
                std::fprintf(stderr, "ledger-worker recover: another replica leads recovery right now; try again\n");
                return 1;
            }
            std::printf("recover: %zu queued transaction(s) looked at, %zu applied, %zu republished, %zu outcome(s) announced\n",
                        r.scanned, r.applied, r.republished, r.announced);
            return 0;
        }
        if (cmd == "reconcile") {
            db::pool pool(pool_options(1));
            std::vector<std::string> notes;
            auto problems = ledger::reconcile(pool, notes);
            for (const auto& n : notes) std::printf("note: %s\n", n.c_str());
            for (const auto& p : problems) std::printf("BROKEN: %s\n", p.c_str());
            std::printf("reconcile: %zu problem(s)\n", problems.size());
            return problems.empty() ? 0 : 1;
        }
        std::fprintf(stderr, "usage: ledger-worker [run|migrate|seed-demo|reconcile|recover]\n");
        return 2;
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "ledger-worker: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        log::error("ledger-worker failed", {{"error", e.what()}});
        return 1;
    }
}
