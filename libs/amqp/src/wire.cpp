// rabbitmq-c 0.11 plumbing shared by the publisher, the consumer and admin.
#include "wire.hpp"

#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include "txp/common/log.hpp"

namespace txp::amqp::detail {
namespace {

void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

std::string server_close_text(const amqp_rpc_reply_t& r, int* code) {
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
        *code = m->reply_code;
        return "connection closed by broker: " + std::to_string(m->reply_code) + " " + to_string(m->reply_text);
    }
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
        *code = m->reply_code;
        return "channel closed by broker: " + std::to_string(m->reply_code) + " " + to_string(m->reply_text);
    }
    *code = 0;
    return "unexpected broker method " + std::to_string(r.reply.id);
}

}  // namespace

std::string to_string(amqp_bytes_t b) {
    if (b.len == 0 || b.bytes == nullptr) return {};
    return std::string(static_cast<const char*>(b.bytes), b.len);
}

amqp_bytes_t bytes_of(const std::string& s) {
    amqp_bytes_t b;
    b.len = s.size();
    b.bytes = const_cast<char*>(s.data());
    return b;
}

struct timeval to_timeval(std::chrono::milliseconds d) {
    if (d.count() < 0) d = std::chrono::milliseconds(0);
    struct timeval tv;
    tv.tv_sec = static_cast<time_t>(d.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
    return tv;
}

bool sleep_until_before(clock::time_point until, clock::time_point deadline) {
    if (until <= deadline) {
        std::this_thread::sleep_until(until);
        return true;
    }
    std::this_thread::sleep_until(deadline);
    return false;
}

namespace {

void put8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
void put16(std::string& out, std::uint16_t v) {
    put8(out, static_cast<std::uint8_t>(v >> 8));
    put8(out, static_cast<std::uint8_t>(v));
}
void put32(std::string& out, std::uint32_t v) {
    put16(out, static_cast<std::uint16_t>(v >> 16));
    put16(out, static_cast<std::uint16_t>(v));
}
void put64(std::string& out, std::uint64_t v) {
    put32(out, static_cast<std::uint32_t>(v >> 32));
    put32(out, static_cast<std::uint32_t>(v));
}

// A frame (AMQP 0-9-1, 2.3.5): type, channel, payload size, payload, frame-end octet.
// begin_frame writes the header with room for the size; end_frame fills it in and closes.
std::size_t begin_frame(std::string& out, std::uint8_t type, amqp_channel_t channel) {
    put8(out, type);
    put16(out, channel);
    put32(out, 0);
    return out.size();
}
void end_frame(std::string& out, std::size_t payload_at) {
    auto size = static_cast<std::uint32_t>(out.size() - payload_at);
    for (int k = 0; k < 4; ++k) out[payload_at - 4 + k] = static_cast<char>(size >> (24 - 8 * k));
    put8(out, AMQP_FRAME_END);
}

}  // namespace

void connection::append_publish(std::string& out, const std::string& exchange, const std::string& routing_key,
                                bool mandatory, const amqp_basic_properties_t* props, const std::string& body) {
    // Room for the method's arguments or the encoded properties: as much as one frame holds,
    // as rabbitmq-c allows (properties that do not fit a frame cannot be sent at all).
    const auto frame_max = static_cast<std::size_t>(std::max(4096, amqp_get_frame_max(state_)));
    if (scratch_.size() < frame_max) scratch_.resize(frame_max);
    char* buf = scratch_.data();
    amqp_basic_publish_t m{};
    m.exchange = bytes_of(exchange);
    m.routing_key = bytes_of(routing_key);
    m.mandatory = mandatory ? 1 : 0;
    auto at = begin_frame(out, AMQP_FRAME_METHOD, channel_);
    put32(out, AMQP_BASIC_PUBLISH_METHOD);
    int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &m, amqp_bytes_t{scratch_.size(), buf});
    if (n < 0) throw broker_error(error_kind::channel, 0, std::string("encoding basic.publish: ") + amqp_error_string2(n));
    out.append(buf, static_cast<std::size_t>(n));
    end_frame(out, at);

    at = begin_frame(out, AMQP_FRAME_HEADER, channel_);
    put16(out, AMQP_BASIC_CLASS);
    put16(out, 0);  // weight
    put64(out, body.size());
    n = amqp_encode_properties(AMQP_BASIC_CLASS, const_cast<amqp_basic_properties_t*>(props), amqp_bytes_t{scratch_.size(), buf});
    if (n < 0) throw broker_error(error_kind::channel, 0, std::string("encoding message properties: ") + amqp_error_string2(n));
    out.append(buf, static_cast<std::size_t>(n));
    end_frame(out, at);

    // Body frames of at most frame_max - 8 octets (the frame's header and end).
    const auto chunk = frame_max - 8;
    for (std::size_t from = 0; from < body.size(); from += chunk) {
        at = begin_frame(out, AMQP_FRAME_BODY, channel_);
        out.append(body, from, chunk);
        end_frame(out, at);
    }
}

void connection::write_frames(const std::string& frames, clock::time_point deadline) {
    const int fd = amqp_get_sockfd(state_);
    std::size_t at = 0;
    while (at < frames.size()) {
        ssize_t n = ::send(fd, frames.data() + at, frames.size() - at, MSG_NOSIGNAL);
        if (n > 0) {
            at += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            auto left = static_cast<int>(ms_until(deadline).count());
            int ready = left > 0 ? ::poll(&p, 1, left) : 0;
            if (ready > 0 || (ready < 0 && errno == EINTR)) continue;
            broken_ = true;
            throw broker_error(error_kind::connection, 0, "publishing: the socket stayed full until the deadline");
        }
        broken_ = true;
        throw broker_error(error_kind::connection, 0, std::string("publishing: ") + std::strerror(errno));
    }
}

connection::connection(const connection_options& opts, std::size_t node) {
    ignore_sigpipe_once();
    const endpoint& ep = opts.node(node);
    state_ = amqp_new_connection();
    if (state_ == nullptr) throw broker_error(error_kind::connection, 0, "amqp_new_connection failed");
    try {
        amqp_socket_t* socket = amqp_tcp_socket_new(state_);
        if (socket == nullptr) throw broker_error(error_kind::connection, 0, "amqp_tcp_socket_new failed");
        struct timeval connect_timeout = to_timeval(std::chrono::seconds(5));
        int rc = amqp_socket_open_noblock(socket, ep.host.c_str(), ep.port, &connect_timeout);
        if (rc != AMQP_STATUS_OK) {
            throw broker_error(error_kind::connection, 0,
                               std::string("cannot connect to ") + ep.describe() + ": " + amqp_error_string2(rc));
        }
        // Bounds the handshake and every synchronous method, so that a stalled broker
        // cannot hang a close or a declare forever.
        struct timeval rpc_timeout = to_timeval(std::chrono::seconds(10));
        check_status(amqp_set_handshake_timeout(state_, &rpc_timeout), "amqp_set_handshake_timeout");
        check_status(amqp_set_rpc_timeout(state_, &rpc_timeout), "amqp_set_rpc_timeout");

        // Client properties: the name shown in the console, and the capability that makes
        // the broker tell us when it cancels our consumer (queue deleted).
        amqp_table_entry_t caps[1];
        caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
        caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        caps[0].value.value.boolean = 1;
        amqp_table_entry_t entries[2];
        int n = 0;
        entries[n].key = amqp_cstring_bytes("capabilities");
        entries[n].value.kind = AMQP_FIELD_KIND_TABLE;
        entries[n].value.value.table.num_entries = 1;
        entries[n].value.value.table.entries = caps;
        ++n;
        if (!opts.connection_name.empty()) {
            entries[n].key = amqp_cstring_bytes("connection_name");
            entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
            entries[n].value.value.bytes = bytes_of(opts.connection_name);
            ++n;
        }
        amqp_table_t client_properties{n, entries};
        amqp_rpc_reply_t login =
            amqp_login_with_properties(state_, ep.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE,
                                       static_cast<int>(opts.heartbeat.count()), &client_properties,
                                       AMQP_SASL_METHOD_PLAIN, ep.user.c_str(), ep.password.c_str());
        if (login.reply_type != AMQP_RESPONSE_NORMAL) {
            // A refused login is a connection error too: the broker closes the socket.
            try {
                check(login, "login");
            } catch (const broker_error& e) {
                throw broker_error(error_kind::connection, e.reply_code(),
                                   std::string("login to ") + ep.describe() + " as " + ep.user +
                                       " failed: " + e.what());
            }
        }
        logged_in_ = true;
        amqp_channel_open(state_, channel_);
        check_last_rpc("channel.open");
    } catch (...) {
        broken_ = true;
        amqp_destroy_connection(state_);
        state_ = nullptr;
        throw;
    }
}

connection::~connection() {
    if (state_ == nullptr) return;
    if (!broken_ && logged_in_) {
        // Best effort and bounded by the rpc timeout; a failure here changes nothing.
        struct timeval close_timeout = to_timeval(std::chrono::seconds(2));
        amqp_set_rpc_timeout(state_, &close_timeout);
        amqp_rpc_reply_t r = amqp_channel_close(state_, channel_, AMQP_REPLY_SUCCESS);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(state_);
}

void connection::check_status(int status, const char* what) {
    if (status >= 0) return;
    broken_ = true;
    throw broker_error(error_kind::connection, 0, std::string(what) + ": " + amqp_error_string2(status));
}

void connection::check(amqp_rpc_reply_t r, const char* what) {
    switch (r.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return;
        case AMQP_RESPONSE_NONE:
            broken_ = true;
            throw broker_error(error_kind::connection, 0, std::string(what) + ": missing reply");
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            broken_ = true;
            throw broker_error(error_kind::connection, 0,
                               std::string(what) + ": " + amqp_error_string2(r.library_error));
        case AMQP_RESPONSE_SERVER_EXCEPTION: {
            int code = 0;
            std::string text = std::string(what) + ": " + server_close_text(r, &code);
            if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                amqp_channel_close_ok_t ok{};
                if (amqp_send_method(state_, channel_, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) < 0) broken_ = true;
                throw broker_error(broken_ ? error_kind::connection : error_kind::channel, code, text);
            }
            amqp_connection_close_ok_t ok{};
            amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            broken_ = true;
            throw broker_error(error_kind::connection, code, text);
        }
    }
    broken_ = true;
    throw broker_error(error_kind::connection, 0, std::string(what) + ": unknown reply type");
}

void connection::on_close_frame(const amqp_frame_t& frame) {
    amqp_rpc_reply_t r{};
    r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
    r.reply = frame.payload.method;
    check(r, "broker");
    // check() always throws for a server exception.
    throw broker_error(error_kind::connection, 0, "broker closed");
}

void connection::reopen_channel() {
    // Channel numbers are not reused right away: a late frame for the old one is then
    // recognisably stale.
    channel_ = static_cast<amqp_channel_t>(channel_ == 65535 ? 1 : channel_ + 1);
    amqp_channel_open(state_, channel_);
    check_last_rpc("channel.open");
}

void connection::declare(const topology& t) {
    for (const auto& e : t.exchanges) {
        amqp_exchange_declare(state_, channel_, bytes_of(e.name), bytes_of(e.type), 0, e.durable ? 1 : 0, 0, 0,
                              amqp_empty_table);
        check_last_rpc(("exchange.declare " + e.name).c_str());
    }
    for (const auto& q : t.queues) {
        // The queue's arguments, pointing into `q` (which outlives the declare).
        amqp_table_entry_t args[7];
        int n = 0;
        auto text_arg = [&](const char* key, amqp_bytes_t value) {
            args[n].key = amqp_cstring_bytes(key);
            args[n].value.kind = AMQP_FIELD_KIND_UTF8;
            args[n].value.value.bytes = value;
            ++n;
        };
        auto int_arg = [&](const char* key, std::int64_t value) {
            args[n].key = amqp_cstring_bytes(key);
            args[n].value.kind = AMQP_FIELD_KIND_I64;
            args[n].value.value.i64 = value;
            ++n;
        };
        if (q.type == queue_type::quorum) {
            text_arg("x-queue-type", amqp_cstring_bytes("quorum"));
            if (q.delivery_limit) int_arg("x-delivery-limit", *q.delivery_limit);
            if (q.dead_letter_at_least_once) {
                text_arg("x-dead-letter-strategy", amqp_cstring_bytes("at-least-once"));
                text_arg("x-overflow", amqp_cstring_bytes("reject-publish"));
            }
        }
        if (q.message_ttl_ms) int_arg("x-message-ttl", *q.message_ttl_ms);
        if (q.dead_letter_exchange) text_arg("x-dead-letter-exchange", bytes_of(*q.dead_letter_exchange));
        if (q.dead_letter_routing_key) text_arg("x-dead-letter-routing-key", bytes_of(*q.dead_letter_routing_key));
        amqp_table_t table{n, args};
        amqp_queue_declare(state_, channel_, bytes_of(q.name), 0, q.durable ? 1 : 0, q.exclusive ? 1 : 0,
                           q.auto_delete ? 1 : 0, table);
        check_last_rpc(("queue.declare " + q.name).c_str());
    }
    for (const auto& b : t.bindings) {
        amqp_queue_bind(state_, channel_, bytes_of(b.queue), bytes_of(b.exchange), bytes_of(b.routing_key),
                        amqp_empty_table);
        check_last_rpc(("queue.bind " + b.queue + " <- " + b.exchange + "/" + b.routing_key).c_str());
    }
}

encoded_properties::encoded_properties(const properties& p) {
    props_._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props_.delivery_mode = p.persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
    auto set = [this](const std::string& s, amqp_flags_t flag, amqp_bytes_t& field) {
        if (s.empty()) return;
        props_._flags |= flag;
        field = bytes_of(s);
    };
    set(p.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, props_.content_type);
    set(p.message_id, AMQP_BASIC_MESSAGE_ID_FLAG, props_.message_id);
    set(p.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG, props_.correlation_id);
    set(p.type, AMQP_BASIC_TYPE_FLAG, props_.type);
    set(p.app_id, AMQP_BASIC_APP_ID_FLAG, props_.app_id);
    if (p.timestamp != 0) {
        props_._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        props_.timestamp = static_cast<uint64_t>(p.timestamp);
    }
    if (!p.headers.empty()) {
        entries_.reserve(p.headers.size());
        for (const auto& [key, value] : p.headers) {
            amqp_table_entry_t e{};
            e.key = bytes_of(key);
            if (const auto* s = std::get_if<std::string>(&value)) {
                e.value.kind = AMQP_FIELD_KIND_UTF8;
                e.value.value.bytes = bytes_of(*s);
            } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
                e.value.kind = AMQP_FIELD_KIND_I64;
                e.value.value.i64 = *i;
            } else {
                e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
                e.value.value.boolean = std::get<bool>(value) ? 1 : 0;
            }
            entries_.push_back(e);
        }
        props_._flags |= AMQP_BASIC_HEADERS_FLAG;
        props_.headers.num_entries = static_cast<int>(entries_.size());
        props_.headers.entries = entries_.data();
    }
}

properties decode_properties(const amqp_basic_properties_t& p) {
    properties out;
    out.content_type.clear();
    auto get = [&p](amqp_flags_t flag, const amqp_bytes_t& field) {
        return (p._flags & flag) ? to_string(field) : std::string();
    };
    out.content_type = get(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type);
    out.message_id = get(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id);
    out.correlation_id = get(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id);
    out.type = get(AMQP_BASIC_TYPE_FLAG, p.type);
    out.app_id = get(AMQP_BASIC_APP_ID_FLAG, p.app_id);
    if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) out.timestamp = static_cast<std::int64_t>(p.timestamp);
    out.persistent = (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) && p.delivery_mode == AMQP_DELIVERY_PERSISTENT;
    if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p.headers.num_entries; ++i) {
            const amqp_table_entry_t& e = p.headers.entries[i];
            std::string key = to_string(e.key);
            const amqp_field_value_t& v = e.value;
            switch (v.kind) {
                case AMQP_FIELD_KIND_UTF8:
                case AMQP_FIELD_KIND_BYTES: out.headers[key] = to_string(v.value.bytes); break;
                case AMQP_FIELD_KIND_BOOLEAN: out.headers[key] = v.value.boolean != 0; break;
                case AMQP_FIELD_KIND_I8: out.headers[key] = std::int64_t{v.value.i8}; break;
                case AMQP_FIELD_KIND_U8: out.headers[key] = std::int64_t{v.value.u8}; break;
                case AMQP_FIELD_KIND_I16: out.headers[key] = std::int64_t{v.value.i16}; break;
                case AMQP_FIELD_KIND_U16: out.headers[key] = std::int64_t{v.value.u16}; break;
                case AMQP_FIELD_KIND_I32: out.headers[key] = std::int64_t{v.value.i32}; break;
                case AMQP_FIELD_KIND_U32: out.headers[key] = std::int64_t{v.value.u32}; break;
                case AMQP_FIELD_KIND_I64: out.headers[key] = std::int64_t{v.value.i64}; break;
                case AMQP_FIELD_KIND_U64:
                case AMQP_FIELD_KIND_TIMESTAMP: out.headers[key] = static_cast<std::int64_t>(v.value.u64); break;
                default:
                    // Arrays, tables and floats (x-death, mostly) have no place in our
                    // variant; dropping them also keeps a retried message from growing.
                    break;
            }
        }
    }
    return out;
}

node_rotation::node_rotation(const connection_options& opts)
    : count_(opts.node_count()), retry_(opts.backoff_initial, opts.backoff_max) {}

std::chrono::milliseconds node_rotation::failed() {
    node_ = (node_ + 1) % count_;
    if (++failed_in_row_ % count_ != 0) return std::chrono::milliseconds(0);
    return retry_.next_delay();
}

void node_rotation::lost() {
    node_ = (node_ + 1) % count_;
    failed_in_row_ = 0;
}

void node_rotation::connected() {
    failed_in_row_ = 0;
    retry_.reset();
}

}  // namespace txp::amqp::detail
