// A transactional outbox: a message is written as a row in the same DB transaction as the
// change it announces, and a relay publishes pending rows with publisher confirms, then
// marks them sent. A crash between publish and mark publishes again (at least once);
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
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace txp::amqp {
class publisher;
}

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
    std::string database_url;  // the LISTEN connection (the batches use the pool)
    amqp::connection_options amqp;
    std::string app_id;  // AMQP app_id of what is published
    std::size_t batch_size = 500;
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds publish_timeout{15000};
    std::chrono::hours keep_sent{24};  // sent rows older than this are deleted
};

// Publishes pending rows. Safe with any number of relays (replicas) on the same table:
// batches are claimed with FOR UPDATE SKIP LOCKED.
// The SELECT list every relay reads pending rows with, and the conversion of those rows
// into messages (ids[i] is the outbox row of messages[i]).
inline constexpr const char* pending_columns =
    "id, message_id::text, exchange, routing_key, body, type, correlation_id, extract(epoch FROM created_at)::bigint, "
    "mandatory";
std::vector<amqp::outgoing> to_messages(const pqxx::result& rows, const std::string& app_id,
                                        std::vector<std::int64_t>& ids);

class relay {
public:
    relay(relay_options opts, db::pool& pool);
    ~relay();  // stops
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    void start();  // a thread of its own
    void stop();

    // One batch in the calling thread: returns how many rows were published and marked.
    std::size_t relay_batch();

    std::uint64_t published() const { return published_.load(); }

private:
    void run();

    relay_options opts_;
    db::pool& pool_;
    std::unique_ptr<amqp::publisher> publisher_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> published_{0};
    std::thread thread_;
};

}  // namespace txp::outbox
