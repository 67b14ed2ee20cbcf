// Publishing with confirms: every message mandatory and persistent, many in flight, and an
// outcome per message, so that nothing is ever dropped silently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "txp/amqp/message.hpp"
#include "txp/amqp/topology.hpp"

namespace txp::amqp {

class publish_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class publish_status {
    confirmed,  // the broker took responsibility (routed and persisted)
    returned,   // unroutable: no queue bound for this exchange and routing key
    nacked,     // the broker refused it
    failed,     // no confirm before the timeout (or the connection stayed down)
};

const char* to_string(publish_status s);

struct publish_result {
    publish_status status = publish_status::failed;
    std::string detail;
};

// One connection and one channel, for one thread.
class publisher {
public:
    // `declare` is declared on every (re)connect. Connects lazily, on the first publish.
    publisher(connection_options opts, topology declare);
    ~publisher();
    publisher(const publisher&) = delete;
    publisher& operator=(const publisher&) = delete;

    // Publishes every message with many in flight and waits until each is confirmed,
    // returned or nacked, or the timeout passes. When the connection drops it reconnects
    // (backoff with jitter, re-declare, confirm mode) and publishes again what was not
    // confirmed yet (at-least-once), while time remains. Result i belongs to msgs[i].
    std::vector<publish_result> publish(std::span<const outgoing> msgs, std::chrono::milliseconds timeout);

    // Throws publish_error unless the message was confirmed.
    void publish_one(const outgoing& msg, std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // For idle loops, called every second or so: when nothing was written for half the
    // heartbeat interval, sends a heartbeat and reads what the broker sent meanwhile. The
    // broker closes a connection that stays silent for two intervals, and rabbitmq-c sends
    // heartbeats only while it is waiting for something; without this, every publish after
    // a quiet spell found its connection gone and published again on a new one. Does
    // nothing before the first publish; a connection found broken is dropped quietly (the
    // next publish opens a new one).
    void keep_alive();

    // Connections opened so far (1 after the first publish, more after reconnects).
    std::uint64_t connections_opened() const;

    void close();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace txp::amqp
