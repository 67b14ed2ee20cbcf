// The ledger-worker's consume loop: batches from ledger.transactions, applied through the
// processor, outcomes announced on txp.events with confirms, failures routed to the retry
// tiers or the error queue, and only then acked.
#pragma once

#include "ledger.hpp"

#include "txp/amqp/amqp.hpp"

#include <atomic>
#include <chrono>
#include <functional>

namespace txp::ledger {

struct worker_options {
    amqp::connection_options amqp;
    std::string queue = "ledger.transactions";
    std::size_t batch_size = 100;
    std::uint16_t prefetch = 300;
    std::chrono::milliseconds linger{5};
    // How long a message whose predecessor is not applied yet is held before it goes
    // through the shortest retry tier.
    std::chrono::milliseconds hold_early{300};
    std::chrono::milliseconds publish_timeout{15000};
};

class worker {
public:
    worker(worker_options opts, db::pool& pool, std::string replica);
    ~worker();

    // Consumes until stop() returns true; then stops consuming, finishes the batch in hand
    // and acks it.
    void run(const std::function<bool()>& stop);

    std::uint64_t processed() const { return processed_.load(); }

private:
    struct held_delivery {
        amqp::delivery d;
        std::chrono::steady_clock::time_point first_seen;
    };
    void handle(std::vector<held_delivery> batch);

    worker_options opts_;
    std::string replica_;
    processor processor_;
    amqp::consumer consumer_;
    amqp::publisher publisher_;
    std::vector<held_delivery> held_;
    std::atomic<std::uint64_t> processed_{0};
};

}  // namespace txp::ledger
