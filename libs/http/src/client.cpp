// The synchronous HTTP/1.1 client: each call runs its own io_context with one coroutine
// (resolve, connect, TLS handshake, write, read) under a single deadline timer.
#include "txp/http/client.hpp"

#include "detail.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace txp::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::size_t max_fetch_body = 16 * 1024 * 1024;

enum class stage { resolve, connect, handshake, exchange };

// What the caller does with the response as it arrives; false stops reading.
struct response_sink {
    std::function<bool(unsigned status, std::vector<header>&& headers)> on_header;
    std::function<bool(std::string_view chunk)> on_chunk;
};

bhttp::request<bhttp::string_body> build_request(const client_request& creq, const url& u, bool keep_alive = false) {
    bhttp::request<bhttp::string_body> r;
    auto verb = bhttp::string_to_verb(creq.method);
    if (verb == bhttp::verb::unknown) {
        for (char c : creq.method) {
            if (!std::isupper(static_cast<unsigned char>(c))) throw std::invalid_argument("invalid HTTP method: " + creq.method);
        }
        r.method_string(creq.method);
    } else {
        r.method(verb);
    }
    r.target(u.target);
    r.version(11);
    bool default_port = (u.scheme == "http" && u.port == 80) || (u.scheme == "https" && u.port == 443);
    std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    if (!default_port) host += ":" + std::to_string(u.port);
    r.set(bhttp::field::host, host);
    r.set(bhttp::field::user_agent, "txp-http");
    r.set(bhttp::field::connection, keep_alive ? "keep-alive" : "close");
    for (const auto& h : creq.headers) {
        auto bad = [](std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos || s.find('\0') != std::string_view::npos; };
        if (h.name.empty() || bad(h.name) || bad(h.value)) throw std::invalid_argument("invalid request header: " + h.name);
        if (detail::iequals(h.name, "host") || detail::iequals(h.name, "content-length") || detail::iequals(h.name, "connection")) continue;
        r.insert(h.name, h.value);
    }
    if (!creq.body.empty()) {
        if (r.find(bhttp::field::content_type) == r.end()) r.set(bhttp::field::content_type, creq.content_type);
        r.body() = creq.body;
    }
    r.prepare_payload();
    return r;
}

// Writes the request and feeds the response to the sink, body piece by piece.
template <typename Stream>
asio::awaitable<void> exchange(Stream& stream, bhttp::request<bhttp::string_body>& req, const response_sink& sink) {
    co_await bhttp::async_write(stream, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(boost::none);  // the sink decides how much it takes
    parser.skip(req.method() == bhttp::verb::head);  // a HEAD response announces a body it does not send
    co_await bhttp::async_read_header(stream, buffer, parser, asio::use_awaitable);
    std::vector<header> headers;
    for (const auto& f : parser.get()) headers.push_back({std::string(f.name_string()), std::string(f.value())});
    if (!sink.on_header(parser.get().result_int(), std::move(headers))) co_return;
    char piece[16 * 1024];
    while (!parser.is_done()) {
        parser.get().body().data = piece;
        parser.get().body().size = sizeof piece;
        error_code ec;
        co_await bhttp::async_read_some(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) throw boost::system::system_error(ec);
        std::size_t got = sizeof piece - parser.get().body().size;
        if (got > 0 && !sink.on_chunk(std::string_view(piece, got))) co_return;
    }
}

void perform(const client_request& creq, const response_sink& sink) {
    url u = url::parse(creq.url);
    auto req = build_request(creq, u);
    bool https = u.scheme == "https";

    asio::io_context ioc(1);
    std::optional<ssl::context> tls_ctx;
    if (https) {
        tls_ctx.emplace(ssl::context::tls_client);
        tls_ctx->set_default_verify_paths();
        SSL_CTX_set_min_proto_version(tls_ctx->native_handle(), TLS1_2_VERSION);
        tls_ctx->set_verify_mode(creq.verify_tls ? ssl::verify_peer : ssl::verify_none);
    }
    tcp::resolver resolver(ioc);
    beast::tcp_stream plain(ioc);
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    if (https) secure.emplace(ioc, *tls_ctx);
    beast::tcp_stream& socket = https ? beast::get_lowest_layer(*secure) : plain;

    stage at = stage::resolve;
    bool timed_out = false;
    asio::steady_timer deadline(ioc);
    deadline.expires_after(creq.timeout);
    deadline.async_wait([&](const error_code& ec) {
        if (ec) return;
        timed_out = true;
        resolver.cancel();
        socket.close();
    });

    auto run = [&]() -> asio::awaitable<void> {
        auto endpoints = co_await resolver.async_resolve(u.host, std::to_string(u.port), asio::use_awaitable);
        at = stage::connect;
        co_await socket.async_connect(endpoints, asio::use_awaitable);
        if (https) {
            at = stage::handshake;
            if (!SSL_set_tlsext_host_name(secure->native_handle(), u.host.c_str())) {
                throw boost::system::system_error(error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
            }
            if (creq.verify_tls) secure->set_verify_callback(ssl::host_name_verification(u.host));
            co_await secure->async_handshake(ssl::stream_base::client, asio::use_awaitable);
            at = stage::exchange;
            co_await exchange(*secure, req, sink);
        } else {
            at = stage::exchange;
            co_await exchange(plain, req, sink);
        }
    };

    std::exception_ptr failure;
    asio::co_spawn(ioc, run(), [&](std::exception_ptr e) {
        failure = e;
        deadline.cancel();
    });
    ioc.run();
    error_code ignored;
    socket.socket().close(ignored);
    if (!failure) return;

    std::string where = creq.method + " " + u.scheme + "://" + u.host + ":" + std::to_string(u.port);
    try {
        std::rethrow_exception(failure);
    } catch (const client_error&) {
        throw;
    } catch (const boost::system::system_error& e) {
        if (timed_out) throw client_error(client_error::kind::timeout, where + ": timed out after " + std::to_string(creq.timeout.count()) + " ms");
        switch (at) {
            case stage::resolve:
            case stage::connect:
                throw client_error(client_error::kind::connect, where + ": cannot connect: " + e.code().message());
            case stage::handshake:
                throw client_error(client_error::kind::tls, where + ": TLS handshake failed: " + e.code().message());
            case stage::exchange:
                if (e.code().category() == asio::error::get_ssl_category() || e.code() == ssl::error::stream_truncated) {
                    throw client_error(client_error::kind::tls, where + ": TLS error: " + e.code().message());
                }
                throw client_error(client_error::kind::protocol, where + ": " + e.code().message());
        }
        throw;
    }
}

}  // namespace

client_response fetch(const client_request& req) {
    client_response out;
    response_sink sink;
    sink.on_header = [&](unsigned status, std::vector<header>&& headers) {
        out.status = status;
        out.headers = std::move(headers);
        return true;
    };
    sink.on_chunk = [&](std::string_view chunk) {
        if (out.body.size() + chunk.size() > max_fetch_body) {
            throw client_error(client_error::kind::protocol, "response body larger than " + std::to_string(max_fetch_body) + " bytes");
        }
        out.body.append(chunk);
        return true;
    };
    perform(req, sink);
    return out;
}

void fetch_stream(const client_request& req, const std::function<bool(unsigned status, std::string_view chunk)>& on_chunk) {
    unsigned status = 0;
    response_sink sink;
    sink.on_header = [&](unsigned s, std::vector<header>&&) {
        status = s;
        return on_chunk(status, std::string_view());
    };
    sink.on_chunk = [&](std::string_view chunk) { return on_chunk(status, chunk); };
    perform(req, sink);
}

struct connection::impl {
    url origin;
    asio::io_context ioc{1};
    tcp::socket socket{ioc};
    beast::flat_buffer buffer;
    bool open = false;

    void connect(std::chrono::milliseconds timeout) {
        tcp::resolver resolver(ioc);
        auto endpoints = resolver.resolve(origin.host, std::to_string(origin.port));
        error_code ec;
        asio::connect(socket, endpoints, ec);
        if (ec) {
            throw client_error(client_error::kind::connect,
                               "http://" + origin.host + ":" + std::to_string(origin.port) + ": cannot connect: " + ec.message());
        }
        socket.set_option(tcp::no_delay(true));
        // Blocking reads and writes give up after the request's timeout.
        timeval tv{};
        tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
        tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        buffer.clear();
        open = true;
    }
    void close() {
        error_code ignored;
        socket.close(ignored);
        open = false;
    }
};

connection::connection(const std::string& origin) : impl_(std::make_unique<impl>()) {
    impl_->origin = url::parse(origin);
    if (impl_->origin.scheme != "http") throw std::invalid_argument("http::connection supports http:// origins only: " + origin);
}

connection::~connection() = default;

client_response connection::fetch(const client_request& creq) {
    url u = url::parse(creq.url);
    auto& m = *impl_;
    if (u.scheme != m.origin.scheme || u.host != m.origin.host || u.port != m.origin.port) {
        throw std::invalid_argument("request URL " + creq.url + " is not on this connection's origin");
    }
    auto req = build_request(creq, u, true);
    std::string where = creq.method + " http://" + u.host + ":" + std::to_string(u.port);
    for (int attempt = 0;; ++attempt) {
        bool reused = m.open;
        if (!m.open) m.connect(creq.timeout);
        error_code ec;
        bhttp::write(m.socket, req, ec);
        bhttp::response_parser<bhttp::string_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(max_fetch_body);
        parser.skip(req.method() == bhttp::verb::head);
        if (!ec) bhttp::read(m.socket, m.buffer, parser, ec);
        if (ec) {
            m.close();
            // The server closed an idle kept-alive connection before reading this request.
            bool stale = reused && attempt == 0 &&
                         (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
                          ec == asio::error::broken_pipe);
            if (stale) continue;
            if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::timed_out) {
                throw client_error(client_error::kind::timeout, where + ": timed out after " + std::to_string(creq.timeout.count()) + " ms");
            }
            throw client_error(client_error::kind::protocol, where + ": " + ec.message());
        }
        auto res = parser.release();
        client_response out;
        out.status = res.result_int();
        for (const auto& f : res) out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
        out.body = std::move(res.body());
        if (!res.keep_alive()) m.close();
        return out;
    }
}

}  // namespace txp::http
