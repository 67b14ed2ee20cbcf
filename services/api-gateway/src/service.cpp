// Wiring: configuration, migrations, demo seed, and the running service (pool, HTTP
// server, outbox relay, outcome listener) with its graceful stop.
#include "api_internal.hpp"
#include "credentials.hpp"

#include "txp/amqp/admin.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/db/migrations.hpp"
#include "txp/http/server.hpp"
#include "txp/outbox/outbox.hpp"

#include <atomic>

namespace txp::gateway {

options options::from_env() {
    options o;
    o.database_url = config::require_url("TXP_DATABASE_URL", "postgresql,postgres");
    o.amqp_url = config::require_url("TXP_AMQP_URL", "amqp,amqps");
    o.http_address = config::get_string("TXP_HTTP_ADDRESS", "127.0.0.1");
    o.http_port = static_cast<std::uint16_t>(config::get_int("TXP_HTTP_PORT", 8000, 0, 65535));
    o.http_threads = static_cast<int>(config::get_int("TXP_HTTP_THREADS", 2, 1, 256));
    o.handler_threads = static_cast<int>(config::get_int("TXP_HANDLER_THREADS", 8, 1, 256));
    o.db_pool_size = static_cast<std::size_t>(config::get_int("TXP_DB_POOL_SIZE", 8, 1, 500));
    o.accept_committers = static_cast<int>(config::get_int("TXP_ACCEPT_COMMITTERS", 1, 1, 32));
    o.accept_batch = static_cast<std::size_t>(config::get_int("TXP_ACCEPT_BATCH", 64, 1, 64));
    o.max_in_flight = static_cast<std::size_t>(config::get_int("TXP_MAX_IN_FLIGHT", 0, 0, 10000000));
    o.admission_wait = config::get_duration("TXP_ADMISSION_WAIT", std::chrono::seconds(5));
    o.auth_cache_ttl = config::get_duration("TXP_AUTH_CACHE_TTL", std::chrono::seconds(5));
    if (o.auth_cache_ttl.count() < 0) throw config::config_error("TXP_AUTH_CACHE_TTL: must be 0 (off) or a duration such as 5s");
    auto keep = config::get_duration("TXP_OUTBOX_KEEP_SENT", std::chrono::seconds(0));
    if (keep.count() < 0) throw config::config_error("TXP_OUTBOX_KEEP_SENT: must be 0 (delete once published) or a duration such as 1h");
    o.outbox_keep_sent = std::chrono::duration_cast<std::chrono::seconds>(keep);
    o.outbox_relays = static_cast<std::size_t>(config::get_int("TXP_OUTBOX_RELAYS", 2, 1, 16));
    o.auth_cache_size = static_cast<std::size_t>(config::get_int("TXP_AUTH_CACHE_SIZE", 100000, 1, 10000000));
    o.wallet_readers = static_cast<int>(config::get_int("TXP_WALLET_READERS", 1, 1, 32));
    o.body_limit = static_cast<std::size_t>(config::get_int("TXP_BODY_LIMIT", 64 * 1024, 1024, 16 * 1024 * 1024));
    o.token_ttl = config::get_duration("TXP_TOKEN_TTL", std::chrono::hours(24));
    if (o.token_ttl.count() <= 0) throw config::config_error("TXP_TOKEN_TTL: must be a positive duration such as 24h");
    o.rate_limit_rps = static_cast<double>(config::get_int("TXP_RATE_LIMIT_RPS", 50, 0, 1000000));
    o.login_rate_per_min = static_cast<double>(config::get_int("TXP_LOGIN_RATE_PER_MIN", 10, 0, 1000000));
    o.migrate = config::get_bool("TXP_MIGRATE", true);
    o.plaid = plaid_config_from_env();
    o.notify = notify_config_from_env();
    return o;
}

int migrate(db::pool& pool) {
    auto l = pool.acquire();
    return db::migrate(*l, "gateway", db::load_migrations(db::default_migrations_dir(), "gateway"));
}

bool ledger_ready(db::pool& pool) {
    auto l = pool.acquire();
    pqxx::read_transaction r(*l);
    return r.exec("SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                  "WHERE n.nspname = 'ledger' AND p.proname = 'accept_transaction')")[0][0]
        .as<bool>();
}

void seed_demo(db::pool& pool, const std::string& demo_password, const std::string& admin_password) {
    auto demo_hash = hash_password(demo_password);
    auto admin_hash = hash_password(admin_password);
    db::with_transaction(pool, [&](pqxx::work& w) {
        for (int i = 1; i <= 5; ++i) {
            auto name = "demo" + std::to_string(i);
            w.exec_params("INSERT INTO gateway.users (id, username, email, password_hash, role) VALUES ($1, $2, $3, $4, 'user') "
                          "ON CONFLICT DO NOTHING",
                          i, name, name + "@demo.txp.dev", demo_hash);
        }
        w.exec_params("INSERT INTO gateway.users (id, username, email, password_hash, role) "
                      "VALUES (6, 'admin', 'admin@demo.txp.dev', $1, 'admin') ON CONFLICT DO NOTHING",
                      admin_hash);
    });
}

struct service::impl {
    options opts;
    std::unique_ptr<db::pool> pool;
    outcome_waiters waiters;
    std::unique_ptr<outbox::relay> relay;
    std::unique_ptr<acceptance_batcher> batcher;
    std::unique_ptr<wallet_reader> wallets;
    std::unique_ptr<api> handler;
    std::unique_ptr<http::server> server;
    amqp::connection_options amqp_opts;
    std::atomic<bool> ledger_ok{false};
    bool stopped = false;
};

service::service(options opts) : impl_(std::make_unique<impl>()) { impl_->opts = std::move(opts); }

service::~service() { stop(); }

void service::start() {
    auto& s = *impl_;
    init_crypto();
    db::pool_options po;
    po.url = s.opts.database_url;
    po.size = s.opts.db_pool_size;
    po.application_name = "api-gateway";
    if (s.opts.migrate) {
        // Before the statements are prepared: they name the migrations' function and tables.
        db::pool_options mo = po;
        mo.size = 1;
        db::pool migrations_pool(mo);
        int n = migrate(migrations_pool);
        log::info("gateway migrations applied", {{"applied", n}});
    }
    po.on_connect = prepare_api_statements;
    s.pool = std::make_unique<db::pool>(po);
    s.ledger_ok = ledger_ready(*s.pool);
    if (!s.ledger_ok) {
        log::error("ledger.accept_transaction is missing: run the ledger migrations (ledger-worker migrate); "
                   "money routes fail and /readyz reports not ready until then");
    }
    s.amqp_opts.set_endpoints(s.opts.amqp_url);
    s.amqp_opts.connection_name = "api-gateway " + log::replica();

    outbox::relay_options ro;
    ro.table = gateway_outbox().table();
    ro.channel = gateway_outbox().channel();
    ro.app_id = "api-gateway";
    ro.keep_sent = s.opts.outbox_keep_sent;
    ro.threads = s.opts.outbox_relays;
    ro.database_url = s.opts.database_url;
    ro.amqp = s.amqp_opts;
    ro.amqp.connection_name = "api-gateway outbox " + log::replica();
    s.relay = std::make_unique<outbox::relay>(ro);
    s.relay->start();
    s.waiters.start(s.amqp_opts, log::replica());

    auto ready = [this] {
        auto& st = *impl_;
        bool db_ok = st.pool->ping();
        if (db_ok && !st.ledger_ok) {
            try {
                st.ledger_ok = ledger_ready(*st.pool);
            } catch (const std::exception&) {
            }
        }
        bool broker_ok = false;
        try {
            amqp::admin a(st.amqp_opts);
            a.queue_depth("ledger.transactions");
            broker_ok = true;
        } catch (const std::exception&) {
        }
        return std::vector<std::pair<std::string, bool>>{
            {"database", db_ok}, {"ledger_schema", st.ledger_ok.load()}, {"broker", broker_ok}};
    };
    batcher_options bo;
    bo.database_url = s.opts.database_url;
    bo.committers = s.opts.accept_committers;
    bo.max_batch = s.opts.accept_batch;
    bo.max_in_flight = s.opts.max_in_flight;
    bo.max_admission_wait = s.opts.admission_wait;
    s.batcher = std::make_unique<acceptance_batcher>(bo);
    s.batcher->start();
    s.waiters.on_outcome([b = s.batcher.get()](const std::string& id) { b->outcome_seen(id); });
    s.wallets = std::make_unique<wallet_reader>(s.opts.database_url, s.opts.wallet_readers, 256);
    s.wallets->start();
    s.handler = std::make_unique<api>(*s.pool, s.opts, &s.waiters, *s.batcher, *s.wallets, ready);

    http::server_options so;
    so.address = s.opts.http_address;
    so.port = s.opts.http_port;
    so.threads = s.opts.http_threads;
    so.body_limit = s.opts.body_limit;
    so.server_name = "txp-api-gateway";
    s.server = std::make_unique<http::server>(so, [this](http::request&& req, std::shared_ptr<http::response_writer> w) {
        impl_->handler->handle(std::move(req), std::move(w));
    });
    s.server->start();
    log::info("api-gateway listening", {{"address", s.opts.http_address}, {"port", static_cast<std::int64_t>(s.server->port())}});
}

std::uint16_t service::port() const { return impl_->server ? impl_->server->port() : 0; }

void service::stop() {
    auto& s = *impl_;
    if (s.stopped) return;
    s.stopped = true;
    if (s.batcher) s.batcher->stop_admission();  // no outcomes will free room from here on
    s.waiters.on_outcome({});
    s.waiters.stop();                                        // answers parked requests: "queued"
    if (s.server) s.server->stop(std::chrono::seconds(10));  // stops accepting, finishes in-flight requests
    if (s.batcher) s.batcher->stop();                        // commits (and answers) what is still queued
    if (s.wallets) s.wallets->stop();
    if (s.relay) s.relay->stop();                            // a last flush, then joins
    log::info("api-gateway stopped", {{"relayed", s.relay ? s.relay->published() : 0}});
}

}  // namespace txp::gateway
