// Synchronous broker chores for tools and tests over one short-lived connection.
#include "txp/amqp/admin.hpp"

#include "wire.hpp"

namespace txp::amqp {

struct admin::impl {
    connection_options opts;
    std::unique_ptr<detail::connection> conn;

    std::size_t node = 0;

    // Connects to the node that answered last, else to the next ones in turn (each once).
    detail::connection& get() {
        if (conn && conn->broken()) conn.reset();
        for (std::size_t tried = 0; !conn; ++tried) {
            try {
                conn = std::make_unique<detail::connection>(opts, node);
            } catch (const detail::broker_error&) {
                node = (node + 1) % opts.node_count();
                if (tried + 1 >= opts.node_count()) throw;
            }
        }
        return *conn;
    }

    // Runs `f`; a channel error is reported but leaves a fresh channel behind.
    template <typename F>
    auto call(F f) {
        detail::connection& c = get();
        try {
            return f(c);
        } catch (const detail::broker_error& e) {
            if (e.kind() == detail::error_kind::channel) {
                try {
                    c.reopen_channel();
                } catch (const detail::broker_error&) {
                    conn.reset();
                }
            } else {
                conn.reset();
            }
            throw std::runtime_error(e.what());
        }
    }
};

admin::admin(connection_options opts) : impl_(std::make_unique<impl>()) {
    impl_->opts = std::move(opts);
    try {
        impl_->get();
    } catch (const detail::broker_error& e) {
        throw std::runtime_error(e.what());
    }
}

admin::~admin() = default;

void admin::declare(const topology& t) {
    impl_->call([&](detail::connection& c) {
        c.declare(t);
        return 0;
    });
}

std::uint32_t admin::queue_depth(const std::string& queue) {
    return impl_->call([&](detail::connection& c) {
        amqp_queue_declare_ok_t* ok =
            amqp_queue_declare(c.state(), c.channel(), detail::bytes_of(queue), /*passive=*/1, 0, 0, 0, amqp_empty_table);
        c.check_last_rpc(("queue.declare (passive) " + queue).c_str());
        return ok->message_count;
    });
}

void admin::purge(const std::string& queue) {
    impl_->call([&](detail::connection& c) {
        amqp_queue_purge(c.state(), c.channel(), detail::bytes_of(queue));
        c.check_last_rpc(("queue.purge " + queue).c_str());
        return 0;
    });
}

void admin::delete_queue(const std::string& queue) {
    impl_->call([&](detail::connection& c) {
        amqp_queue_delete(c.state(), c.channel(), detail::bytes_of(queue), 0, 0);
        c.check_last_rpc(("queue.delete " + queue).c_str());
        return 0;
    });
}

std::optional<delivery> admin::get(const std::string& queue) {
    return impl_->call([&](detail::connection& c) -> std::optional<delivery> {
        amqp_maybe_release_buffers(c.state());
        amqp_rpc_reply_t r = amqp_basic_get(c.state(), c.channel(), detail::bytes_of(queue), /*no_ack=*/0);
        c.check(r, ("basic.get " + queue).c_str());
        if (r.reply.id != AMQP_BASIC_GET_OK_METHOD) return std::nullopt;
        const auto* ok = static_cast<const amqp_basic_get_ok_t*>(r.reply.decoded);
        delivery d;
        d.exchange = detail::to_string(ok->exchange);
        d.routing_key = detail::to_string(ok->routing_key);
        d.redelivered = ok->redelivered != 0;
        d.delivery_tag = ok->delivery_tag;
        d.queue = queue;
        amqp_message_t message;
        c.check(amqp_read_message(c.state(), c.channel(), &message, 0), "reading a fetched message");
        d.body = detail::to_string(message.body);
        d.props = detail::decode_properties(message.properties);
        amqp_destroy_message(&message);
        return d;
    });
}

void admin::ack(std::uint64_t delivery_tag) {
    impl_->call([&](detail::connection& c) {
        c.check_status(amqp_basic_ack(c.state(), c.channel(), delivery_tag, 0), "basic.ack");
        return 0;
    });
}

void admin::reject(std::uint64_t delivery_tag, bool requeue) {
    impl_->call([&](detail::connection& c) {
        c.check_status(amqp_basic_reject(c.state(), c.channel(), delivery_tag, requeue ? 1 : 0), "basic.reject");
        return 0;
    });
}

bool broker_reachable(const connection_options& opts, const std::string& queue) {
    try {
        admin a(opts);
        a.queue_depth(queue);
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace txp::amqp
