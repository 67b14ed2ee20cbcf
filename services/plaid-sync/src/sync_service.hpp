// plaid-sync's moving parts: consumers of plaid.sync (one thread each), the scheduler that
// queues a sync of every active item once per interval across all replicas, and the outbox
// relay that publishes what the syncs wrote.
#pragma once

#include "plaid_sync.hpp"

#include "txp/amqp/amqp.hpp"

#include <atomic>
#include <chrono>
#include <functional>

namespace txp::plaid_sync {

struct service_options {
    amqp::connection_options amqp;
    std::string database_url;  // the outbox relay's own connection
    int consumers = 2;
    std::chrono::milliseconds sync_interval{15 * 60 * 1000};
    // A sync wanted this long ago and never attempted is queued again (recover_lost_syncs).
    std::chrono::milliseconds recovery_after{60 * 1000};
    sync_options sync;
    std::string outbox_table = "plaid.outbox";
    std::string outbox_channel = "plaid_outbox";
    std::string replica;
};

class service {
public:
    service(service_options opts, db::pool& pool, plaid::client& client, const plaid::token_cipher& cipher);

    // Runs until stop() returns true; then stops consuming, finishes the jobs in hand and
    // returns with the relay drained of what they wrote.
    void run(const std::function<bool()>& stop);

    std::uint64_t jobs_done() const { return jobs_.load(); }

private:
    void consume(const std::function<bool()>& stop, int index);
    void schedule(const std::function<bool()>& stop);

    service_options opts_;
    db::pool& pool_;
    plaid::client& client_;
    const plaid::token_cipher& cipher_;
    outbox::outbox outbox_;
    std::atomic<std::uint64_t> jobs_{0};
};

// One scheduler step: when no replica has done it within `interval`, queues a sync job for
// every active item (through the outbox) and returns how many; otherwise 0.
std::size_t schedule_syncs(db::pool& pool, const outbox::outbox& box, std::chrono::milliseconds interval);

// One recovery step (one replica at a time): queues again, with reason "recovery", the sync
// of every item that wanted one more than `after` ago and has not attempted one since (its
// job's message was lost); logs each and returns how many.
std::size_t recover_lost_syncs(db::pool& pool, const outbox::outbox& box, std::chrono::milliseconds after);

}  // namespace txp::plaid_sync
