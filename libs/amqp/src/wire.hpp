// The one place that talks to rabbitmq-c: a connection with one channel, error
// classification, property encoding and decoding, and reconnect backoff. Internal.
#pragma once

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "txp/amqp/message.hpp"
#include "txp/common/backoff.hpp"
#include "txp/amqp/topology.hpp"

namespace txp::amqp::detail {

using clock = std::chrono::steady_clock;

// A lost connection must be rebuilt; a channel error (404, 406, ...) closed the channel only.
enum class error_kind { connection, channel };

class broker_error : public std::runtime_error {
public:
    broker_error(error_kind kind, int reply_code, const std::string& what)
        : std::runtime_error(what), kind_(kind), reply_code_(reply_code) {}
    error_kind kind() const { return kind_; }
    int reply_code() const { return reply_code_; }  // AMQP reply code, 0 for library errors

private:
    error_kind kind_;
    int reply_code_;
};

std::string to_string(amqp_bytes_t b);
amqp_bytes_t bytes_of(const std::string& s);

// Owns an amqp_connection_state_t with channel 1 open.
class connection {
public:
    // Connects to opts.node(node). Throws broker_error.
    explicit connection(const connection_options& opts, std::size_t node = 0);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    amqp_connection_state_t state() const { return state_; }
    amqp_channel_t channel() const { return channel_; }

    // Throws broker_error for anything but a normal reply; answers the broker's close.
    void check(amqp_rpc_reply_t r, const char* what);
    void check_last_rpc(const char* what) { check(amqp_get_rpc_reply(state_), what); }
    void check_status(int status, const char* what);  // a library status code (< 0 is fatal)

    // A channel.close or connection.close that arrived as a plain frame: answer and throw.
    [[noreturn]] void on_close_frame(const amqp_frame_t& frame);

    void declare(const topology& t);
    void reopen_channel();   // after a channel error; throws broker_error

    // basic.publish of many messages in one write: append_publish encodes each message's
    // frames (method, content header, body) as amqp_basic_publish would send them, and
    // write_frames sends them together (rabbitmq-c makes one send() per frame: three system
    // calls and, on the broker's side, a wake-up per message). Throws broker_error when the
    // socket fails or stays full until the deadline.
    void append_publish(std::string& out, const std::string& exchange, const std::string& routing_key, bool mandatory,
                        const amqp_basic_properties_t* props, const std::string& body);
    void write_frames(const std::string& frames, clock::time_point deadline);
    void mark_broken() { broken_ = true; }
    bool broken() const { return broken_; }

private:
    amqp_connection_state_t state_ = nullptr;
    amqp_channel_t channel_ = 1;
    std::vector<char> scratch_;  // append_publish's encoding buffer
    bool broken_ = false;
    bool logged_in_ = false;
};

// amqp_basic_properties_t that points into a txp::amqp::properties (which must outlive it).
class encoded_properties {
public:
    explicit encoded_properties(const properties& p);
    const amqp_basic_properties_t* get() const { return &props_; }

private:
    amqp_basic_properties_t props_{};
    std::vector<amqp_table_entry_t> entries_;
};

properties decode_properties(const amqp_basic_properties_t& p);

using txp::backoff;  // txp/common/backoff.hpp

// Which node of a cluster to connect to next, and when: after a failed attempt the next node
// is tried at once, and the backoff applies only once every node failed in a row (with one
// node, after each failure, as before). A lost connection moves on to the next node too: the
// node it was on may be the one going away.
class node_rotation {
public:
    explicit node_rotation(const connection_options& opts);
    std::size_t current() const { return node_; }
    // After a failed attempt on current(): moves to the next node; the delay before trying it.
    std::chrono::milliseconds failed();
    // After a connection was lost: the next node, at once.
    void lost();
    void connected();

private:
    std::size_t count_;
    std::size_t node_ = 0;
    std::size_t failed_in_row_ = 0;
    backoff retry_;
};

struct timeval to_timeval(std::chrono::milliseconds d);

// The time left until `t` as a timeout for rabbitmq-c, which polls for whole milliseconds
// rounded down: a remainder under 1 ms becomes poll(0), so waiting out "the rest" of a
// linger spins in poll(0) calls until the deadline. One millisecond more than the rounded-up
// remainder lets the wait end past `t`; 0 once `t` has passed.
inline std::chrono::milliseconds ms_until(clock::time_point t) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(t - clock::now());
    return left.count() > 0 ? left + std::chrono::milliseconds(1) : std::chrono::milliseconds(0);
}

// Sleeps until `until` or `deadline`, whichever comes first; false if the deadline came first.
bool sleep_until_before(clock::time_point until, clock::time_point deadline);

}  // namespace txp::amqp::detail
