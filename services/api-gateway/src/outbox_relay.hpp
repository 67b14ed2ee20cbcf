// The outbox relay: publishes gateway.outbox rows with publisher confirms and marks them
// sent. Woken by LISTEN txp_outbox, polling as a fallback; FOR UPDATE SKIP LOCKED lets
// several gateway replicas relay side by side.
#pragma once

#include "txp/amqp/message.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>

namespace txp::gateway {

struct relay_options {
    std::string database_url;
    amqp::connection_options amqp;
    std::size_t batch_size = 500;
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds publish_timeout{5000};
    std::chrono::hours keep_sent{1};  // sent rows older than this are deleted
};

class outbox_relay {
public:
    explicit outbox_relay(relay_options opts);
    ~outbox_relay();  // stops
    outbox_relay(const outbox_relay&) = delete;
    outbox_relay& operator=(const outbox_relay&) = delete;

    void start();
    // Stops waiting, relays what is pending once more (a last flush), and joins.
    void stop();

    std::uint64_t published() const { return published_.load(); }

private:
    void run();

    relay_options opts_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> published_{0};
    std::thread thread_;
};

}  // namespace txp::gateway
