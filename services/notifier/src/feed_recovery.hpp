// The feed heals from the ledger: the database is the truth and a message only a hint. A feed
// entry (and the webhook deliveries it schedules) exists because an outcome event reached
// notifier.events; an event the broker lost there (a purged queue, a lost disk) would leave a
// final transaction out of its owner's feed for good. One notifier replica at a time (a
// session advisory lock, db::leader_loop) reads the ledger's transactions accepted since its
// watermark (notify.feed_recovery_state; transaction ids are time-ordered, so that is a range
// of the primary key), and records the outcome of every transaction that has been final for
// longer than the threshold without a feed entry, as the event would have been recorded
// (same event id, so a late event is deduplicated as usual), scheduling its webhooks and
// announcing it to SSE streams.
#pragma once

#include "txp/amqp/amqp.hpp"
#include "txp/db/db.hpp"
#include "txp/db/leader.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace txp::notifier {

struct feed_recovery_options {
    amqp::connection_options amqp;
    std::string database_url;  // the leader lock's connection, which also runs the scans
    std::chrono::milliseconds interval{5000};
    // How long a transaction must have been final without a feed entry before it is
    // recorded from the ledger (well above the time an event takes through the queue).
    std::chrono::milliseconds after{30000};
    std::size_t scan_limit = 5000;
    bool announce = true;  // notify.created for what it records
};

class feed_recovery {
public:
    // on_new_deliveries: called after a commit that scheduled deliveries (wakes the dispatcher).
    feed_recovery(feed_recovery_options opts, db::pool& pool, std::function<void()> on_new_deliveries);
    ~feed_recovery();
    feed_recovery(const feed_recovery&) = delete;
    feed_recovery& operator=(const feed_recovery&) = delete;

    void start();
    void stop();

    // One round now (when this replica leads or can); returns the feed entries recorded, or
    // -1 when another replica leads.
    long run_round();

private:
    std::size_t round(pqxx::connection& c);

    feed_recovery_options opts_;
    db::pool& pool_;
    std::function<void()> on_new_deliveries_;
    amqp::publisher publisher_;
    db::leader_loop loop_;  // last: its thread uses the members above
};

}  // namespace txp::notifier
