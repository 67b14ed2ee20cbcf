// Test support: a plain POSIX client socket for speaking (broken) HTTP to the server by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace txp::http::test {

struct raw_response {
    unsigned status = 0;
    std::string head;  // status line and headers
    std::string body;
};

class raw_connection {
public:
    explicit raw_connection(std::uint16_t port);  // 127.0.0.1; throws std::runtime_error
    ~raw_connection();
    raw_connection(const raw_connection&) = delete;
    raw_connection& operator=(const raw_connection&) = delete;

    void send(std::string_view bytes);
    // One Content-Length framed response (no body read when expect_body is false); throws on
    // timeout or when the peer closes first.
    raw_response read_response(bool expect_body = true, std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // Reads until the peer closes; false if the timeout passed first. out gets everything read.
    bool read_until_closed(std::string& out, std::chrono::milliseconds timeout = std::chrono::seconds(5));

private:
    bool fill(std::chrono::steady_clock::time_point deadline);  // false on EOF
    int fd_ = -1;
    std::string pending_;
};

// A port on 127.0.0.1 that is bound but not listening: connecting to it is refused.
class refused_port {
public:
    refused_port();
    ~refused_port();
    std::uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// A listening socket that never accepts nor answers: requests to it time out.
class silent_listener {
public:
    silent_listener();
    ~silent_listener();
    std::uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

}  // namespace txp::http::test
