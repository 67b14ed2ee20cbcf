// A transactional outbox: a message is written as a row in the same DB transaction as the
// change it announces, and a relay publishes pending rows with publisher confirms, then
// marks them sent (or deletes them). A crash between publish and mark publishes again (at least once);
// consumers deduplicate by message id. The table lives in the owning service's schema:
//   id bigserial, message_id uuid, exchange, routing_key, body, type, correlation_id,
//   created_at, sent_at (NULL while pending), mandatory (outgoing::mandatory)
// and a NOTIFY on `channel` at commit wakes the relay at once.
#pragma once

#include "txp/amqp/message.hpp"
#include "txp/db/db.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace txp::outbox {

class outbox {
public:
    // table: "schema.table" (identifiers of [a-z0-9_]); channel: a NOTIFY channel name.
    // Throws std::invalid_argument for anything else (the names go into SQL text).
    outbox(std::string table, std::string channel);

    // Writes the message in the caller's transaction. An empty props.message_id gets a UUID.
    // Returns the message id.
    std::string enqueue(pqxx::work& w, const amqp::outgoing& m) const;

    const std::string& table() const { return table_; }
    const std::string& channel() const { return channel_; }

private:
    std::string table_;
    std::string channel_;
};

struct relay_options {
    std::string table;
    std::string channel;
    std::string database_url;  // the relay's own connection: LISTEN and the batches
    amqp::connection_options amqp;
    std::string app_id;  // AMQP app_id of what is published
    std::size_t batch_size = 500;
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds publish_timeout{5000};
    // How long published rows are kept (for an operator to look at) before they are deleted.
    // Zero deletes them in the transaction that publishes them: no second write per row, and
    // a busy outbox stays small instead of growing by an hour of traffic.
    std::chrono::seconds keep_sent{std::chrono::hours(24)};
    // Relay threads, each with its own database connection and broker connection. A batch
    // stays locked while the broker confirms it, which for persistent messages can take up
    // to the broker's sync interval (about 200 ms under load); with more than one thread the
    // next batch is published meanwhile instead of waiting behind it.
    std::size_t threads = 1;
};

// Publishes pending rows in threads of its own (relay_options::threads), woken by NOTIFY on
// the channel and polling as a fallback. Safe with any number of relays (replicas) on the same table: batches are
// claimed with FOR UPDATE SKIP LOCKED and stay locked while they are published. A crash
// between publish and the commit that marks rows sent publishes them again (at least once).
// Rows the broker does not confirm stay pending, and the relay waits a poll interval before
// trying again instead of spinning on a broker that is down. Database and broker failures
// are retried with backoff.
// Metrics (label table): txp_outbox_published_total, txp_outbox_unconfirmed_total,
// txp_outbox_batch_seconds.
class relay {
public:
    explicit relay(relay_options opts);
    ~relay();  // stops
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    void start();
    // Stops waiting, relays what is pending once more in the relay's thread (a last flush,
    // skipped when the broker was failing: it would only delay the exit), and joins.
    void stop();

    std::uint64_t published() const { return published_.load(); }

private:
    void run(std::size_t index);

    relay_options opts_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> published_{0};
    std::vector<std::thread> threads_;
};

}  // namespace txp::outbox
