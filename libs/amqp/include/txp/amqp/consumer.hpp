// Consuming with manual acks and a bounded prefetch, surviving broker loss: the consumer
// rebuilds its connection, topology, qos and subscription by itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "txp/amqp/message.hpp"
#include "txp/amqp/topology.hpp"

namespace txp::amqp {

// One connection and one channel, for one thread. Heartbeats are serviced inside next():
// call it more often than the heartbeat interval.
class consumer {
public:
    consumer(connection_options opts, topology declare, std::string queue, std::uint16_t prefetch);
    ~consumer();
    consumer(const consumer&) = delete;
    consumer& operator=(const consumer&) = delete;

    // The next delivery, or nullopt after `timeout`. Reconnects transparently: never throws
    // on broker loss, logs one warning per attempt.
    std::optional<delivery> next(std::chrono::milliseconds timeout);

    // Up to `max` deliveries: waits up to `first_wait` for the first, then takes whatever
    // arrives within `linger`.
    std::vector<delivery> next_batch(std::size_t max, std::chrono::milliseconds first_wait,
                                     std::chrono::milliseconds linger);

    // False when the delivery came through an older connection (it will be redelivered)
    // or the connection is down.
    bool ack(const delivery& d);
    bool ack_up_to(const delivery& last);  // every unacked delivery up to `last`
    // Acks exactly these deliveries: with one "multiple" ack when nothing else received on this
    // connection (held back by the caller, say) is unsettled below the highest of them,
    // otherwise one by one. False if any could not be acked.
    bool ack_all(const std::vector<delivery>& deliveries);
    bool nack(const delivery& d, bool requeue);

    // No new deliveries after this; those already received can still be taken and acked.
    void cancel();
    void close();

    std::uint64_t generation() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace txp::amqp
