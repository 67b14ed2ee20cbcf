// See ledger_fixture.hpp.
#include "ledger_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/db/migrations.hpp"
#include "txp/testing/env.hpp"

#include <mutex>
#include <thread>

namespace txp::testing {

ledger_fixture::ledger_fixture() {
    db::pool_options lo;
    lo.url = database_url("ledger");
    lo.size = 4;
    ledger_ = std::make_unique<db::pool>(lo);
    static std::once_flag migrated;
    std::call_once(migrated, [&] {
        auto l = ledger_->acquire();
        db::migrate(*l, "ledger", db::load_migrations(db::default_migrations_dir(), "ledger"));
    });
    db::pool_options go;
    go.url = database_url("gateway");
    go.size = 4;
    gateway_ = std::make_unique<db::pool>(go);
}

amqp::connection_options ledger_fixture::amqp_options() const {
    amqp::connection_options o;
    o.set_endpoints(amqp_url());
    o.connection_name = "ledger-tests";
    return o;
}

std::int64_t ledger_fixture::open_wallet(std::int64_t owner, const std::string& currency, std::int64_t limit) {
    std::int64_t id = 0;
    db::with_transaction(*gateway_, [&](pqxx::work& w) {
        id = w.exec_params("SELECT ledger.open_wallet($1, $2, $3)", owner, currency, limit)[0][0].as<std::int64_t>();
    });
    return id;
}

ledger::tx_message ledger_fixture::accept(const std::string& type, std::int64_t wallet, std::optional<std::int64_t> to,
                                          std::int64_t amount, const std::string& currency,
                                          std::optional<std::string> reverses, std::string key) {
    if (key.empty()) key = ids::uuid_v4();
    ledger::tx_message m;
    db::with_transaction(*gateway_, [&](pqxx::work& w) {
        auto r = w.exec_params(
            "SELECT transaction_id::text, sequence, to_sequence, to_wallet_id FROM ledger.accept_transaction("
            "'test', $1, $2, $3, $4::bigint, $5, $6, $7::uuid, NULL, NULL, 'test')",
            key, type, wallet, to ? std::optional<std::string>(std::to_string(*to)) : std::nullopt, amount, currency,
            reverses);
        m.transaction_id = r[0][0].as<std::string>();
        m.sequence = r[0][1].as<std::int64_t>();
        if (!r[0][2].is_null()) m.to_sequence = r[0][2].as<std::int64_t>();
        if (!r[0][3].is_null()) m.to_wallet_id = r[0][3].as<std::int64_t>();
    });
    m.type = type;
    m.wallet_id = wallet;
    m.amount = amount;
    m.currency = currency;
    m.reverses_transaction_id = reverses;
    m.reference = key;
    m.origin = "test";
    m.accepted_at = ids::iso8601_now();
    return m;
}

void ledger_fixture::fund(std::int64_t wallet, std::int64_t amount, const std::string& currency) {
    auto m = accept("deposit", wallet, std::nullopt, amount, currency);
    ledger::processor p(*ledger_, "test");
    auto r = p.run({{"fund:" + m.transaction_id, m}}, {});
    if (r.outcomes.at(0).kind != ledger::outcome_kind::completed) {
        throw std::runtime_error("funding failed: " + r.outcomes[0].reason);
    }
    p.forget({r.journal});  // an opening balance is not announced, and not left to recovery either
}

amqp::outgoing ledger_fixture::message_for(const ledger::tx_message& m, std::string message_id) {
    amqp::outgoing o;
    o.exchange = amqp::commands_exchange;
    o.routing_key = "ledger.transaction";
    o.body = m.to_json();
    o.props.message_id = message_id.empty() ? ids::uuid_v4() : message_id;
    o.props.correlation_id = "test-" + m.transaction_id.substr(0, 8);
    o.props.type = ledger::message_type;
    o.props.app_id = "tests";
    o.props.timestamp = ids::unix_seconds();
    return o;
}

void ledger_fixture::publish(const std::vector<amqp::outgoing>& msgs) {
    if (!publisher_) publisher_ = std::make_unique<amqp::publisher>(amqp_options(), amqp::txp_topology());
    auto results = publisher_->publish(msgs, std::chrono::seconds(30));
    for (const auto& r : results) {
        if (r.status != amqp::publish_status::confirmed) throw std::runtime_error("test publish failed: " + r.detail);
    }
}

void ledger_fixture::publish_raw(const std::string& body, const std::string& type) {
    amqp::outgoing o;
    o.exchange = amqp::commands_exchange;
    o.routing_key = "ledger.transaction";
    o.body = body;
    o.props.message_id = ids::uuid_v4();
    o.props.type = type;
    publish({o});
}

std::string ledger_fixture::status(const std::string& tx_id) {
    auto l = ledger_->acquire();
    pqxx::read_transaction r(*l);
    auto res = r.exec_params("SELECT status FROM ledger.transactions WHERE id = $1::uuid", tx_id);
    return res.empty() ? "missing" : res[0][0].as<std::string>();
}

std::optional<std::string> ledger_fixture::reason(const std::string& tx_id) {
    auto l = ledger_->acquire();
    pqxx::read_transaction r(*l);
    auto res = r.exec_params("SELECT reason FROM ledger.transactions WHERE id = $1::uuid", tx_id);
    if (res.empty() || res[0][0].is_null()) return std::nullopt;
    return res[0][0].as<std::string>();
}

std::int64_t ledger_fixture::balance(std::int64_t wallet) {
    auto l = ledger_->acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT balance FROM ledger.wallets WHERE id = $1", wallet)[0][0].as<std::int64_t>();
}

std::int64_t ledger_fixture::entry_count(const std::string& tx_id) {
    auto l = ledger_->acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params("SELECT count(*) FROM ledger.entries WHERE transaction_id = $1::uuid", tx_id)[0][0]
        .as<std::int64_t>();
}

std::size_t ledger_fixture::wait_final(const std::vector<std::string>& ids_, std::chrono::seconds deadline) {
    auto until = std::chrono::steady_clock::now() + deadline;
    std::vector<std::string> ids(ids_);
    for (;;) {
        std::size_t queued = 0;
        {
            auto l = ledger_->acquire();
            pqxx::read_transaction r(*l);
            queued = r.exec_params("SELECT count(*) FROM ledger.transactions WHERE id = ANY($1::uuid[]) AND status = 'queued'",
                                   db::array_literal(ids))[0][0]
                         .as<std::size_t>();
        }
        if (queued == 0 || std::chrono::steady_clock::now() > until) return queued;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

std::int64_t ledger_fixture::unannounced() {
    auto l = ledger_->acquire();
    pqxx::read_transaction r(*l);
    return r.exec("SELECT count(*) FROM ledger.unannounced")[0][0].as<std::int64_t>();
}

std::vector<std::string> ledger_fixture::reconcile() {
    std::vector<std::string> notes;
    return ledger::reconcile(*ledger_, notes);
}

void ledger_fixture::purge_queues() {
    amqp::admin a(amqp_options());
    a.declare(amqp::txp_topology());
    for (const std::string q : {"ledger.transactions", "ledger.transactions.retry.1s", "ledger.transactions.retry.10s",
                                "ledger.transactions.retry.60s", "ledger.transactions.error", "notifier.events"}) {
        a.purge(q);
    }
    // The messages just purged were lost on purpose: what earlier test cases left queued or
    // unannounced is not this test's business, and must not be recovered into its queues.
    db::with_transaction(*ledger_, [](pqxx::work& w) {
        w.exec("DELETE FROM ledger.unannounced");
        w.exec("UPDATE ledger.recovery_state SET scanned_to = ledger.uuid_v7_floor(clock_timestamp())");
    });
}

std::unique_ptr<child_process> ledger_fixture::start_worker(const std::string& replica,
                                                            std::map<std::string, std::string> extra) {
    std::map<std::string, std::string> env{
        {"TXP_DATABASE_URL", database_url("ledger")},
        {"TXP_AMQP_URL", amqp_url()},
        {"TXP_HTTP_PORT", "0"},
        {"TXP_REPLICA_ID", replica},
        {"TXP_LOG_LEVEL", "info"},
        {"TXP_LOG_FORMAT", "text"},
    };
    for (auto& [k, v] : extra) env[k] = v;
    return std::make_unique<child_process>(TXP_LEDGER_WORKER_BIN, std::vector<std::string>{}, env,
                                           std::string(TXP_TEST_LOG_DIR) + "/ledger-worker-" + replica + ".log");
}

}  // namespace txp::testing
