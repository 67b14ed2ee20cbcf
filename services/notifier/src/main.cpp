// notifier: the user-facing accounting feed and signed webhooks (see event_consumer.hpp and
// webhook_dispatcher.hpp).
//   notifier            run the service (the default)
//   notifier migrate    apply the notify schema's migrations and exit
#include "event_consumer.hpp"
#include "feed_recovery.hpp"
#include "webhook_crypto.hpp"
#include "webhook_dispatcher.hpp"
#include "webhook_url_policy.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/common/shutdown.hpp"
#include "txp/db/db.hpp"
#include "txp/db/migrations.hpp"
#include "txp/http/ops.hpp"

#include <cstdio>
#include <string>

using namespace txp;

namespace {

db::pool_options pool_options(std::size_t size) { return db::pool_options_from_env("notifier", size); }

void migrate(db::pool& pool) { db::migrate_schema(pool, "notify"); }

notifier::dispatcher_options dispatcher_options_from_env(const amqp::connection_options& amqp) {
    notifier::dispatcher_options d;
    d.key = notifier::secret_key::from_env();
    try {
        d.policy = notifier::webhook_url_policy::parse(config::get_string("TXP_WEBHOOK_ALLOW", ""));
    } catch (const std::invalid_argument& e) {
        throw config::config_error(std::string("TXP_WEBHOOK_ALLOW is malformed: ") + e.what() +
                                   " (expected a comma list of host names, CIDRs and \"public\")");
    }
    d.timeout = config::get_duration("TXP_WEBHOOK_TIMEOUT", std::chrono::seconds(5));
    if (d.timeout.count() <= 0) throw config::config_error("TXP_WEBHOOK_TIMEOUT must be positive, e.g. 5s");
    d.concurrency = static_cast<std::size_t>(config::get_int("TXP_WEBHOOK_CONCURRENCY", 32, 1, 1024));
    d.per_endpoint = static_cast<std::size_t>(config::get_int("TXP_WEBHOOK_ENDPOINT_CONCURRENCY", 4, 1, 1024));
    if (auto b = config::get("TXP_WEBHOOK_BACKOFF")) {
        try {
            d.backoff = notifier::parse_backoff(*b);
        } catch (const std::invalid_argument& e) {
            throw config::config_error(std::string("TXP_WEBHOOK_BACKOFF is malformed: ") + e.what() +
                                       " (expected delays such as 1s,10s,60s)");
        }
    }
    d.poll = config::get_duration("TXP_WEBHOOK_POLL", std::chrono::milliseconds(250));
    d.amqp = amqp;
    d.amqp.connection_name = "notifier webhooks " + log::replica();
    return d;
}

int run() {
    auto amqp_url = config::require_url("TXP_AMQP_URL", "amqp,amqps");
    auto address = config::get_string("TXP_HTTP_ADDRESS", "127.0.0.1");
    auto port = static_cast<std::uint16_t>(config::get_int("TXP_HTTP_PORT", 9104, 0, 65535));
    notifier::consumer_options co;
    co.amqp.set_endpoints(amqp_url);
    co.amqp.connection_name = "notifier " + log::replica();
    co.batch_size = static_cast<std::size_t>(config::get_int("TXP_BATCH_SIZE", 500, 1, 5000));
    co.prefetch = static_cast<std::uint16_t>(config::get_int("TXP_PREFETCH", 1000, 1, 10000));
    co.announce = config::get_bool("TXP_ANNOUNCE", true);
    auto dopts = dispatcher_options_from_env(co.amqp);
    notifier::feed_recovery_options fro;
    fro.amqp = co.amqp;
    fro.amqp.connection_name = "notifier feed recovery " + log::replica();
    fro.database_url = config::require_url("TXP_DATABASE_URL", "postgresql,postgres");
    fro.interval = config::get_duration("TXP_RECOVERY_INTERVAL", fro.interval);
    fro.after = config::get_duration("TXP_FEED_RECOVERY_AFTER", fro.after);
    if (fro.interval.count() <= 0) throw config::config_error("TXP_RECOVERY_INTERVAL: expected a positive duration (e.g. 5s)");
    if (fro.after.count() <= 0) throw config::config_error("TXP_FEED_RECOVERY_AFTER: expected a positive duration (e.g. 30s)");
    fro.announce = co.announce;
    bool do_migrate = config::get_bool("TXP_MIGRATE", true);

    shutdown::install();
    db::pool pool(pool_options(4));
    if (do_migrate) migrate(pool);

    http::ops_server ops(address, port, [&] {
        return std::vector<std::pair<std::string, bool>>{
            {"database", pool.ping()}, {"broker", amqp::broker_reachable(co.amqp, "notifier.events")}};
    });
    ops.start();

    notifier::webhook_dispatcher dispatcher(std::move(dopts), pool);
    dispatcher.start();
    notifier::feed_recovery recovery(fro, pool, [&] { dispatcher.wake(); });
    recovery.start();
    notifier::event_consumer consumer(co, pool, [&] { dispatcher.wake(); });
    log::info("notifier started", {{"ops_port", static_cast<std::int64_t>(ops.port())}});
    consumer.run([] { return shutdown::requested(); });
    recovery.stop();
    dispatcher.stop();
    ops.stop();
    log::info("notifier stopped cleanly", {{"recorded", consumer.recorded()}});
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string cmd = argc > 1 ? argv[1] : "run";
    try {
        log::init_from_env("notifier");
        if (cmd == "run") return run();
        if (cmd == "migrate") {
            db::pool pool(pool_options(1));
            migrate(pool);
            return 0;
        }
        std::fprintf(stderr, "usage: notifier [run|migrate]\n");
        return 2;
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "notifier: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        log::error("notifier failed", {{"error", e.what()}});
        return 1;
    }
}
