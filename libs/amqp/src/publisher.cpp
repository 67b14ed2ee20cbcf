// Confirmed, mandatory, persistent publishing with many messages in flight, surviving a
// lost connection by publishing again whatever was not confirmed yet (at-least-once).
#include "txp/amqp/publisher.hpp"

#include <algorithm>
#include <deque>
#include <iterator>
#include <map>
#include <optional>

#include "txp/common/log.hpp"
#include "wire.hpp"

namespace txp::amqp {

const char* to_string(publish_status s) {
    switch (s) {
        case publish_status::confirmed: return "confirmed";
        case publish_status::returned: return "returned";
        case publish_status::nacked: return "nacked";
        case publish_status::failed: return "failed";
    }
    return "unknown";
}

namespace {

// Most messages awaiting a confirm at once: enough to hide the broker's fsync latency,
// small enough that a reconnect does not re-publish an avalanche.
constexpr std::size_t max_in_flight = 1000;
// Look for confirms every this many publishes, so that they never pile up unread.
constexpr std::size_t drain_every = 64;

}  // namespace

struct publisher::impl {
    connection_options opts;
    topology topo;
    std::unique_ptr<detail::connection> conn;
    detail::node_rotation nodes;
    detail::clock::time_point next_attempt{};
    std::string last_error;
    // Confirm sequence number of the next publish on this channel. It runs on across
    // batches, so a late confirm from a batch that timed out never matches a newer message.
    std::uint64_t next_seq = 1;
    detail::clock::time_point last_write{};
    std::uint64_t opened = 0;

    impl(connection_options o, topology t)
        : opts(std::move(o)), topo(std::move(t)), nodes(opts) {}

    // One batch in progress.
    struct batch {
        std::span<const outgoing> msgs;
        std::vector<publish_result> results;
        std::vector<char> done;
        std::size_t remaining = 0;
        std::deque<std::size_t> to_send;
        std::map<std::uint64_t, std::size_t> in_flight;  // confirm sequence number -> index
        std::vector<char> nacked;           // refused at least once (published again meanwhile)
        std::vector<std::size_t> refused;   // nacked since the channel was last restarted
        std::chrono::milliseconds nack_delay{100};

        void finish(std::size_t i, publish_status s, std::string detail = {}) {
            if (done[i]) return;
            done[i] = 1;
            results[i] = {s, std::move(detail)};
            --remaining;
        }
    };

    bool connect_before(detail::clock::time_point deadline) {
        while (!conn) {
            if (detail::clock::now() < next_attempt && !detail::sleep_until_before(next_attempt, deadline)) {
                return false;
            }
            if (detail::clock::now() >= deadline) return false;
            try {
                auto c = std::make_unique<detail::connection>(opts, nodes.current());
                c->declare(topo);
                amqp_confirm_select(c->state(), c->channel());
                c->check_last_rpc("confirm.select");
                conn = std::move(c);
                last_write = detail::clock::now();
                ++opened;
                nodes.connected();
                log::info("amqp publisher connected",
                          {{"endpoint", opts.node(nodes.current()).describe()}, {"connection_name", opts.connection_name}});
            } catch (const detail::broker_error& e) {
                last_error = e.what();
                const auto& tried = opts.node(nodes.current());
                auto delay = nodes.failed();
                next_attempt = detail::clock::now() + delay;
                log::warn("amqp publisher cannot connect, retrying",
                          {{"endpoint", tried.describe()},
                           {"next", opts.node(nodes.current()).describe()},
                           {"error", e.what()},
                           {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
            }
        }
        return true;
    }

    void drop_connection(batch& b, const detail::broker_error& e) {
        last_error = e.what();
        log::warn("amqp publisher lost its channel",
                  {{"endpoint", opts.node(nodes.current()).describe()},
                   {"error", e.what()},
                   {"unconfirmed", static_cast<std::uint64_t>(b.in_flight.size())}});
        if (conn) conn->mark_broken();
        conn.reset();
        nodes.lost();
        next_attempt = detail::clock::now();  // the first reconnect is immediate
        // Whatever was not confirmed (or was refused) goes out again, in its original order.
        std::vector<std::size_t> again = std::move(b.refused);
        b.refused.clear();
        for (const auto& [seq, i] : b.in_flight) {
            if (!b.done[i]) again.push_back(i);
        }
        b.in_flight.clear();
        std::sort(again.begin(), again.end());
        b.to_send.insert(b.to_send.begin(), again.begin(), again.end());
    }

    // A channel closed with "no exchange 'X'" will close again on every retry: fail the
    // messages for X now instead of spinning until the timeout.
    void fail_missing_exchange(batch& b, const detail::broker_error& e) {
        if (e.reply_code() != AMQP_NOT_FOUND) return;
        std::string text = e.what();
        auto start = text.find("no exchange '");
        if (start == std::string::npos) return;
        start += 13;
        auto end = text.find('\'', start);
        if (end == std::string::npos) return;
        std::string exchange = text.substr(start, end - start);
        for (const auto& [seq, i] : b.in_flight) {
            if (b.msgs[i].exchange == exchange) b.finish(i, publish_status::failed, text);
        }
        for (std::size_t i : b.to_send) {
            if (b.msgs[i].exchange == exchange) b.finish(i, publish_status::failed, text);
        }
    }

    // A nack is the broker refusing a message on this channel: a queue that is full
    // (reject-publish) or unavailable, or, with quorum queues, a channel opened during a
    // leader election (RabbitMQ 3.10): it kept sending to the queue's old leader, and every
    // later publish on it was nacked while a new channel's were confirmed. The refused
    // messages go out again on a new channel after a short pause, until the deadline; a
    // message still refused then is reported nacked.
    void refuse(batch& b, std::uint64_t tag, bool multiple) {
        auto first = multiple ? b.in_flight.begin() : b.in_flight.find(tag);
        auto last = multiple ? b.in_flight.upper_bound(tag) : (first == b.in_flight.end() ? first : std::next(first));
        for (auto it = first; it != last; ++it) {
            b.nacked[it->second] = 1;
            b.refused.push_back(it->second);
        }
        b.in_flight.erase(first, last);
    }

    void restart_channel(batch& b) {
        log::warn("amqp publisher got nacks; publishing them again on a new channel",
                  {{"endpoint", opts.node(nodes.current()).describe()},
                   {"refused", static_cast<std::uint64_t>(b.refused.size())},
                   {"retry_in_ms", static_cast<std::int64_t>(b.nack_delay.count())}});
        conn.reset();  // closes the channel and the connection politely
        std::vector<std::size_t> again = std::move(b.refused);
        b.refused.clear();
        for (const auto& [seq, i] : b.in_flight) again.push_back(i);  // unconfirmed on the old channel
        b.in_flight.clear();
        std::sort(again.begin(), again.end());
        b.to_send.insert(b.to_send.begin(), again.begin(), again.end());
        next_attempt = detail::clock::now() + b.nack_delay;
        b.nack_delay = std::min(b.nack_delay * 2, std::chrono::milliseconds(2000));
    }

    void settle(batch& b, std::uint64_t tag, bool multiple, publish_status s) {
        if (multiple) {
            auto end = b.in_flight.upper_bound(tag);
            for (auto it = b.in_flight.begin(); it != end; ++it) b.finish(it->second, s);
            b.in_flight.erase(b.in_flight.begin(), end);
        } else if (auto it = b.in_flight.find(tag); it != b.in_flight.end()) {
            b.finish(it->second, s);
            b.in_flight.erase(it);
        }
    }

    // basic.return carries no sequence number; it always comes before the confirm of its
    // message, so it belongs to an unconfirmed message with the same address and content.
    void on_return(batch& b, const amqp_basic_return_t& ret) {
        std::string exchange = detail::to_string(ret.exchange);
        std::string routing_key = detail::to_string(ret.routing_key);
        std::string detail = "unroutable: " + std::to_string(ret.reply_code) + " " + detail::to_string(ret.reply_text) +
                             " (exchange '" + exchange + "', routing key '" + routing_key + "')";
        amqp_message_t message;
        amqp_rpc_reply_t r = amqp_read_message(conn->state(), conn->channel(), &message, 0);
        conn->check(r, "reading a returned message");
        std::string message_id;
        if (message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
            message_id = detail::to_string(message.properties.message_id);
        }
        std::string body = detail::to_string(message.body);
        amqp_destroy_message(&message);
        for (const auto& [seq, i] : b.in_flight) {
            const outgoing& m = b.msgs[i];
            if (!b.done[i] && m.exchange == exchange && m.routing_key == routing_key &&
                m.props.message_id == message_id && m.body == body) {
                b.finish(i, publish_status::returned, detail);
                return;
            }
        }
        log::warn("amqp publisher got a return it cannot match", {{"exchange", exchange}, {"routing_key", routing_key}});
    }

    // Reads one frame if one comes within `wait`; false on timeout.
    bool read_frame(batch& b, std::chrono::milliseconds wait) {
        amqp_frame_t frame;
        struct timeval tv = detail::to_timeval(wait);
        int rc = amqp_simple_wait_frame_noblock(conn->state(), &frame, &tv);
        if (rc == AMQP_STATUS_TIMEOUT) return false;
        conn->check_status(rc, "waiting for confirms");
        if (frame.frame_type != AMQP_FRAME_METHOD) return true;
        switch (frame.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                const auto* m = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
                settle(b, m->delivery_tag, m->multiple != 0, publish_status::confirmed);
                break;
            }
            case AMQP_BASIC_NACK_METHOD: {
                const auto* m = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
                refuse(b, m->delivery_tag, m->multiple != 0);
                break;
            }
            case AMQP_BASIC_RETURN_METHOD: {
                amqp_basic_return_t ret = *static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
                on_return(b, ret);
                break;
            }
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                conn->on_close_frame(frame);
            default:
                break;
        }
        return true;
    }

    void drain(batch& b) {
        while (read_frame(b, std::chrono::milliseconds(0))) {
        }
        amqp_maybe_release_buffers(conn->state());
    }

    // The frames already read from the socket (one read often brings several confirms),
    // without asking the socket again.
    void drain_buffered(batch& b) {
        auto st = conn->state();
        while ((amqp_frames_enqueued(st) || amqp_data_in_buffer(st)) && read_frame(b, std::chrono::milliseconds(0))) {
        }
        amqp_maybe_release_buffers(st);
    }

    // Queues one publish into `frames`; write_frames sends what is queued in one go.
    void send_one(batch& b, std::size_t i, std::string& frames) {
        const outgoing& m = b.msgs[i];
        // In flight before the attempt: if the write fails half-way, the reconnect sends
        // this message again with the others that were not confirmed.
        b.in_flight.emplace(next_seq++, i);
        detail::encoded_properties props(m.props);
        conn->append_publish(frames, m.exchange, m.routing_key, m.mandatory, props.get(), m.body);
    }

    std::vector<publish_result> run(std::span<const outgoing> msgs, std::chrono::milliseconds timeout) {
        const auto deadline = detail::clock::now() + timeout;
        batch b;
        b.msgs = msgs;
        b.results.assign(msgs.size(), publish_result{publish_status::failed, "not published"});
        b.done.assign(msgs.size(), 0);
        b.nacked.assign(msgs.size(), 0);
        b.remaining = msgs.size();
        for (std::size_t i = 0; i < msgs.size(); ++i) b.to_send.push_back(i);

        while (b.remaining > 0 && detail::clock::now() < deadline) {
            if (!conn) {
                if (!connect_before(deadline)) break;
                next_seq = 1;  // confirm numbering starts over on a new channel
            }
            try {
                std::size_t since_drain = 0;
                std::string frames;
                while (!b.to_send.empty() && b.in_flight.size() < max_in_flight) {
                    std::size_t i = b.to_send.front();
                    b.to_send.pop_front();
                    if (b.done[i]) continue;
                    send_one(b, i, frames);
                    if (++since_drain == drain_every) {
                        since_drain = 0;
                        conn->write_frames(frames, deadline);
                        last_write = detail::clock::now();
                        frames.clear();
                        drain(b);
                    }
                }
                if (!frames.empty()) {
                    conn->write_frames(frames, deadline);
                    last_write = detail::clock::now();
                }
                auto left = detail::ms_until(deadline);
                if (left.count() <= 0) break;
                if (read_frame(b, std::min(left, std::chrono::milliseconds(200)))) drain_buffered(b);
                if (!b.refused.empty()) restart_channel(b);
            } catch (const detail::broker_error& e) {
                fail_missing_exchange(b, e);
                drop_connection(b, e);
            }
        }

        for (std::size_t i = 0; i < msgs.size(); ++i) {
            if (b.done[i]) continue;
            if (b.nacked[i]) {
                b.results[i] = {publish_status::nacked, "refused by the broker until the timeout"};
                continue;
            }
            b.results[i] = {publish_status::failed,
                            conn ? "no confirm before the timeout"
                                 : "no confirm before the timeout; connection down: " + last_error};
        }
        return b.results;
    }

    void keep_alive() {
        if (!conn || opts.heartbeat.count() <= 0) return;
        auto now = detail::clock::now();
        if (now - last_write < opts.heartbeat / 2) return;
        try {
            amqp_frame_t beat{};
            beat.frame_type = AMQP_FRAME_HEARTBEAT;
            beat.channel = 0;
            conn->check_status(amqp_send_frame(conn->state(), &beat), "sending a heartbeat");
            last_write = now;
            batch idle;  // nothing in flight: late confirms of a timed-out batch are dropped
            drain(idle);
        } catch (const detail::broker_error& e) {
            last_error = e.what();
            log::info("amqp publisher found its idle connection closed; the next publish reconnects",
                      {{"endpoint", opts.node(nodes.current()).describe()}, {"error", e.what()}});
            conn->mark_broken();
            conn.reset();
            nodes.lost();
            next_attempt = now;
        }
    }
};

publisher::publisher(connection_options opts, topology declare)
    : impl_(std::make_unique<impl>(std::move(opts), std::move(declare))) {}

publisher::~publisher() = default;

std::vector<publish_result> publisher::publish(std::span<const outgoing> msgs, std::chrono::milliseconds timeout) {
    return impl_->run(msgs, timeout);
}

void publisher::publish_one(const outgoing& msg, std::chrono::milliseconds timeout) {
    auto r = impl_->run(std::span<const outgoing>(&msg, 1), timeout);
    if (r[0].status != publish_status::confirmed) {
        throw publish_error(std::string("publish to exchange '") + msg.exchange + "' with routing key '" +
                            msg.routing_key + "' " + to_string(r[0].status) +
                            (r[0].detail.empty() ? "" : ": " + r[0].detail));
    }
}

void publisher::keep_alive() { impl_->keep_alive(); }

std::uint64_t publisher::connections_opened() const { return impl_->opened; }

void publisher::close() { impl_->conn.reset(); }

}  // namespace txp::amqp
