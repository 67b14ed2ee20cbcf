// Prefer: wait=N. A request that wants the outcome parks its response writer here; the
// events thread (an exclusive, auto-delete queue bound to txp.events with tx.*) completes
// it when the transaction's event arrives, and answers "still queued" at the deadline.
// No io thread blocks while a client waits. The same queue also carries notify.created (for
// the SSE streams) and auth.token_revoked (for the token cache) to their listeners.
#pragma once

#include "txp/amqp/message.hpp"
#include "txp/http/message.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace txp::gateway {

// A terminal outcome as an event (or the database) tells it.
struct tx_outcome {
    std::string status;  // completed, rejected, failed
    std::optional<std::string> reason;
};

class outcome_waiters {
public:
    // How a parked request is answered: with the outcome, or with nullopt at the deadline.
    using responder = std::function<http::response(const std::optional<tx_outcome>&)>;

    outcome_waiters();
    ~outcome_waiters();  // stops
    outcome_waiters(const outcome_waiters&) = delete;
    outcome_waiters& operator=(const outcome_waiters&) = delete;

    // Starts the events thread (consumer on its own connection).
    void start(amqp::connection_options opts, std::string replica);
    // Joins the events thread, then answers every parked request (and any parked later) as
    // still queued.
    void stop();

    // Parks a response; call check_now() afterwards in case the event raced ahead.
    void park(const std::string& transaction_id, std::shared_ptr<http::response_writer> writer, std::string request_id,
              std::chrono::steady_clock::time_point deadline, responder respond);
    // Completes the waiters of a transaction (from an event, or a database read).
    void complete(const std::string& transaction_id, const tx_outcome& outcome);
    // Answers waiters whose deadline passed.
    void expire(std::chrono::steady_clock::time_point now);

    std::size_t parked() const;
    bool consumer_connected() const { return connected_.load(); }

    // The same queue is also bound to notify.created: the feed entries the notifier recorded,
    // handed (the message body) to this listener, which writes them to the SSE streams.
    // Thread-safe; an empty function removes it (and waits for a call in progress).
    void on_notify_created(std::function<void(const std::string& body)> listener);
    // Every terminal outcome heard on the queue (whoever accepted the transaction) is also
    // handed to this listener (the acceptance batcher's admission count). Thread-safe.
    void on_outcome(std::function<void(const std::string& transaction_id)> listener);
    // And to auth.token_revoked (auth.token_revoked.v1): a token logged out on any replica,
    // handed (its SHA-256 hex) to this listener, which drops it from the token cache.
    void on_token_revoked(std::function<void(const std::string& token_hash)> listener);

    // Parses a tx.events.v1 body (or a single tx.event.v1) into (transaction id, outcome)
    // pairs, in order; elements that are not outcomes are left out.
    static std::vector<std::pair<std::string, tx_outcome>> parse_events(const std::string& body);
    // auth.token_revoked.v1: the body for a token hash, and the hash back (nullopt unless it
    // is 64 lowercase hex digits).
    static constexpr const char* token_revoked_key = "auth.token_revoked";
    static constexpr const char* token_revoked_type = "auth.token_revoked.v1";
    static std::string token_revoked_body(const std::string& token_hash);
    static std::optional<std::string> parse_token_revoked(const std::string& body);

private:
    struct waiter {
        std::string transaction_id;
        std::shared_ptr<http::response_writer> writer;
        std::string request_id;
        std::chrono::steady_clock::time_point deadline;
        responder respond;
    };
    void answer(waiter& w, const std::optional<tx_outcome>& outcome);
    void run(amqp::connection_options opts, std::string queue);

    mutable std::mutex mu_;
    std::uint64_t next_id_ = 0;
    std::unordered_multimap<std::string, std::uint64_t> by_tx_;
    std::map<std::uint64_t, waiter> waiters_;
    bool closed_ = false;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> connected_{false};
    std::thread thread_;
    std::mutex listener_mu_;
    std::function<void(const std::string&)> notify_listener_;
    std::function<void(const std::string&)> outcome_listener_;
    std::function<void(const std::string&)> revoked_listener_;
};

}  // namespace txp::gateway
