// The notifier's consume loop: batches from notifier.events recorded in one DB transaction
// each, then notify.created announced on txp.events with confirms, failures routed to the
// retry tiers or the error queue, and only then acked. Its own notify.* events (the queue
// is bound to notify.* too) are acked and ignored.
#pragma once

#include "txp/amqp/amqp.hpp"
#include "txp/db/db.hpp"

#include <atomic>
#include <chrono>
#include <functional>

namespace txp::notifier {

struct consumer_options {
    amqp::connection_options amqp;
    std::string queue = "notifier.events";
    std::size_t batch_size = 500;  // messages per batch
    // Feed entries per DB transaction, at most (a message's are never split): a message can
    // hold up to 500 outcomes (tx.events.v1), so a backlog of them would otherwise make
    // transactions of tens of thousands of rows.
    std::size_t max_legs_per_transaction = 1000;
    std::uint16_t prefetch = 1000;
    std::chrono::milliseconds linger{5};
    std::chrono::milliseconds publish_timeout{15000};
    bool announce = true;  // publish notify.created for each recorded entry
};

class event_consumer {
public:
    // on_new_deliveries is called after a commit that scheduled deliveries (wakes the dispatcher).
    event_consumer(consumer_options opts, db::pool& pool, std::function<void()> on_new_deliveries);
    ~event_consumer();

    // Consumes until stop() returns true, then cancels, finishes the batch in hand and acks it.
    void run(const std::function<bool()>& stop);

    std::uint64_t recorded() const { return recorded_.load(); }

private:
    void handle(std::vector<amqp::delivery> batch);

    consumer_options opts_;
    db::pool& pool_;
    std::function<void()> on_new_deliveries_;
    amqp::consumer consumer_;
    amqp::publisher publisher_;
    std::atomic<std::uint64_t> recorded_{0};
};

}  // namespace txp::notifier
