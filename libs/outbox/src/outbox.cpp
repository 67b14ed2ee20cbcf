// The transactional outbox and its relay (see outbox.hpp).
#include "txp/outbox/outbox.hpp"

#include "txp/amqp/publisher.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <pqxx/notification>

#include <algorithm>
#include <memory>
#include <regex>
#include <string_view>

namespace txp::outbox {

namespace {

bool valid_table(const std::string& t) { return std::regex_match(t, std::regex("[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*")); }
bool valid_channel(const std::string& c) { return std::regex_match(c, std::regex("[a-z_][a-z0-9_]*")); }

class wake_up final : public pqxx::notification_receiver {
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

namespace {

// The SELECT list the relay reads pending rows with, and the conversion of those rows into
// messages (ids[i] is the outbox row of messages[i]).
constexpr const char* pending_columns =
    "id, message_id::text, exchange, routing_key, body, type, correlation_id, extract(epoch FROM created_at)::bigint, "
    "mandatory";

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

struct relay_metrics {
    metrics::counter& published;
    metrics::counter& unconfirmed;
    metrics::histogram& batch;

    explicit relay_metrics(const std::string& table)
        : published(metrics::global().get_counter("txp_outbox_published_total",
                                                  "Outbox messages confirmed by the broker (and marked sent or deleted)", {{"table", table}})),
          unconfirmed(metrics::global().get_counter("txp_outbox_unconfirmed_total",
                                                    "Outbox publishes not confirmed (left pending for the next round)",
                                                    {{"table", table}})),
          batch(metrics::global().get_histogram("txp_outbox_batch_seconds", "Time to publish and mark one outbox batch",
                                                {{"table", table}})) {}
};

}  // namespace

relay::relay(relay_options opts) : opts_(std::move(opts)) {
    if (!valid_table(opts_.table)) throw std::invalid_argument("outbox table must be schema.table: " + opts_.table);
    if (!valid_channel(opts_.channel)) throw std::invalid_argument("outbox channel must be an identifier: " + opts_.channel);
}

relay::~relay() { stop(); }

void relay::start() {
    stopping_ = false;
    for (std::size_t i = 0; i < std::max<std::size_t>(1, opts_.threads); ++i) {
        threads_.emplace_back([this, i] { run(i); });
    }
}

void relay::stop() {
    stopping_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
}

void relay::run(std::size_t index) {
    log::scope tag("", "outbox-relay");
    relay_metrics m(opts_.table);
    auto amqp_opts = opts_.amqp;
    if (index > 0) amqp_opts.connection_name += " " + std::to_string(index + 1);
    amqp::publisher publisher(amqp_opts, amqp::txp_topology());
    std::unique_ptr<pqxx::connection> conn;
    std::unique_ptr<wake_up> listener;
    auto last_cleanup = std::chrono::steady_clock::now() - std::chrono::hours(1);
    auto backoff = std::chrono::milliseconds(100);
    bool broker_failing = false;  // the last round could not publish everything
    const bool keep_sent = opts_.keep_sent.count() > 0;

    // One batch: lock pending rows (another relay skips them while they are published),
    // publish, mark or delete the confirmed ones, commit. Returns the rows taken, or 0 when
    // some were not confirmed (the caller then waits before the next round).
    auto relay_batch = [&]() -> std::size_t {
        auto t0 = std::chrono::steady_clock::now();
        pqxx::work w(*conn);
        auto rows = w.exec_params(std::string("SELECT ") + pending_columns + " FROM " + opts_.table +
                                      " WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                                  static_cast<std::int64_t>(opts_.batch_size));
        if (rows.empty()) return 0;
        std::vector<std::int64_t> row_ids;
        auto msgs = to_messages(rows, opts_.app_id, row_ids);
        auto results = publisher.publish(msgs, opts_.publish_timeout);
        broker_failing = false;
        std::vector<std::int64_t> sent;
        std::size_t failed = 0;
        std::string first_problem;
        for (std::size_t i = 0; i < results.size(); ++i) {
            if (results[i].status == amqp::publish_status::confirmed) {
                sent.push_back(row_ids[i]);
            } else if (failed++ == 0) {
                first_problem = msgs[i].routing_key + " " + msgs[i].props.message_id + ": " +
                                amqp::to_string(results[i].status) + " " + results[i].detail;
            }
        }
        if (!sent.empty()) {
            w.exec_params(keep_sent ? "UPDATE " + opts_.table + " SET sent_at = now() WHERE id = ANY($1::bigint[])"
                                    : "DELETE FROM " + opts_.table + " WHERE id = ANY($1::bigint[])",
                          db::array_literal(sent));
        }
        w.commit();
        published_ += sent.size();
        m.published.inc(sent.size());
        m.batch.observe_us(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
        if (failed > 0) {
            m.unconfirmed.inc(failed);
            broker_failing = true;
            log::warn("outbox messages not confirmed; they stay pending for the next round",
                      {{"table", opts_.table}, {"unconfirmed", failed}, {"confirmed", sent.size()}, {"first", first_problem}});
            return 0;
        }
        return rows.size();
    };

    while (true) {
        bool last_round = stopping_.load();
        try {
            if (!conn) {
                conn = std::make_unique<pqxx::connection>(db::connection_url(
                    opts_.database_url, (opts_.app_id.empty() ? std::string("txp") : opts_.app_id) + "-outbox"));
                {
                    // Every query of the relay is meant to go through an index: the pending
                    // rows by id, the published ones by id or sent_at. An outbox is a queue
                    // table, mostly dead rows between vacuums and often empty when ANALYZE
                    // looks; the planner then chose a bitmap scan of the whole table (3,000-4,000
                    // pages, 25-35 ms a batch, measured under load) instead of the ordered
                    // index scan that stops after the batch.
                    pqxx::nontransaction n(*conn);
                    n.exec("SET enable_seqscan = off; SET enable_bitmapscan = off");
                }
                listener = std::make_unique<wake_up>(*conn, opts_.channel);
                log::info("outbox relay connected", {{"table", opts_.table}, {"thread", index + 1}, {"database", db::redact_url(opts_.database_url)}});
                backoff = std::chrono::milliseconds(100);
            }
            if (!(last_round && broker_failing)) {
                while (relay_batch() == opts_.batch_size) {
                }
            }
            if (last_round) break;
            // Also with keep_sent zero: rows kept under an earlier setting go.
            if (std::chrono::steady_clock::now() - last_cleanup > std::chrono::minutes(1)) {
                last_cleanup = std::chrono::steady_clock::now();
                pqxx::work w(*conn);
                auto gone = w.exec_params("DELETE FROM " + opts_.table + " WHERE sent_at < now() - $1 * interval '1 second'",
                                          static_cast<std::int64_t>(opts_.keep_sent.count()));
                w.commit();
                if (gone.affected_rows() > 0) log::debug("outbox cleaned", {{"table", opts_.table}, {"deleted", gone.affected_rows()}});
            }
            // Sleep until a NOTIFY, the poll interval, or (checked often) a stop request.
            auto until = std::chrono::steady_clock::now() + opts_.poll_interval;
            while (!stopping_ && std::chrono::steady_clock::now() < until) {
                if (conn->await_notification(0, 100'000) > 0) break;
                publisher.keep_alive();
            }
        } catch (const std::exception& e) {
            log::warn("outbox relay round failed; retrying",
                      {{"table", opts_.table}, {"error", std::string_view(e.what()).substr(0, 300)}});
            listener.reset();
            conn.reset();
            if (last_round) break;
            auto until = std::chrono::steady_clock::now() + backoff;
            while (!stopping_ && std::chrono::steady_clock::now() < until) {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        }
    }
    publisher.close();
    log::info("outbox relay stopped", {{"table", opts_.table}, {"published", published_.load()}});
}

}  // namespace txp::outbox
