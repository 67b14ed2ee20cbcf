// The acceptance batcher: money requests from many connections are accepted together in ONE
// database transaction (one commit, one fsync) instead of one transaction each. The plainly
// new and valid requests are accepted set-based in one statement (gateway.accept_fast); the
// others go through gateway.accept_batch, where a request that fails for its own reasons
// (TX400, TX404, TX409) gets its own error and its neighbours are unaffected (the call is
// run again without it, or with a savepoint per request). Nobody is answered before the
// group's commit succeeded.
#pragma once

#include "txp/db/db.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace txp::gateway {

// One money request, validated and resolved as far as the API can without the database.
struct acceptance {
    std::int64_t user_id = 0;
    std::string scope;  // idempotency scope: "user:<id>"
    std::string key;
    std::string type;
    std::optional<std::int64_t> wallet_id;  // nullopt: the caller's own wallet (in `currency` when set)
    std::optional<std::int64_t> to_wallet_id;
    std::optional<std::int64_t> to_user_id;
    std::int64_t amount = 0;
    std::optional<std::string> currency;  // nullopt: the wallet's currency
    std::optional<std::string> description;
    std::optional<std::string> metadata;  // JSON object text
    std::string request_id;               // the outbox message's correlation id
};

// The ledger's answer; created is false when an earlier request with the same key made it.
struct acceptance_outcome {
    std::string transaction_id;
    std::string status;
    std::optional<std::string> reason;
    std::int64_t wallet_id = 0;
    std::optional<std::int64_t> to_wallet_id;
    std::string currency;
    std::string created_at;
    bool created = false;
};

// An outcome, or the error: a db::db_error whose sqlstate is the request's own failure
// (TX400, TX404, TX409, 22xxx) or, when the whole group failed, whose kind says whether a
// retry may succeed.
struct acceptance_result {
    std::optional<acceptance_outcome> outcome;
    std::exception_ptr error;
};

// A request not accepted because the transactions this gateway accepted earlier are still
// waiting for their outcomes (batcher_options::max_in_flight): 503 with Retry-After.
struct overloaded_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Ids with the time each was added, forgotten oldest first once older than an age. Not
// thread-safe (the batcher holds its lock).
class aging_ids {
public:
    using clock = std::chrono::steady_clock;
    bool add(const std::string& id, clock::time_point now);  // false when it is there already
    bool remove(const std::string& id);                       // false when it was not there
    // Forgets the ids added before now - age; returns how many.
    std::size_t forget_older(clock::time_point now, clock::duration age);
    std::size_t size() const { return added_.size(); }

private:
    std::unordered_map<std::string, clock::time_point> added_;
    std::deque<std::pair<clock::time_point, std::string>> order_;  // also removed ids, until compacted
};

struct batcher_options {
    std::string database_url;
    int committers = 1;          // threads, each with its own connection (2+ can deadlock on hot wallets; retried)
    // Requests per transaction. At most 64: with a savepoint each, more subtransactions than
    // PostgreSQL caches per backend (64) slow every other session's snapshots.
    std::size_t max_batch = 64;
    int attempts = 4;            // a group failing transiently (deadlock, lost connection) is run again
    // Admission: at most this many transactions accepted here and not yet final (0: no
    // limit). When the ledger falls behind, new requests wait (in arrival order) instead of
    // adding to a backlog whose every transaction would wait longer for its outcome; one that
    // waits longer than max_admission_wait is answered overloaded_error, not accepted.
    // Outcomes come from outcome_seen(); an accepted transaction whose outcome was not heard
    // of (events lost in a reconnect) stops counting after forget_in_flight_after.
    std::size_t max_in_flight = 0;
    std::chrono::milliseconds max_admission_wait{std::chrono::seconds(5)};
    std::chrono::milliseconds forget_in_flight_after{std::chrono::seconds(30)};
};

class acceptance_batcher {
public:
    using completion = std::function<void(acceptance_result&&)>;

    explicit acceptance_batcher(batcher_options opts);
    ~acceptance_batcher();  // stops
    acceptance_batcher(const acceptance_batcher&) = delete;
    acceptance_batcher& operator=(const acceptance_batcher&) = delete;

    void start();
    // Runs everything still queued, then joins. Later submissions fail at once (transient).
    void stop();

    // Queues a request. `done` runs exactly once, on a committer thread, after the commit of
    // the group the request was in (or the group's final failure); it must not block long.
    void submit(acceptance a, completion done);

    std::size_t queued() const;

    // From now on the admission limit no longer holds requests back (graceful stop: the
    // outcomes that free room stop coming, and what is queued is answered, not refused).
    void stop_admission();
    // A transaction reached its final state (from the events feed; any id may come, the
    // ones this batcher did not accept are ignored). Thread-safe.
    void outcome_seen(const std::string& transaction_id);

private:
    using clock = std::chrono::steady_clock;
    struct item {
        acceptance req;
        completion done;
        int key_races = 0;  // times it lost a race for its key to a concurrent first use
        clock::time_point queued_at = clock::now();
    };
    // With max_in_flight: how many requests a group may take now; answers (into `overdue`)
    // the requests that waited too long. Called with mu_ held.
    std::size_t admit(clock::time_point now, std::vector<item>& overdue);
    std::size_t room() const;         // mu_ held
    std::size_t enough_room() const;  // mu_ held
    void run();
    void execute(std::vector<item>& group);
    void run_group(pqxx::connection& conn, std::vector<item>& group, std::vector<acceptance_result>& results,
                   std::vector<bool>& raced);

    batcher_options opts_;
    db::pool pool_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<item> queue_;
    bool stopping_ = false;
    // Admission (max_in_flight): accepted transactions without an outcome yet, and the
    // requests taken by groups not yet committed.
    aging_ids in_flight_;
    std::size_t reserved_ = 0;
    bool admission_off_ = false;
    int room_waiters_ = 0;             // committers waiting on room_cv_
    std::condition_variable room_cv_;  // room freed: outcomes heard, groups done, stopping
    // Outcomes heard for transactions not in in_flight_, for a few seconds (see outcome_seen).
    aging_ids unmatched_;
    std::vector<std::thread> threads_;
};

// Prepares the batcher's statements on a connection (for its pool's on_connect).
void prepare_acceptance_statements(pqxx::connection& c);

}  // namespace txp::gateway
