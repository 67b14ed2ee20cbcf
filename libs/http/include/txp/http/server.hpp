// An HTTP/1.1 server (Boost.Beast's parser over Asio, hidden behind a pimpl): keep-alive,
// size limits, timeouts for slow clients, request ids, access log, metrics, graceful stop.
#pragma once

#include "txp/http/message.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace txp::http {

struct server_options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;  // 0: the kernel picks one; see server::port()
    int threads = 2;         // io threads; handlers run on them and may block
    std::size_t body_limit = 64 * 1024;   // larger bodies get 413
    std::size_t header_limit = 8 * 1024;  // larger headers get 431
    std::chrono::milliseconds read_timeout{15000};  // the whole request, from its first byte
    std::chrono::milliseconds idle_timeout{60000};  // keep-alive idle between requests
    std::string server_name = "txp";
};

class server {
public:
    server(server_options options, handler h);
    ~server();  // stops if still running
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds, listens and starts the io threads; throws std::system_error when it cannot bind.
    void start();
    // The port actually bound (after start()).
    std::uint16_t port() const;
    // Graceful: stop accepting, let in-flight requests finish (up to drain), close idle
    // keep-alive connections, end open streams, then join the threads. Handlers still
    // blocking an io thread after drain are waited for (they cannot be interrupted).
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace txp::http
