// Recovery from the database: the database is the truth and a message only a hint. One
// replica at a time (the holder of a PostgreSQL advisory lock) looks every interval for what a
// lost message left behind and finishes it:
// - outcomes never announced: rows of ledger.unannounced older than the threshold (a worker
//   died between its commit and the broker's confirms) are announced again, with their usual
//   event ids;
// - transactions still queued after the threshold on wallets that do not progress (their
//   messages were purged, or lost with a broker's disk) are applied from the database in each
//   wallet's order, as a batch chaining them would, and announced.
// See deploy/migrations/ledger/0008_recovery.sql for the tables it reads.
#pragma once

#include "ledger.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/db/db.hpp"
#include "txp/db/leader.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace txp::ledger {

struct recovery_options {
    amqp::connection_options amqp;
    // Its own connection, which holds the leader's advisory lock (a session lock: a replica
    // that dies or loses its connection gives up the lead at once) and runs the scans.
    std::string database_url;
    std::chrono::milliseconds interval{5000};
    // How old a transaction still queued, or an announcement not yet confirmed, must be
    // before recovery takes it over (well above a batch's publish timeout and the time a
    // message normally spends in the queues).
    std::chrono::milliseconds after{15000};
    std::chrono::milliseconds publish_timeout{15000};
    std::size_t scan_limit = 10000;  // transactions read per scan query
};

// What one round found and finished.
struct recovery_round {
    bool leader = false;
    std::size_t announced = 0;    // outcomes announced again
    std::size_t applied = 0;      // queued transactions applied from the database
    std::size_t republished = 0;  // queued transactions whose message was published again
    std::size_t scanned = 0;      // transactions read by the scan
};

class recovery {
public:
    recovery(recovery_options opts, db::pool& pool, std::string replica);
    ~recovery();
    recovery(const recovery&) = delete;
    recovery& operator=(const recovery&) = delete;

    // Runs rounds every interval in a thread of its own, until stop().
    void start();
    void stop();

    // One round now, in the caller's thread (when this replica leads, or can take the lead).
    // full: instead of the scan from the watermark, looks at every transaction still queued
    // (a sequential scan of the table: for `ledger-worker recover`, run by an operator, e.g.
    // for transactions accepted with random ids before migration 0008).
    recovery_round run_round(bool full = false);

private:
    void round(pqxx::connection& c, bool full, recovery_round& r);
    std::size_t announce_lost(pqxx::connection& c);
    void recover_queued(pqxx::connection& c, bool full, recovery_round& r);
    std::size_t announce(const std::vector<tx_event>& events);
    std::size_t republish(pqxx::connection& c, const std::vector<std::string>& transaction_ids);

    recovery_options opts_;
    std::string replica_;
    processor processor_;
    amqp::publisher publisher_;
    // Wallets with transactions queued past the threshold: their next sequence when last
    // seen. One that has not moved by the next round does not progress.
    std::map<std::int64_t, std::int64_t> watched_;
    db::leader_loop loop_;  // last: its thread uses the members above
};

}  // namespace txp::ledger
