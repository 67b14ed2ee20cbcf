// See notifier_fixture.hpp.
#include "notifier_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/db/migrations.hpp"
#include "txp/testing/env.hpp"

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

namespace txp::testing {

webhook_receiver::webhook_receiver(std::function<std::optional<unsigned>(std::size_t)> reply) : reply_(std::move(reply)) {
    http::server_options o;
    o.threads = 2;
    server_ = std::make_unique<http::server>(o, [this](http::request&& req, std::shared_ptr<http::response_writer> w) {
        received r;
        r.body = req.body;
        auto h = [&](const char* n) { return std::string(req.header_value(n).value_or("")); };
        r.signature = h("Txp-Signature");
        r.event_id = h("Txp-Event-Id");
        r.delivery_id = h("Txp-Delivery-Id");
        r.attempt = h("Txp-Attempt");
        std::optional<unsigned> status = 200;
        {
            std::lock_guard lk(mu_);
            if (reply_) status = reply_(got_.size());
            got_.push_back(std::move(r));
            if (!status) {
                unanswered_.push_back(w);  // never answered: the notifier's timeout ends it
                return;
            }
        }
        http::response res;
        res.status = *status;
        res.body = R"({"ok":true})";
        w->send(std::move(res));
    });
    server_->start();
}

webhook_receiver::~webhook_receiver() {
    {
        // Their clients timed out long ago: answering is a no-op, dropping would log an error.
        std::lock_guard lk(mu_);
        for (auto& w : unanswered_) w->send(http::response{.status = 503});
        unanswered_.clear();
    }
    server_->stop(std::chrono::milliseconds(200));
}

std::string webhook_receiver::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
}

std::vector<webhook_receiver::received> webhook_receiver::requests() const {
    std::lock_guard lk(mu_);
    return got_;
}

std::size_t webhook_receiver::count() const {
    std::lock_guard lk(mu_);
    return got_.size();
}

notifier_fixture::notifier_fixture() : key_(notifier::secret_key::from_base64(test_webhook_key)) {
    db::pool_options no;
    no.url = database_url("notify");
    no.size = 3;
    notify_ = std::make_unique<db::pool>(no);
    static std::once_flag migrated;
    std::call_once(migrated, [&] {
        auto l = notify_->acquire();
        db::migrate(*l, "notify", db::load_migrations(db::default_migrations_dir(), "notify"));
    });
    db::pool_options go;
    go.url = database_url("gateway");
    go.size = 2;
    gateway_ = std::make_unique<db::pool>(go);
    // Ledger transactions earlier tests left without a feed entry are not this test's
    // business: the feed's recovery from the ledger starts now.
    db::with_transaction(*notify_, [](pqxx::work& w) {
        w.exec("UPDATE notify.feed_recovery_state SET scanned_to = encode(substring(int8send(floor(extract(epoch FROM "
               "clock_timestamp()) * 1000)::bigint) FROM 3) || '\\x00000000000000000000'::bytea, 'hex')::uuid");
    });
}

notifier_fixture::~notifier_fixture() {
    try {
        for (const auto& [user, id] : subscriptions_) {
            db::with_transaction(*gateway_, [&](pqxx::work& w) { notifier::delete_subscription(w, user, id); });
        }
    } catch (...) {
    }
}

amqp::connection_options notifier_fixture::amqp_options() const {
    amqp::connection_options o;
    o.set_endpoints(amqp_url());
    o.connection_name = "notifier-tests";
    return o;
}

std::int64_t notifier_fixture::fresh_user() {
    static std::mt19937_64 rng{std::random_device{}()};
    static std::mutex mu;
    std::lock_guard lk(mu);
    return 1'000'000'000 + static_cast<std::int64_t>(rng() % 1'000'000'000'000ULL);
}

std::pair<std::string, std::string> notifier_fixture::subscribe(std::int64_t user, const std::string& url,
                                                                std::vector<std::string> types) {
    notifier::create_outcome out;
    auto policy = notifier::webhook_url_policy::parse("127.0.0.0/8");
    db::with_transaction(*gateway_, [&](pqxx::work& w) { out = notifier::create_subscription(w, key_, policy, user, url, types); });
    if (!out.ok) throw std::runtime_error("subscription refused: " + out.reason + ": " + out.detail);
    subscriptions_.emplace_back(user, out.created.id);
    return {out.created.id, out.secret};
}

amqp::outgoing notifier_fixture::tx_event(const tx_event_spec& s) {
    std::string tx = s.transaction_id.empty() ? ids::uuid_v4() : s.transaction_id;
    json::writer w;
    w.start_object();
    w.kv("event_id", tx + ":" + s.status).kv("transaction_id", tx).kv("status", s.status);
    w.kv_opt("reason", s.reason);
    w.kv("type", s.type).kv("wallet_id", s.wallet);
    w.kv_opt("to_wallet_id", s.to_wallet);
    w.kv("owner_id", s.owner);
    w.kv_opt("to_owner_id", s.to_owner);
    w.kv("amount", s.amount).kv("currency", "USD");
    w.kv_opt("balance_after", s.balance_after);
    w.kv_opt("to_balance_after", s.to_balance_after);
    w.key("reference").null();
    w.kv("occurred_at", ids::iso8601_now());
    w.end_object();
    amqp::outgoing o;
    o.exchange = amqp::events_exchange;
    o.routing_key = "tx." + s.status;
    o.body = w.str();
    o.props.message_id = tx + ":" + s.status;
    o.props.correlation_id = "test-" + tx.substr(0, 8);
    o.props.type = "tx.event.v1";
    o.props.app_id = "tests";
    o.props.timestamp = ids::unix_seconds();
    return o;
}

amqp::outgoing notifier_fixture::tx_events(const std::vector<amqp::outgoing>& singles) {
    std::string body = R"({"events":[)";
    for (std::size_t i = 0; i < singles.size(); ++i) body += (i ? "," : "") + singles[i].body;
    body += "]}";
    amqp::outgoing o = singles.front();
    o.body = body;
    o.props.message_id = ids::uuid_v4();
    o.props.type = "tx.events.v1";
    return o;
}

void notifier_fixture::publish(const std::vector<amqp::outgoing>& msgs) {
    if (!publisher_) publisher_ = std::make_unique<amqp::publisher>(amqp_options(), amqp::txp_topology());
    auto results = publisher_->publish(msgs, std::chrono::seconds(30));
    for (const auto& r : results) {
        if (r.status != amqp::publish_status::confirmed) throw std::runtime_error("test publish failed: " + r.detail);
    }
}

void notifier_fixture::purge_queues() {
    amqp::admin a(amqp_options());
    a.declare(amqp::txp_topology());
    for (const std::string q : {"notifier.events", "notifier.events.retry.1s", "notifier.events.retry.10s",
                                "notifier.events.retry.60s", "notifier.events.error"}) {
        a.purge(q);
    }
}

std::unique_ptr<child_process> notifier_fixture::start_notifier(const std::string& name,
                                                                std::map<std::string, std::string> extra) {
    std::map<std::string, std::string> env{
        {"TXP_DATABASE_URL", database_url("notify")},
        {"TXP_AMQP_URL", amqp_url()},
        {"TXP_HTTP_PORT", "0"},
        {"TXP_REPLICA_ID", name},
        {"TXP_LOG_LEVEL", "info"},
        {"TXP_LOG_FORMAT", "text"},
        {"TXP_WEBHOOK_SECRET_KEY", test_webhook_key},
        {"TXP_WEBHOOK_ALLOW", "127.0.0.0/8"},
        {"TXP_WEBHOOK_BACKOFF", "100ms,200ms,400ms"},
        {"TXP_WEBHOOK_TIMEOUT", "1s"},
        {"TXP_WEBHOOK_POLL", "50ms"},
    };
    for (auto& [k, v] : extra) env[k] = v;
    return std::make_unique<child_process>(TXP_NOTIFIER_BIN, std::vector<std::string>{}, env,
                                           std::string(TXP_NOTIFIER_TEST_LOG_DIR) + "/notifier-" + name + ".log");
}

std::int64_t notifier_fixture::count(const std::string& sql, const std::string& param) {
    auto l = notify_->acquire();
    pqxx::read_transaction r(*l);
    return r.exec_params(sql, param)[0][0].as<std::int64_t>();
}

std::optional<std::pair<std::string, int>> notifier_fixture::delivery(const std::string& event_id,
                                                                      const std::string& subscription_id) {
    auto l = notify_->acquire();
    pqxx::read_transaction r(*l);
    auto res = r.exec_params("SELECT status, attempts FROM notify.deliveries WHERE event_id = $1 AND subscription_id = $2::uuid",
                             event_id, subscription_id);
    if (res.empty()) return std::nullopt;
    return std::make_pair(res[0][0].as<std::string>(), res[0][1].as<int>());
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
    auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}


}  // namespace txp::testing
