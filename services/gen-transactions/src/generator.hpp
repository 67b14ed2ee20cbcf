// gen_transactions: a load generator and demo driver that posts random transactions
// through the gateway's API, optionally waits for their outcomes, and summarises.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace txp::gen {

struct options {
    std::uint64_t count = 50;  // with duration_s: an upper bound (0 = none)
    std::uint32_t duration_s = 0;  // post for this long instead of a fixed count
    std::string gateway = "http://127.0.0.1:8000";
    // Credentials: user i of `users` owns wallets[i]; the demo users own wallets 101-105.
    std::vector<std::string> users{"demo1", "demo2", "demo3", "demo4", "demo5"};
    std::vector<std::int64_t> wallets{101, 102, 103, 104, 105};
    std::string password = "txp-demo-password";
    // Use every wallet the users own (read through GET /v1/wallets) instead of `wallets`.
    bool all_wallets = false;
    std::optional<std::int64_t> missing_wallet = 999999;  // refused by the gateway
    std::string currency = "USD";
    // Mix weights: deposit, withdrawal, payment, transfer.
    unsigned mix[4] = {30, 20, 20, 30};
    std::int64_t min_amount = 100;
    std::int64_t max_amount = 50000;
    unsigned concurrency = 8;
    double rate = 0;  // transactions per second, 0 = as fast as possible
    std::uint64_t seed = 42;
    bool wait = false;
    std::uint32_t wait_timeout_s = 120;
    std::uint64_t poison = 0;
    std::string amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    bool json = false;
    bool progress = true;
    // A request that met a transport error (no answer: the gateway down, the connection lost)
    // or a 503 is sent again, the same request with the same Idempotency-Key, after a pause
    // that grows from backoff_initial to backoff_max (with jitter) and starts over after an
    // answer; after retry_for without an answer other than 503 it is given up.
    std::uint32_t backoff_initial_ms = 10;
    std::uint32_t backoff_max_ms = 1000;
    std::uint32_t retry_for_s = 120;
    // Every transaction the client saw accepted, one "<transaction id> <idempotency key>" per
    // line, written as the answers arrive (empty: none).
    std::string accepted_out;
};

struct summary {
    std::uint64_t attempted = 0;  // transactions (distinct idempotency keys), not HTTP requests
    std::uint64_t accepted = 0;
    std::map<unsigned, std::uint64_t> refused_by_status;  // HTTP status -> count
    std::uint64_t transport_errors = 0;  // attempts that got no HTTP answer
    std::uint64_t unavailable = 0;       // attempts answered 503 (then sent again)
    std::uint64_t resent = 0;            // requests sent again with the same key
    std::uint64_t unanswered = 0;        // given up after retry_for without an answer: outcome unknown
    std::uint64_t completed = 0;
    std::map<std::string, std::uint64_t> rejected_by_reason;
    std::map<std::string, std::uint64_t> failed_by_reason;
    std::uint64_t still_queued = 0;  // accepted but not final when waiting ended
    std::uint64_t poison_published = 0;
    double seconds = 0;
    double accepted_per_second = 0;
    double final_per_second = 0;
    std::size_t wallets_used = 0;
    // Latency samples in milliseconds: acceptance as the client saw it; acceptance to outcome
    // by the system's own clock (the transaction's created_at to its finished_at).
    std::vector<double> accept_ms;
    std::vector<double> outcome_ms;
    // Final outcomes per second by the system's clock: finals / (last finished_at - first created_at).
    double server_final_per_second = 0;
    std::vector<std::string> accepted_ids;

    std::string to_json() const;
    std::string to_text() const;
};

// Runs the whole thing; throws std::runtime_error for set-up failures (login refused, ...).
summary run(const options& o);

// Parses argv; prints usage and exits on --help or bad arguments.
options parse_args(int argc, char** argv);

}  // namespace txp::gen
