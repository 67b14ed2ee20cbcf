// A manual-ack consumer that rebuilds connection, topology, qos and subscription by itself.
#include "txp/amqp/consumer.hpp"

#include "txp/common/log.hpp"
#include "wire.hpp"

#include <iterator>
#include <set>

namespace txp::amqp {

struct consumer::impl {
    connection_options opts;
    topology topo;
    std::string queue;
    std::uint16_t prefetch;
    std::unique_ptr<detail::connection> conn;
    detail::node_rotation nodes;
    detail::clock::time_point next_attempt{};
    std::uint64_t generation = 0;
    // Delivery tags of this connection not acked or nacked yet (see ack_all).
    std::set<std::uint64_t> unsettled;
    bool cancelled = false;
    bool closed = false;
    std::string consumer_tag;

    impl(connection_options o, topology t, std::string q, std::uint16_t p)
        : opts(std::move(o)), topo(std::move(t)), queue(std::move(q)), prefetch(p),
          nodes(opts) {}

    void drop(const std::string& why) {
        log::warn("amqp consumer lost its connection",
                  {{"endpoint", opts.node(nodes.current()).describe()}, {"queue", queue}, {"error", why}});
        if (conn) conn->mark_broken();
        conn.reset();
        nodes.lost();
        next_attempt = detail::clock::now();  // the first reconnect is immediate
    }

    bool connect_before(detail::clock::time_point deadline) {
        while (!conn) {
            if (detail::clock::now() < next_attempt && !detail::sleep_until_before(next_attempt, deadline)) {
                return false;
            }
            if (detail::clock::now() >= deadline) return false;
            try {
                auto c = std::make_unique<detail::connection>(opts, nodes.current());
                c->declare(topo);
                amqp_basic_qos(c->state(), c->channel(), 0, prefetch, 0);
                c->check_last_rpc("basic.qos");
                amqp_basic_consume_ok_t* ok = amqp_basic_consume(c->state(), c->channel(), detail::bytes_of(queue),
                                                                 amqp_empty_bytes, 0, /*no_ack=*/0, 0, amqp_empty_table);
                c->check_last_rpc(("basic.consume " + queue).c_str());
                if (ok == nullptr) throw detail::broker_error(detail::error_kind::connection, 0, "basic.consume: no reply");
                consumer_tag = detail::to_string(ok->consumer_tag);
                conn = std::move(c);
                ++generation;
                unsettled.clear();  // the old connection's deliveries went back to the queue
                nodes.connected();
                log::info("amqp consumer subscribed", {{"endpoint", opts.node(nodes.current()).describe()},
                                                       {"queue", queue},
                                                       {"prefetch", static_cast<std::int64_t>(prefetch)},
                                                       {"generation", generation}});
            } catch (const detail::broker_error& e) {
                const auto& tried = opts.node(nodes.current());
                auto delay = nodes.failed();
                next_attempt = detail::clock::now() + delay;
                log::warn("amqp consumer cannot connect, retrying",
                          {{"endpoint", tried.describe()},
                           {"next", opts.node(nodes.current()).describe()},
                           {"queue", queue},
                           {"error", e.what()},
                           {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
            }
        }
        return true;
    }

    // A frame that is not a delivery: the broker closing or cancelling something.
    void on_other_frame() {
        amqp_frame_t frame;
        int rc = amqp_simple_wait_frame(conn->state(), &frame);
        if (rc < 0) {
            drop(std::string("reading a frame: ") + amqp_error_string2(rc));
            return;
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) return;
        switch (frame.payload.method.id) {
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                try {
                    conn->on_close_frame(frame);
                } catch (const detail::broker_error& e) {
                    drop(e.what());
                }
                return;
            case AMQP_BASIC_CANCEL_METHOD:
                // The broker cancelled us (queue deleted, node going down): start over,
                // which re-declares the queue and subscribes again.
                drop("consumer cancelled by the broker");
                return;
            default:
                return;
        }
    }

    std::optional<delivery> next(std::chrono::milliseconds timeout) {
        const auto deadline = detail::clock::now() + timeout;
        while (!closed) {
            if (!conn) {
                // After cancel there is nothing to reconnect for: the broker requeued what we held.
                if (cancelled || !connect_before(deadline)) return std::nullopt;
            }
            amqp_connection_state_t st = conn->state();
            if (cancelled && !amqp_frames_enqueued(st) && !amqp_data_in_buffer(st)) return std::nullopt;
            amqp_maybe_release_buffers(st);
            auto left = detail::ms_until(deadline);
            struct timeval tv = detail::to_timeval(left);
            amqp_envelope_t env;
            amqp_rpc_reply_t r = amqp_consume_message(st, &env, &tv, 0);
            if (r.reply_type == AMQP_RESPONSE_NORMAL) {
                delivery d;
                d.body = detail::to_string(env.message.body);
                d.props = detail::decode_properties(env.message.properties);
                d.exchange = detail::to_string(env.exchange);
                d.routing_key = detail::to_string(env.routing_key);
                d.queue = queue;
                d.redelivered = env.redelivered != 0;
                d.delivery_tag = env.delivery_tag;
                d.generation = generation;
                unsettled.insert(d.delivery_tag);
                amqp_destroy_envelope(&env);
                return d;
            }
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
                if (detail::clock::now() >= deadline) return std::nullopt;
                continue;
            }
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
                on_other_frame();
                continue;
            }
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
                drop(amqp_error_string2(r.library_error));
            } else {
                drop("unexpected reply while consuming");
            }
        }
        return std::nullopt;
    }

    bool settle(const char* what, int rc) {
        if (rc < 0) {
            drop(std::string(what) + ": " + amqp_error_string2(rc));
            return false;
        }
        return true;
    }

    bool current(const delivery& d) const { return conn && !closed && d.generation == generation; }
};

consumer::consumer(connection_options opts, topology declare, std::string queue, std::uint16_t prefetch)
    : impl_(std::make_unique<impl>(std::move(opts), std::move(declare), std::move(queue), prefetch)) {}

consumer::~consumer() = default;

std::optional<delivery> consumer::next(std::chrono::milliseconds timeout) { return impl_->next(timeout); }

std::vector<delivery> consumer::next_batch(std::size_t max, std::chrono::milliseconds first_wait,
                                           std::chrono::milliseconds linger) {
    std::vector<delivery> out;
    if (max == 0) return out;
    auto first = impl_->next(first_wait);
    if (!first) return out;
    out.push_back(std::move(*first));
    const auto until = detail::clock::now() + linger;
    while (out.size() < max) {
        auto d = impl_->next(detail::ms_until(until));
        if (!d) break;
        // A reconnect in between makes the earlier ones unackable; keep them anyway, the
        // caller's acks will report it.
        out.push_back(std::move(*d));
    }
    return out;
}

bool consumer::ack(const delivery& d) {
    if (!impl_->current(d)) return false;
    impl_->unsettled.erase(d.delivery_tag);
    auto& c = *impl_->conn;
    return impl_->settle("basic.ack", amqp_basic_ack(c.state(), c.channel(), d.delivery_tag, 0));
}

bool consumer::ack_up_to(const delivery& last) {
    if (!impl_->current(last)) return false;
    auto& u = impl_->unsettled;
    u.erase(u.begin(), u.upper_bound(last.delivery_tag));
    auto& c = *impl_->conn;
    return impl_->settle("basic.ack", amqp_basic_ack(c.state(), c.channel(), last.delivery_tag, 1));
}

bool consumer::ack_all(const std::vector<delivery>& ds) {
    if (ds.empty()) return true;
    auto& m = *impl_;
    const delivery* last = &ds.front();
    bool whole = true;
    for (const auto& d : ds) {
        whole = whole && m.current(d) && m.unsettled.count(d.delivery_tag);
        if (d.delivery_tag > last->delivery_tag) last = &d;
    }
    // One "multiple" ack when these are exactly the unsettled deliveries up to the highest.
    if (whole && static_cast<std::size_t>(std::distance(m.unsettled.begin(), m.unsettled.upper_bound(last->delivery_tag))) ==
                     ds.size()) {
        return ack_up_to(*last);
    }
    bool ok = true;
    for (const auto& d : ds) ok = ack(d) && ok;
    return ok;
}

bool consumer::nack(const delivery& d, bool requeue) {
    if (!impl_->current(d)) return false;
    impl_->unsettled.erase(d.delivery_tag);
    auto& c = *impl_->conn;
    return impl_->settle("basic.nack",
                         amqp_basic_nack(c.state(), c.channel(), d.delivery_tag, 0, requeue ? 1 : 0));
}

void consumer::cancel() {
    auto& m = *impl_;
    if (m.cancelled) return;
    m.cancelled = true;
    if (!m.conn) return;
    // Deliveries sent before cancel-ok are queued by rabbitmq-c while it waits for the
    // reply; next() still hands them out.
    amqp_basic_cancel(m.conn->state(), m.conn->channel(), detail::bytes_of(m.consumer_tag));
    try {
        m.conn->check_last_rpc("basic.cancel");
        log::info("amqp consumer cancelled", {{"queue", m.queue}});
    } catch (const detail::broker_error& e) {
        m.drop(e.what());
    }
}

void consumer::close() {
    impl_->closed = true;
    impl_->conn.reset();
}

std::uint64_t consumer::generation() const { return impl_->generation; }

}  // namespace txp::amqp
