// See outbox_relay.hpp. A crash between publish and the commit that marks rows sent means
// they are published again; the ledger's inbox absorbs the duplicate.
#include "outbox_relay.hpp"

#include "txp/outbox/outbox.hpp"

#include "txp/amqp/publisher.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/db/db.hpp"

#include <pqxx/pqxx>

#include <memory>
#include <vector>

namespace txp::gateway {

namespace {

class wake_up final : public pqxx::notification_receiver {
public:
    explicit wake_up(pqxx::connection_base& c) : pqxx::notification_receiver(c, "txp_outbox") {}
    void operator()(const std::string&, int) override {}
};

struct relay_metrics {
    metrics::counter& published = metrics::global().get_counter(
        "txp_gateway_outbox_published_total", "Outbox messages confirmed by the broker and marked sent");
    metrics::counter& unconfirmed = metrics::global().get_counter(
        "txp_gateway_outbox_unconfirmed_total", "Outbox publishes not confirmed (left for the next round)");
    metrics::histogram& batch = metrics::global().get_histogram(
        "txp_gateway_outbox_batch_seconds", "Time to publish and mark one outbox batch", {});
};

relay_metrics& m() {
    static relay_metrics r;
    return r;
}

}  // namespace

outbox_relay::outbox_relay(relay_options opts) : opts_(std::move(opts)) {}

outbox_relay::~outbox_relay() { stop(); }

void outbox_relay::start() {
    thread_ = std::thread([this] { run(); });
}

void outbox_relay::stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
}

void outbox_relay::run() {
    log::scope tag("", "outbox-relay");
    amqp::publisher publisher(opts_.amqp, amqp::txp_topology());
    std::unique_ptr<pqxx::connection> conn;
    std::unique_ptr<wake_up> listener;
    auto last_cleanup = std::chrono::steady_clock::now() - std::chrono::minutes(10);
    auto backoff = std::chrono::milliseconds(100);
    bool broker_failing = false;  // the last round could not publish

    // One batch: lock pending rows, publish, mark the confirmed ones, commit. Returns rows taken.
    auto relay_batch = [&]() -> std::size_t {
        auto t0 = std::chrono::steady_clock::now();
        pqxx::work w(*conn);
        auto rows = w.exec_params(std::string("SELECT ") + outbox::pending_columns +
                                      " FROM gateway.outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                                  static_cast<std::int64_t>(opts_.batch_size));
        if (rows.empty()) return 0;
        std::vector<std::int64_t> row_ids;
        auto msgs = outbox::to_messages(rows, "api-gateway", row_ids);
        auto results = publisher.publish(msgs, opts_.publish_timeout);
        broker_failing = false;
        std::vector<std::int64_t> sent;
        std::size_t failed = 0;
        std::string first_problem;
        for (std::size_t i = 0; i < results.size(); ++i) {
            if (results[i].status == amqp::publish_status::confirmed) {
                sent.push_back(row_ids[i]);
            } else {
                if (failed++ == 0) first_problem = std::string(amqp::to_string(results[i].status)) + ": " + results[i].detail;
            }
        }
        if (!sent.empty()) {
            w.exec_params("UPDATE gateway.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", db::array_literal(sent));
        }
        w.commit();
        published_ += sent.size();
        m().published.inc(sent.size());
        m().batch.observe_us(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
        if (failed > 0) {
            m().unconfirmed.inc(failed);
            broker_failing = true;
            log::warn("outbox messages not confirmed; they stay pending for the next round",
                      {{"unconfirmed", failed}, {"confirmed", sent.size()}, {"first", first_problem}});
            // Do not spin on a broker that is down: the caller waits before the next round.
            return 0;
        }
        return rows.size();
    };

    auto drain = [&] {
        while (relay_batch() == opts_.batch_size) {
        }
    };

    while (true) {
        bool last_round = stopping_.load();
        try {
            if (!conn) {
                conn = std::make_unique<pqxx::connection>(opts_.database_url);
                listener = std::make_unique<wake_up>(*conn);
                log::info("outbox relay connected", {{"database", db::redact_url(opts_.database_url)}});
                backoff = std::chrono::milliseconds(100);
            }
            // The last flush at stop is skipped when the broker was failing: it would only
            // delay the exit by the publish timeout; the rows wait for the next relay.
            if (!(last_round && broker_failing)) drain();
            if (last_round) break;
            if (std::chrono::steady_clock::now() - last_cleanup > std::chrono::minutes(1)) {
                last_cleanup = std::chrono::steady_clock::now();
                pqxx::work w(*conn);
                auto gone = w.exec_params("DELETE FROM gateway.outbox WHERE sent_at < now() - $1 * interval '1 second'",
                                          static_cast<std::int64_t>(std::chrono::seconds(opts_.keep_sent).count()));
                w.commit();
                if (gone.affected_rows() > 0) log::debug("outbox cleaned", {{"deleted", gone.affected_rows()}});
            }
            // Sleep until NOTIFY, the poll interval, or (checked often) a stop request.
            auto until = std::chrono::steady_clock::now() + opts_.poll_interval;
            while (!stopping_ && std::chrono::steady_clock::now() < until) {
                if (conn->await_notification(0, 100000) > 0) break;
            }
        } catch (const std::exception& e) {
            log::warn("outbox relay round failed; retrying", {{"error", std::string_view(e.what()).substr(0, 300)}});
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
    log::info("outbox relay stopped", {{"published", published_.load()}});
}

}  // namespace txp::gateway
