// Webhook delivery: a dispatcher thread claims due deliveries from notify.deliveries
// (FOR UPDATE SKIP LOCKED, safe across replicas) and hands them to a pool of sender
// threads, with at most `per_endpoint` attempts in flight per host:port and `concurrency`
// in all, so a slow or dead endpoint only ever occupies its own slots.
//
// Why retries are scheduled in the database (next_attempt_at) rather than through the
// broker's retry tiers: a delivery's state (attempts, last error, the subscription's
// failure count) is what the gateway shows, and it must change together with the decision
// to retry; and the per-endpoint cap needs a scheduler that can pass over a busy endpoint's
// deliveries to reach others, where a FIFO retry queue would put them in front of everyone
// else. After the last attempt the delivery is parked the way every txp message is: its
// body is published to txp.error (queue notifier.events.error) with the x-error-* headers
// and the destination, so operators see it in the console, and moving it back to
// notifier.events schedules it again.
#pragma once

#include "webhook_crypto.hpp"
#include "webhook_url_policy.hpp"

#include "txp/amqp/message.hpp"
#include "txp/db/db.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace txp::notifier {

struct dispatcher_options {
    std::size_t concurrency = 32;  // attempts in flight in this replica
    std::size_t per_endpoint = 4;  // attempts in flight per host:port in this replica
    std::chrono::milliseconds timeout{5000};  // one attempt, connect to last byte
    // Waits before attempts 2, 3, ...; attempts in all = backoff.size() + 1.
    std::vector<std::chrono::milliseconds> backoff{std::chrono::seconds(1), std::chrono::seconds(10), std::chrono::seconds(60)};
    std::chrono::milliseconds poll{250};
    webhook_url_policy policy;
    secret_key key;
    amqp::connection_options amqp;
};

// Parses TXP_WEBHOOK_BACKOFF-style text: "1s,10s,60s" (throws std::invalid_argument).
std::vector<std::chrono::milliseconds> parse_backoff(std::string_view text);

class webhook_dispatcher {
public:
    webhook_dispatcher(dispatcher_options opts, db::pool& pool);
    ~webhook_dispatcher();  // stop()
    webhook_dispatcher(const webhook_dispatcher&) = delete;
    webhook_dispatcher& operator=(const webhook_dispatcher&) = delete;

    void start();
    // New deliveries were scheduled: claim now instead of at the next poll.
    void wake();
    // Claims nothing more, lets attempts in flight finish (each bounded by the timeout),
    // records their outcomes and joins the threads.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace txp::notifier
