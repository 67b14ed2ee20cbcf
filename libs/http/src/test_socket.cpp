// Plain POSIX sockets for the tests that must misbehave on purpose.
#include "test_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace txp::http::test {

namespace {

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

std::uint16_t bound_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) throw std::runtime_error("getsockname failed");
    return ntohs(a.sin_port);
}

int bind_any(std::uint16_t& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    auto a = loopback(0);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        throw std::runtime_error("bind failed");
    }
    port = bound_port(fd);
    return fd;
}

}  // namespace

raw_connection::raw_connection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    auto a = loopback(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::string err = std::strerror(errno);
        ::close(fd_);
        throw std::runtime_error("connect failed: " + err);
    }
}

raw_connection::~raw_connection() {
    if (fd_ >= 0) ::close(fd_);
}

void raw_connection::send(std::string_view bytes) {
    while (!bytes.empty()) {
        auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool raw_connection::fill(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) throw std::runtime_error("timed out waiting for the server");
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[8192];
        auto n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;  // reset counts as closed
        }
        if (n == 0) return false;
        pending_.append(buf, static_cast<std::size_t>(n));
        return true;
    }
}

raw_response raw_connection::read_response(bool expect_body, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
        if (!fill(deadline)) throw std::runtime_error("connection closed before a response header: " + pending_);
    }
    raw_response r;
    r.head = pending_.substr(0, end + 2);
    pending_.erase(0, end + 4);
    if (r.head.size() < 12 || r.head.compare(0, 9, "HTTP/1.1 ") != 0) throw std::runtime_error("not an HTTP/1.1 response: " + r.head);
    r.status = static_cast<unsigned>(std::stoul(r.head.substr(9, 3)));
    std::size_t length = 0;
    std::string lower = r.head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos) length = std::stoul(lower.substr(p + 17));
    if (expect_body) {
        while (pending_.size() < length) {
            if (!fill(deadline)) throw std::runtime_error("connection closed mid-body");
        }
        r.body = pending_.substr(0, length);
        pending_.erase(0, length);
    }
    return r;
}

bool raw_connection::read_until_closed(std::string& out, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    try {
        while (fill(deadline)) {
        }
    } catch (const std::runtime_error&) {
        out = pending_;
        return false;
    }
    out = pending_;
    return true;
}

refused_port::refused_port() { fd_ = bind_any(port_); }
refused_port::~refused_port() { ::close(fd_); }

silent_listener::silent_listener() {
    fd_ = bind_any(port_);
    if (::listen(fd_, 16) != 0) throw std::runtime_error("listen failed");
}
silent_listener::~silent_listener() { ::close(fd_); }

}  // namespace txp::http::test
