// The transactional outbox and its relay (see outbox.hpp).
#include "txp/outbox/outbox.hpp"

#include "txp/amqp/publisher.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <pqxx/notification>

#include <regex>

namespace txp::outbox {

namespace {

bool valid_table(const std::string& t) { return std::regex_match(t, std::regex("[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*")); }
bool valid_channel(const std::string& c) { return std::regex_match(c, std::regex("[a-z_][a-z0-9_]*")); }

class wake_up : public pqxx::notification_receiver {
public:
    wake_up(pqxx::connection_base& c, const std::string& channel) : pqxx::notification_receiver(c, channel) {}
    void operator()(const std::string&, int) override {}
};

}  // namespace

outbox::outbox(std::string table, std::string channel) : table_(std::move(table)), channel_(std::move(channel)) {
    if (!valid_table(table_)) throw std::invalid_argument("outbox table must be schema.table: " + table_);
    if (!valid_channel(channel_)) throw std::invalid_argument("outbox channel must be an identifier: " + channel_);
}

std::string outbox::enqueue(pqxx::work& w, const amqp::outgoing& m) const {
    std::string id = m.props.message_id.empty() ? ids::uuid_v7() : m.props.message_id;
    w.exec_params("INSERT INTO " + table_ +
                      " (message_id, exchange, routing_key, body, type, correlation_id, mandatory)"
                      " VALUES ($1::uuid, $2, $3, $4, $5, $6, $7)",
                  id, m.exchange, m.routing_key, m.body, m.props.type,
                  m.props.correlation_id.empty() ? std::nullopt : std::optional<std::string>(m.props.correlation_id),
                  m.mandatory);
    w.exec("SELECT pg_notify('" + channel_ + "', '')");
    return id;
}

relay::relay(relay_options opts, db::pool& pool) : opts_(std::move(opts)), pool_(pool) {
    if (!valid_table(opts_.table)) throw std::invalid_argument("outbox table must be schema.table: " + opts_.table);
    if (!valid_channel(opts_.channel)) throw std::invalid_argument("outbox channel must be an identifier: " + opts_.channel);
}

relay::~relay() { stop(); }

void relay::start() {
    stop_ = false;
    thread_ = std::thread([this] { run(); });
}

void relay::stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

std::vector<amqp::outgoing> to_messages(const pqxx::result& rows, const std::string& app_id,
                                        std::vector<std::int64_t>& ids) {
    std::vector<amqp::outgoing> msgs;
    msgs.reserve(rows.size());
    ids.clear();
    for (const auto& r : rows) {
        amqp::outgoing o;
        ids.push_back(r[0].as<std::int64_t>());
        o.props.message_id = r[1].as<std::string>();
        o.exchange = r[2].as<std::string>();
        o.routing_key = r[3].as<std::string>();
        o.body = r[4].as<std::string>();
        o.props.type = r[5].as<std::string>();
        if (!r[6].is_null()) o.props.correlation_id = r[6].as<std::string>();
        o.props.timestamp = r[7].as<std::int64_t>();
        o.mandatory = r[8].as<bool>();
        o.props.app_id = app_id;
        msgs.push_back(std::move(o));
    }
    return msgs;
}

std::size_t relay::relay_batch() {
    if (!publisher_) publisher_ = std::make_unique<amqp::publisher>(opts_.amqp, amqp::txp_topology());
    std::size_t done = 0;
    db::with_transaction(pool_, [&](pqxx::work& w) {
        done = 0;
        auto rows = w.exec_params(std::string("SELECT ") + pending_columns + " FROM " + opts_.table +
                                      " WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                                  static_cast<std::int64_t>(opts_.batch_size));
        if (rows.empty()) return;
        std::vector<std::int64_t> row_ids;
        auto msgs = to_messages(rows, opts_.app_id, row_ids);
        // Rows stay locked while they are published: another relay skips them.
        auto results = publisher_->publish(msgs, opts_.publish_timeout);
        std::vector<std::int64_t> sent;
        for (std::size_t i = 0; i < results.size(); ++i) {
            if (results[i].status == amqp::publish_status::confirmed) {
                sent.push_back(row_ids[i]);
            } else {
                log::error("outbox message not confirmed; it stays pending",
                           {{"message_id", msgs[i].props.message_id}, {"routing_key", msgs[i].routing_key},
                            {"status", amqp::to_string(results[i].status)}, {"detail", results[i].detail}});
            }
        }
        if (!sent.empty()) {
            w.exec_params("UPDATE " + opts_.table + " SET sent_at = now() WHERE id = ANY($1::bigint[])", db::array_literal(sent));
        }
        done = sent.size();
    });
    published_ += done;
    if (done) {
        metrics::global()
            .get_counter("txp_outbox_published_total", "Outbox messages published and confirmed", {{"table", opts_.table}})
            .inc(done);
    }
    return done;
}

void relay::run() {
    std::unique_ptr<pqxx::connection> listen;
    std::unique_ptr<wake_up> receiver;
    auto last_prune = std::chrono::steady_clock::now() - std::chrono::hours(1);
    while (!stop_) {
        try {
            if (!listen) {
                listen = std::make_unique<pqxx::connection>(opts_.database_url);
                receiver = std::make_unique<wake_up>(*listen, opts_.channel);
            }
            std::size_t n;
            do {
                n = relay_batch();
            } while (n == opts_.batch_size && !stop_);
            if (std::chrono::steady_clock::now() - last_prune > std::chrono::minutes(10)) {
                last_prune = std::chrono::steady_clock::now();
                db::with_transaction(pool_, [&](pqxx::work& w) {
                    w.exec_params("DELETE FROM " + opts_.table + " WHERE sent_at < now() - $1::interval",
                                  std::to_string(opts_.keep_sent.count()) + " hours");
                });
            }
            // Sleep until a NOTIFY or the poll interval; wake often enough to notice stop().
            auto until = std::chrono::steady_clock::now() + opts_.poll_interval;
            while (!stop_ && std::chrono::steady_clock::now() < until) {
                if (listen->await_notification(0, 200'000) > 0) break;
            }
        } catch (const std::exception& e) {
            log::warn("outbox relay failed; retrying", {{"table", opts_.table}, {"error", e.what()}});
            receiver.reset();
            listen.reset();
            for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    if (publisher_) publisher_->close();
}

}  // namespace txp::outbox
