// The ledger-worker's consume loop: batches from ledger.transactions, applied through the
// processor, outcomes announced on txp.events with confirms, failures routed to the retry
// tiers or the error queue, and only then acked.
#pragma once

#include "ledger.hpp"

#include "txp/amqp/amqp.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace txp::ledger {

struct worker_options {
    amqp::connection_options amqp;
    std::string queue = "ledger.transactions";
    std::size_t batch_size = 100;
    std::uint16_t prefetch = 300;
    std::chrono::milliseconds linger{5};
    // How long a message whose predecessor is not applied yet is held before it goes
    // through the shortest retry tier.
    std::chrono::milliseconds hold_early{1000};
    // Batches do not wait for a wallet another replica's batch holds: its messages are held
    // and retried. Once one has been held this long, the next batch waits for the locks (in
    // id order, as before), so that a wallet other replicas keep busy is not starved.
    std::chrono::milliseconds busy_patience{200};
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
        std::optional<std::chrono::steady_clock::time_point> busy_since;  // first found busy
    };
    // One applied batch on its way out: its messages are published (with confirms) on the
    // publisher thread while the consumer thread applies the next batch; the deliveries
    // are acked back on the consumer thread (rabbitmq-c connections are single-threaded).
    struct outbound {
        std::vector<amqp::delivery> deliveries;
        std::vector<amqp::outgoing> msgs;
        std::vector<std::vector<std::size_t>> msg_deliveries;  // msgs[k] belongs to these deliveries
        std::vector<bool> ok;                   // filled by the publisher thread
        bool all_confirmed = false;             // every message confirmed (publisher thread)
        std::vector<std::int64_t> journal;      // ledger.unannounced rows of these announcements
        std::int64_t apply_us = 0;
        std::int64_t publish_us = 0;
    };
    void handle(std::vector<held_delivery> batch, bool wait_for_wallets);
    void publisher_loop();
    void settle(bool wait_all);
    void forget_announced();

    worker_options opts_;
    std::string replica_;
    processor processor_;
    amqp::consumer consumer_;
    amqp::publisher publisher_;
    std::vector<held_delivery> held_;
    // ledger.unannounced rows whose announcements were confirmed: deleted with the next
    // batch's DB transaction, or on their own when idle (consumer thread only).
    std::vector<std::int64_t> announced_;
    std::atomic<std::uint64_t> processed_{0};

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<outbound> to_publish_;
    std::deque<outbound> published_;
    std::size_t in_flight_ = 0;
    bool stopping_ = false;
    std::thread publisher_thread_;
};

}  // namespace txp::ledger
