// One process at a time doing a periodic job (a recovery loop, a scheduler) among replicas:
// the holder of a PostgreSQL session advisory lock on a connection of its own. The lock goes
// with the session, so a replica that dies or loses its connection gives up the lead at once
// and another takes it at its next round; no lease to expire, no clock to trust.
#pragma once

#include <pqxx/pqxx>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace txp::db {

struct leader_options {
    std::string database_url;
    std::string application_name;  // of the lock's connection, in pg_stat_activity
    std::int64_t lock_key = 0;     // pg_advisory_lock key: one per job
    std::chrono::milliseconds interval{5000};
    std::string job;  // for logs and the gauge txp_leader{job="..."}
};

class leader_loop {
public:
    using round_fn = std::function<void(pqxx::connection&)>;
    leader_loop(leader_options opts, round_fn round);
    ~leader_loop();  // stops
    leader_loop(const leader_loop&) = delete;
    leader_loop& operator=(const leader_loop&) = delete;

    // Runs a round every interval in a thread of its own while this process leads (and tries
    // to take the lead every interval while it does not). A round that throws is logged.
    void start();
    void stop();

    // Runs fn (the loop's round by default) now in the caller's thread, if this process leads
    // or can take the lead; false when another does. Exceptions propagate; a broken
    // connection drops the lead (taken again at the next round).
    bool run_once(const round_fn& fn = nullptr);

private:
    bool lead();

    leader_options opts_;
    round_fn round_;
    std::unique_ptr<pqxx::connection> conn_;
    bool leading_ = false;
    std::mutex run_mu_;  // one round at a time (the thread's and run_once's)
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace txp::db
