// plaid-sync: syncs linked banks (Plaid items) and mirrors their posted transactions into
// the ledger.
//   plaid-sync            run (the default): consumers of plaid.sync, the scheduler, the outbox relay
//   plaid-sync migrate    apply the plaid schema's migrations and exit
// Configuration (environment): TXP_DATABASE_URL, TXP_AMQP_URL, TXP_PLAID_BASE_URL or
// TXP_PLAID_ENV, TXP_PLAID_CLIENT_ID, TXP_PLAID_SECRET, TXP_PLAID_TOKEN_KEY (base64 of 32
// bytes), TXP_PLAID_SYNC_INTERVAL (15m), TXP_SYNC_RECOVERY_AFTER (60s), TXP_SYNC_CONSUMERS (2), TXP_PLAID_PAGE_SIZE (500),
// TXP_HTTP_ADDRESS/TXP_HTTP_PORT (ops endpoints, 9103), TXP_MIGRATE (true).
#include "sync_service.hpp"

#include "txp/amqp/admin.hpp"
#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/common/shutdown.hpp"
#include "txp/db/migrations.hpp"
#include "txp/http/ops.hpp"

#include <cstdio>

using namespace txp;

namespace {

db::pool_options pool_options(std::size_t size) { return db::pool_options_from_env("plaid-sync", size); }

void migrate(db::pool& pool) { db::migrate_schema(pool, "plaid"); }

int run() {
    // Everything from the environment first: a missing variable stops here, in one line.
    auto amqp_url = config::require_url("TXP_AMQP_URL", "amqp,amqps");
    auto plaid_opts = plaid::client_options::from_env();
    auto cipher = plaid::token_cipher::from_env();
    plaid_sync::service_options so;
    so.amqp.set_endpoints(amqp_url);
    so.database_url = config::require_url("TXP_DATABASE_URL", "postgresql,postgres");
    so.consumers = static_cast<int>(config::get_int("TXP_SYNC_CONSUMERS", 2, 1, 64));
    so.sync_interval = config::get_duration("TXP_PLAID_SYNC_INTERVAL", std::chrono::minutes(15));
    so.recovery_after = config::get_duration("TXP_SYNC_RECOVERY_AFTER", std::chrono::seconds(60));
    so.sync.page_size = static_cast<int>(config::get_int("TXP_PLAID_PAGE_SIZE", 500, 1, 500));
    so.replica = log::replica();
    auto address = config::get_string("TXP_HTTP_ADDRESS", "127.0.0.1");
    auto port = static_cast<std::uint16_t>(config::get_int("TXP_HTTP_PORT", 9103, 0, 65535));
    bool do_migrate = config::get_bool("TXP_MIGRATE", true);

    shutdown::install();
    db::pool pool(pool_options(static_cast<std::size_t>(so.consumers) * 2 + 3));
    if (do_migrate) migrate(pool);
    plaid::client client(plaid_opts);

    http::ops_server ops(address, port, [&] {
        return std::vector<std::pair<std::string, bool>>{
            {"database", pool.ping()}, {"broker", amqp::broker_reachable(so.amqp, "plaid.sync")}};
    });
    ops.start();
    log::info("plaid-sync started", {{"ops_port", static_cast<std::int64_t>(ops.port())}, {"plaid", plaid_opts.base_url},
                                     {"consumers", so.consumers}, {"sync_interval_ms", static_cast<std::int64_t>(so.sync_interval.count())}});
    plaid_sync::service svc(so, pool, client, cipher);
    svc.run([] { return shutdown::requested(); });
    ops.stop();
    log::info("plaid-sync stopped cleanly", {{"jobs", svc.jobs_done()}});
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string cmd = argc > 1 ? argv[1] : "run";
    try {
        log::init_from_env("plaid-sync");
        if (cmd == "run") return run();
        if (cmd == "migrate") {
            db::pool pool(pool_options(1));
            migrate(pool);
            return 0;
        }
        std::fprintf(stderr, "usage: plaid-sync [run|migrate]\n");
        return 2;
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "plaid-sync: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        log::error("plaid-sync failed", {{"error", e.what()}});
        return 1;
    }
}
