// The HTTP/1.1 server. Asio owns the sockets; Beast's request parser turns bytes into
// requests; responses are written as plain bytes (fixed length or chunked). One strand per
// connection serialises everything that touches it, so a response_writer may be used from
// any thread: it only posts onto that strand.
#include "txp/http/server.hpp"

#include "detail.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <atomic>
#include <cstring>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace txp::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

// A stream whose client reads slower than the handler writes stops accepting chunks here.
constexpr std::size_t max_stream_backlog = 4 * 1024 * 1024;
// How long a connection we are closing keeps reading (and discarding) so that the client
// sees our error response rather than a reset.
constexpr std::chrono::milliseconds linger_time{1000};

class connection;

// State shared by the server, its connections and the writers handlers hold. Connections
// keep it alive, so the io_context outlives every socket even when a handler thread keeps a
// writer after the server object is gone.
struct core {
    core(server_options o, handler h)
        : opts(std::move(o)), on_request(std::move(h)), ioc(std::max(1, opts.threads)), acceptor(asio::make_strand(ioc)) {}

    server_options opts;
    handler on_request;
    asio::io_context ioc;
    tcp::acceptor acceptor;
    std::atomic<bool> stopping{false};

    // Posts from other threads pass this gate, so none land after the final drain in stop().
    std::mutex post_mu;
    bool dead = false;

    std::mutex conns_mu;
    std::condition_variable conns_cv;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection>> conns;
    std::uint64_t next_id = 0;

    void connection_closed(std::uint64_t id) {
        std::lock_guard lk(conns_mu);
        conns.erase(id);
        if (conns.empty()) conns_cv.notify_all();
    }
};

std::string method_label(std::string_view m) {
    for (const char* known : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
        if (m == known) return known;
    }
    return "other";
}

std::string reason_phrase(unsigned status) {
    auto s = bhttp::int_to_status(status);
    if (s == bhttp::status::unknown) return "Unknown";
    auto r = bhttp::obsolete_reason(s);
    return std::string(r.data(), r.size());
}

bool safe_header_text(std::string_view s) {
    for (char c : s) {
        if (c == '\r' || c == '\n' || c == '\0') return false;
    }
    return true;
}

bool safe_header_name(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (c <= ' ' || c == ':' || c == 0x7f) return false;
    }
    return true;
}

// Headers the server controls; a handler's own values for these are dropped.
bool reserved_header(std::string_view name) {
    for (const char* r : {"content-length", "transfer-encoding", "connection", "x-request-id", "content-type", "server",
                          "x-content-type-options"}) {
        if (detail::iequals(name, r)) return true;
    }
    return false;
}

bool body_allowed(unsigned status) { return !(status < 200 || status == 204 || status == 304); }

enum class phase { idle, reading, handling, streaming, lingering, closed };

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(std::shared_ptr<core> c, tcp::socket s, std::uint64_t id)
        : core_(std::move(c)), socket_(std::move(s)), read_timer_(socket_.get_executor()),
          write_timer_(socket_.get_executor()), id_(id) {}

    // Runs f on this connection's strand unless the server is past its final drain.
    template <typename F>
    bool post(F&& f) {
        std::lock_guard lk(core_->post_mu);
        if (core_->dead) return false;
        asio::post(socket_.get_executor(), std::forward<F>(f));
        return true;
    }

    bool gone() const { return gone_.load(); }
    std::atomic<std::size_t>& backlog() { return backlog_; }

    void start() {
        error_code ec;
        auto ep = socket_.remote_endpoint(ec);
        if (!ec) remote_address_ = ep.address().to_string();
        socket_.set_option(tcp::no_delay(true), ec);
        reset_parser();
        phase_ = phase::idle;
        if (core_->stopping.load()) {
            close();
            return;
        }
        // The first request of a connection must arrive within read_timeout of connecting.
        arm_read_timer(core_->opts.read_timeout);
        do_read();
    }

    // From stop(): idle keep-alive connections close now, open streams end; requests being
    // read or handled finish and then close.
    void on_stop() {
        if (phase_ == phase::idle) {
            close();
        } else if (phase_ == phase::streaming) {
            gone_ = true;
            stream_finish(seq_);
        }
    }

    // After the io threads have been joined: nothing else runs on the strand any more.
    void force_close() { close(); }

    void deliver_response(std::uint64_t seq, response r);
    void stream_start(std::uint64_t seq, unsigned status, std::vector<header> headers, std::string content_type);
    void stream_chunk(std::uint64_t seq, std::string chunk);
    void stream_finish(std::uint64_t seq);

private:
    void reset_parser() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(core_->opts.header_limit, UINT32_MAX)));
        parser_->body_limit(static_cast<std::uint64_t>(core_->opts.body_limit));
        parser_->eager(true);
        continue_sent_ = false;
    }

    std::size_t buffer_cap() const { return core_->opts.header_limit + core_->opts.body_limit + 16 * 1024; }

    void do_read() {
        if (reading_ || phase_ == phase::closed) return;
        reading_ = true;
        // Into a buffer of its own: buffer_ is consumed (and its storage reset or moved) while
        // this read is outstanding, which would land the bytes where commit() no longer looks.
        socket_.async_read_some(asio::buffer(read_buf_),
                                [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_read(ec, n); });
    }

    void on_read(const error_code& ec, std::size_t n) {
        reading_ = false;
        if (phase_ == phase::closed) return;
        if (ec) {
            // The client closed or reset. While a handler works on its request this is how we
            // learn that nobody is waiting for the answer.
            if (phase_ == phase::reading && ec != asio::error::eof) {
                log::debug("http client connection failed mid-request", {{"error", ec.message()}});
            }
            close();
            return;
        }
        auto room = buffer_.prepare(n);
        std::memcpy(room.data(), read_buf_.data(), n);
        buffer_.commit(n);
        switch (phase_) {
            case phase::lingering:
                buffer_.consume(buffer_.size());
                do_read();
                return;
            case phase::handling:
            case phase::streaming:
                // Pipelined bytes wait for the response; keep reading only to notice a hang-up.
                if (buffer_.size() < buffer_cap()) do_read();
                return;
            default:
                process_buffer();
        }
    }

    void process_buffer() {
        if (buffer_.size() == 0) {
            do_read();
            return;
        }
        if (phase_ == phase::idle) {
            phase_ = phase::reading;
            request_started_ = steady::now();
            arm_read_timer(core_->opts.read_timeout);
        }
        error_code ec;
        while (buffer_.size() > 0 && !parser_->is_done()) {
            std::size_t used = parser_->put(buffer_.data(), ec);
            buffer_.consume(used);
            if (ec == bhttp::error::need_more) {
                ec = {};
                break;
            }
            if (ec || used == 0) break;
        }
        if (ec) {
            reject_unparsable(ec);
            return;
        }
        if (parser_->is_header_done() && !parser_->is_done() && !continue_sent_) {
            auto expect = parser_->get()[bhttp::field::expect];
            if (detail::iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
                continue_sent_ = true;
                queue("HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        if (parser_->is_done()) {
            dispatch();
            return;
        }
        do_read();
    }

    std::string request_id_from_parser() const {
        if (parser_ && parser_->is_header_done()) {
            auto v = parser_->get()["X-Request-Id"];
            std::string_view id(v.data(), v.size());
            if (is_valid_request_id(id)) return std::string(id);
        }
        return ids::uuid_v4();
    }

    void begin_log_record(std::string method, std::string path, std::string request_id) {
        current_.active = true;
        current_.method = std::move(method);
        current_.path = std::move(path);
        current_.request_id = std::move(request_id);
        current_.status = 0;
        current_.started = phase_ == phase::reading ? request_started_ : steady::now();
    }

    // Bytes that are not a request we accept: answer with a problem and close.
    void reject_unparsable(const error_code& ec) {
        unsigned status = 400;
        const char* type = "bad-request";
        const char* title = "Bad Request";
        std::string detail = "The request could not be parsed as HTTP/1.1.";
        if (ec == bhttp::error::header_limit) {
            status = 431;
            type = "header-too-large";
            title = "Request Header Fields Too Large";
            detail = "The request header is larger than " + std::to_string(core_->opts.header_limit) + " bytes.";
        } else if (ec == bhttp::error::body_limit) {
            status = 413;
            type = "payload-too-large";
            title = "Payload Too Large";
            detail = "The request body is larger than " + std::to_string(core_->opts.body_limit) + " bytes.";
        }
        std::string method = "other";
        std::string path;
        if (parser_->is_header_done()) {
            auto m = parser_->get().method_string();
            method.assign(m.data(), m.size());
            auto t = parser_->get().target();
            path = percent_decode(std::string_view(t.data(), t.size()).substr(0, std::string_view(t.data(), t.size()).find('?')), false);
        }
        begin_log_record(method, path, request_id_from_parser());
        send_final_error(problem(status, type, title, detail, current_.request_id));
    }

    // A problem response after which the connection closes (parse errors, 408).
    void send_final_error(response r) {
        disarm_read_timer();
        phase_ = phase::handling;
        keep_alive_ = false;
        head_ = false;
        ++seq_;
        deliver_response(seq_, std::move(r));
    }

    void dispatch();

    void arm_read_timer(std::chrono::milliseconds d) {
        auto gen = ++read_gen_;
        read_timer_.expires_after(d);
        read_timer_.async_wait([self = shared_from_this(), gen](const error_code& ec) {
            if (ec || gen != self->read_gen_) return;
            self->on_read_timeout();
        });
    }
    void disarm_read_timer() {
        ++read_gen_;
        read_timer_.cancel();
    }

    void on_read_timeout() {
        switch (phase_) {
            case phase::reading: {
                log::debug("http request read timed out", {{"remote", remote_address_}});
                begin_log_record("other", "", ids::uuid_v4());
                send_final_error(problem(408, "request-timeout", "Request Timeout",
                                         "The request was not received in time.", current_.request_id));
                return;
            }
            case phase::idle:
            case phase::lingering:
                close();
                return;
            default:
                return;
        }
    }

    // counted: how many of these bytes the stream backlog accounted for.
    void queue(std::string bytes, std::size_t counted = 0) {
        out_.push_back({std::move(bytes), counted});
        start_write();
    }

    void start_write() {
        if (writing_ || out_.empty() || phase_ == phase::closed) return;
        writing_ = true;
        auto gen = ++write_gen_;
        write_timer_.expires_after(core_->opts.idle_timeout);
        write_timer_.async_wait([self = shared_from_this(), gen](const error_code& ec) {
            if (ec || gen != self->write_gen_) return;
            log::debug("http write timed out; closing", {{"remote", self->remote_address_}});
            self->close();
        });
        asio::async_write(socket_, asio::buffer(out_.front().bytes),
                          [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_write(ec); });
    }

    void on_write(const error_code& ec) {
        writing_ = false;
        ++write_gen_;
        write_timer_.cancel();
        if (phase_ == phase::closed) return;
        if (ec) {
            close();
            return;
        }
        backlog_ -= std::min(out_.front().counted, backlog_.load());
        out_.pop_front();
        if (!out_.empty()) {
            start_write();
        } else if (response_complete_) {
            after_response();
        }
    }

    void after_response() {
        response_complete_ = false;
        log_completed(false);
        // stop() may have begun while this response was being written, after on_stop saw
        // the connection busy: it must not go back to idle then.
        if (close_after_ || core_->stopping.load()) {
            linger_close();
            return;
        }
        phase_ = phase::idle;
        gone_ = false;
        reset_parser();
        if (buffer_.size() > 0) {
            process_buffer();
        } else {
            arm_read_timer(core_->opts.idle_timeout);
            do_read();
        }
    }

    void linger_close() {
        phase_ = phase::lingering;
        error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        if (ec) {
            close();
            return;
        }
        buffer_.consume(buffer_.size());
        arm_read_timer(linger_time);
        do_read();
    }

    void close() {
        if (phase_ == phase::closed) return;
        phase_ = phase::closed;
        gone_ = true;
        ++read_gen_;
        ++write_gen_;
        read_timer_.cancel();
        write_timer_.cancel();
        error_code ec;
        socket_.shutdown(tcp::socket::shutdown_both, ec);
        socket_.close(ec);
        out_.clear();
        backlog_ = 0;
        // A response that was under way when the client went away is still accounted for.
        if (current_.active && current_.status != 0) log_completed(true);
        core_->connection_closed(id_);
    }

    void log_completed(bool client_gone) {
        if (!current_.active) return;
        current_.active = false;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - current_.started).count();
        auto method = method_label(current_.method);
        auto& reg = metrics::global();
        reg.get_counter("txp_http_requests_total", "HTTP requests served, by method and status",
                        {{"method", method}, {"status", std::to_string(current_.status)}})
            .inc();
        reg.get_histogram("txp_http_request_duration_seconds", "Time from the first byte of a request to its last response byte")
            .observe_us(static_cast<std::uint64_t>(us));
        if (log::enabled(log::level::debug)) {
            log::debug("http request", {{"method", current_.method},
                                        {"path", current_.path},
                                        {"status", current_.status},
                                        {"duration_us", static_cast<std::int64_t>(us)},
                                        {"request_id", current_.request_id},
                                        {"client_gone", client_gone}});
        }
    }

    std::string head(unsigned status, const std::vector<header>& headers, const std::string& content_type,
                     std::optional<std::size_t> content_length) {
        std::string out;
        out.reserve(256);
        out += "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
        out += "Server: " + core_->opts.server_name + "\r\n";
        if (!content_type.empty() && safe_header_text(content_type)) out += "Content-Type: " + content_type + "\r\n";
        out += "X-Request-Id: " + current_.request_id + "\r\n";
        // Browsers take the Content-Type as given (no sniffing a JSON error into HTML).
        out += "X-Content-Type-Options: nosniff\r\n";
        bool has_cache_control = false;
        for (const auto& h : headers) {
            if (reserved_header(h.name)) continue;
            if (!safe_header_name(h.name) || !safe_header_text(h.value)) {
                log::warn("http handler set an invalid header; dropped", {{"header", h.name}, {"request_id", current_.request_id}});
                continue;
            }
            if (detail::iequals(h.name, "cache-control")) has_cache_control = true;
            out += h.name + ": " + h.value + "\r\n";
        }
        if (!has_cache_control && detail::is_json_content_type(content_type)) out += "Cache-Control: no-store\r\n";
        if (content_length) {
            if (body_allowed(status)) out += "Content-Length: " + std::to_string(*content_length) + "\r\n";
        } else {
            out += "Transfer-Encoding: chunked\r\n";
        }
        out += close_after_ ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
        out += "\r\n";
        return out;
    }

    struct log_record {
        bool active = false;
        std::string method, path, request_id;
        unsigned status = 0;
        steady::time_point started;
    };

    // Declared first so that it is destroyed last: the io_context must outlive the socket.
    std::shared_ptr<core> core_;
    tcp::socket socket_;
    asio::steady_timer read_timer_;
    asio::steady_timer write_timer_;
    std::uint64_t id_;
    std::string remote_address_;

    beast::flat_buffer buffer_;
    std::array<char, 16 * 1024> read_buf_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    phase phase_ = phase::idle;
    bool reading_ = false;
    bool writing_ = false;
    bool continue_sent_ = false;
    bool keep_alive_ = true;
    bool head_ = false;
    bool close_after_ = false;
    bool response_complete_ = false;
    struct pending_write {
        std::string bytes;
        std::size_t counted;
    };
    std::deque<pending_write> out_;
    std::uint64_t read_gen_ = 0;
    std::uint64_t write_gen_ = 0;
    std::uint64_t seq_ = 0;  // which request's writer may answer
    steady::time_point request_started_;
    log_record current_;

    std::atomic<bool> gone_{false};
    std::atomic<std::size_t> backlog_{0};
};

// The writer a handler holds: claims the one response, then posts onto the strand.
class connection_writer final : public response_writer {
public:
    connection_writer(std::shared_ptr<connection> c, std::uint64_t seq, std::string request_id)
        : conn_(std::move(c)), seq_(seq), request_id_(std::move(request_id)) {}

    ~connection_writer() override {
        int st = state_.load();
        if (st == fresh) {
            log::error("http handler dropped its response writer without responding", {{"request_id", request_id_}});
            deliver(problem(500, "internal", "Internal Server Error", "The server could not complete the request.", request_id_));
        } else if (st == streaming) {
            conn_->post([c = conn_, s = seq_] { c->stream_finish(s); });
        }
    }

    void send(response r) override {
        if (!claim(sent)) {
            log::warn("http response already sent; extra send ignored", {{"request_id", request_id_}});
            return;
        }
        deliver(std::move(r));
    }

    // For the server itself: a 500 if the handler threw before answering.
    void fail_internal() {
        if (claim(sent)) {
            deliver(problem(500, "internal", "Internal Server Error", "The server could not complete the request.", request_id_));
        } else if (state_.load() == streaming) {
            finish();
        }
    }

    void start_stream(unsigned status, std::vector<header> headers, std::string content_type) override {
        if (!claim(streaming)) {
            log::warn("http response already sent; start_stream ignored", {{"request_id", request_id_}});
            return;
        }
        conn_->post([c = conn_, s = seq_, status, h = std::move(headers), ct = std::move(content_type)]() mutable {
            c->stream_start(s, status, std::move(h), std::move(ct));
        });
    }

    bool write(std::string chunk) override {
        if (state_.load() != streaming || conn_->gone()) return false;
        if (conn_->backlog().load() > max_stream_backlog) return false;
        if (chunk.empty()) return true;  // an empty chunk would end the stream
        conn_->backlog() += chunk.size();
        bool posted = conn_->post([c = conn_, s = seq_, ch = std::move(chunk)]() mutable { c->stream_chunk(s, std::move(ch)); });
        return posted && !conn_->gone();
    }

    void finish() override {
        int expected = streaming;
        if (!state_.compare_exchange_strong(expected, finished)) return;
        conn_->post([c = conn_, s = seq_] { c->stream_finish(s); });
    }

    bool client_gone() const override { return conn_->gone(); }

private:
    enum : int { fresh = 0, sent = 1, streaming = 2, finished = 3 };

    bool claim(int next) {
        int expected = fresh;
        return state_.compare_exchange_strong(expected, next);
    }

    void deliver(response r) {
        conn_->post([c = conn_, s = seq_, r = std::move(r)]() mutable { c->deliver_response(s, std::move(r)); });
    }

    std::shared_ptr<connection> conn_;
    std::uint64_t seq_;
    std::string request_id_;
    std::atomic<int> state_{fresh};
};

void connection::dispatch() {
    disarm_read_timer();
    phase_ = phase::handling;
    auto msg = parser_->release();
    parser_.reset();

    request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    std::string_view target(req.target);
    auto qmark = target.find('?');
    req.path = percent_decode(target.substr(0, qmark), false);
    if (qmark != std::string_view::npos) req.query = std::string(target.substr(qmark + 1));
    for (const auto& f : msg) {
        req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    }
    req.body = std::move(msg.body());
    req.remote_address = remote_address_;
    auto client_id = req.header_value("X-Request-Id");
    req.request_id = client_id && is_valid_request_id(*client_id) ? std::string(*client_id) : ids::uuid_v4();

    keep_alive_ = msg.keep_alive();
    head_ = req.method == "HEAD";
    begin_log_record(req.method, req.path, req.request_id);
    ++seq_;

    // Keep reading while the handler works, to notice a client that hangs up.
    do_read();

    auto writer = std::make_shared<connection_writer>(shared_from_this(), seq_, req.request_id);
    log::scope tag("", req.request_id);
    try {
        core_->on_request(std::move(req), writer);
    } catch (const std::exception& e) {
        log::error("http handler threw", {{"request_id", current_.request_id}, {"path", current_.path}, {"error", e.what()}});
        writer->fail_internal();
    } catch (...) {
        log::error("http handler threw a non-exception", {{"request_id", current_.request_id}, {"path", current_.path}});
        writer->fail_internal();
    }
}

void connection::deliver_response(std::uint64_t seq, response r) {
    if (seq != seq_) return;
    if (phase_ == phase::closed) {
        // The client left before the answer was ready: account for it, send nothing.
        if (current_.active) {
            current_.status = r.status;
            log_completed(true);
        }
        return;
    }
    if (phase_ != phase::handling) return;
    current_.status = r.status;
    close_after_ = !keep_alive_ || core_->stopping.load();
    std::string bytes = head(r.status, r.headers, r.content_type, r.body.size());
    if (!head_ && body_allowed(r.status)) bytes += r.body;
    response_complete_ = true;
    queue(std::move(bytes));
}

void connection::stream_start(std::uint64_t seq, unsigned status, std::vector<header> headers, std::string content_type) {
    if (seq != seq_ || phase_ != phase::handling) {
        if (seq == seq_ && phase_ == phase::closed && current_.active) {
            current_.status = status;
            log_completed(true);
        }
        return;
    }
    current_.status = status;
    close_after_ = !keep_alive_ || core_->stopping.load();
    if (head_ || !body_allowed(status)) {
        // No body may follow: answer with the header alone and refuse the chunks.
        gone_ = true;
        response_complete_ = true;
        queue(head(status, headers, content_type, std::size_t{0}));
        return;
    }
    phase_ = phase::streaming;
    // A stream that starts while stopping gets its header, then write() says stop.
    if (core_->stopping.load()) gone_ = true;
    queue(head(status, headers, content_type, std::nullopt));
}

void connection::stream_chunk(std::uint64_t seq, std::string chunk) {
    if (seq != seq_ || phase_ != phase::streaming || response_complete_) {
        backlog_ -= std::min(chunk.size(), backlog_.load());
        return;
    }
    char size_hex[20];
    int len = std::snprintf(size_hex, sizeof size_hex, "%zx\r\n", chunk.size());
    std::string bytes;
    bytes.reserve(static_cast<std::size_t>(len) + chunk.size() + 2);
    bytes.append(size_hex, static_cast<std::size_t>(len));
    bytes += chunk;
    bytes += "\r\n";
    // The writer counted the payload; count the framing too so the accounting balances.
    backlog_ += bytes.size() - chunk.size();
    auto counted = bytes.size();
    queue(std::move(bytes), counted);
}

void connection::stream_finish(std::uint64_t seq) {
    if (seq != seq_ || phase_ != phase::streaming || response_complete_) return;
    response_complete_ = true;
    if (core_->stopping.load()) close_after_ = true;
    backlog_ += 5;
    queue("0\r\n\r\n", 5);
}

void accept_next(const std::shared_ptr<core>& c) {
    c->acceptor.async_accept(asio::make_strand(c->ioc), [c](const error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !c->acceptor.is_open()) return;
        if (ec) {
            log::warn("http accept failed", {{"error", ec.message()}});
        } else {
            std::shared_ptr<connection> conn;
            {
                std::lock_guard lk(c->conns_mu);
                auto id = ++c->next_id;
                conn = std::make_shared<connection>(c, std::move(socket), id);
                c->conns.emplace(id, conn);
            }
            conn->post([conn] { conn->start(); });
        }
        accept_next(c);
    });
}

std::system_error to_std(const error_code& ec, const std::string& what) {
    return std::system_error(std::error_code(ec.value(), std::system_category()), what);
}

}  // namespace

struct server::impl {
    std::shared_ptr<core> core_;
    std::vector<std::thread> threads;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    bool started = false;
    bool stopped = false;
    std::uint16_t port = 0;
};

server::server(server_options options, handler h) : impl_(std::make_unique<impl>()) {
    impl_->core_ = std::make_shared<core>(std::move(options), std::move(h));
}

server::~server() {
    try {
        stop(std::chrono::seconds(2));
    } catch (const std::exception& e) {
        log::error("http server stop failed", {{"error", e.what()}});
    }
}

void server::start() {
    if (impl_->started) return;
    auto& c = *impl_->core_;
    error_code ec;
    auto address = asio::ip::make_address(c.opts.address, ec);
    if (ec) throw to_std(ec, "invalid listen address " + c.opts.address);
    tcp::endpoint ep(address, c.opts.port);
    std::string where = c.opts.address + ":" + std::to_string(c.opts.port);
    c.acceptor.open(ep.protocol(), ec);
    if (ec) throw to_std(ec, "cannot open socket for " + where);
    c.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    c.acceptor.bind(ep, ec);
    if (ec) {
        error_code ignored;
        c.acceptor.close(ignored);
        throw to_std(ec, "cannot bind " + where);
    }
    c.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        error_code ignored;
        c.acceptor.close(ignored);
        throw to_std(ec, "cannot listen on " + where);
    }
    impl_->port = c.acceptor.local_endpoint().port();
    impl_->started = true;
    accept_next(impl_->core_);
    impl_->work.emplace(c.ioc.get_executor());
    for (int i = 0; i < std::max(1, c.opts.threads); ++i) {
        impl_->threads.emplace_back([core = impl_->core_] {
            for (;;) {
                try {
                    core->ioc.run();
                    return;
                } catch (const std::exception& e) {
                    log::error("http io thread caught an exception", {{"error", e.what()}});
                }
            }
        });
    }
    log::info("http server listening", {{"address", c.opts.address}, {"port", impl_->port}});
}

std::uint16_t server::port() const { return impl_->port; }

void server::stop(std::chrono::milliseconds drain) {
    if (!impl_->started || impl_->stopped) return;
    impl_->stopped = true;
    auto c = impl_->core_;
    c->stopping = true;
    asio::post(c->acceptor.get_executor(), [c] {
        error_code ec;
        c->acceptor.close(ec);
    });
    std::vector<std::shared_ptr<connection>> live;
    {
        std::lock_guard lk(c->conns_mu);
        for (auto& [id, weak] : c->conns) {
            if (auto conn = weak.lock()) live.push_back(std::move(conn));
        }
    }
    for (auto& conn : live) conn->post([conn] { conn->on_stop(); });
    live.clear();
    {
        std::unique_lock lk(c->conns_mu);
        if (!c->conns_cv.wait_for(lk, drain, [&] { return c->conns.empty(); })) {
            log::warn("http server drain timed out; closing remaining connections", {{"connections", c->conns.size()}});
        }
    }
    impl_->work.reset();
    c->ioc.stop();
    for (auto& t : impl_->threads) t.join();
    impl_->threads.clear();
    {
        std::lock_guard lk(c->post_mu);
        c->dead = true;
    }
    // No thread runs the io_context now, so touching connections directly is safe.
    {
        std::unique_lock lk(c->conns_mu);
        for (auto& [id, weak] : c->conns) {
            if (auto conn = weak.lock()) live.push_back(std::move(conn));
        }
    }
    for (auto& conn : live) conn->force_close();
    live.clear();
    error_code ec;
    c->acceptor.close(ec);
    // Run the aborted completions so that the handlers they hold (and the connections those
    // hold) are released rather than kept in a cycle with the io_context.
    c->ioc.restart();
    c->ioc.poll();
    log::info("http server stopped", {{"port", impl_->port}});
}

}  // namespace txp::http
