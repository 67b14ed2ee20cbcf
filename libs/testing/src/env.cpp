// Test-run environment (set by scripts/test) and shell helpers for integration tests.
#include "txp/testing/env.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace txp::testing {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        throw std::runtime_error(std::string(name) +
                                 " is not set: run the tests through scripts/test, which starts PostgreSQL "
                                 "and RabbitMQ and sets it");
    }
    return v;
}

std::string amqp_url() { return env("TXP_TEST_AMQP_URL"); }
std::string vhost() { return env("TXP_TEST_VHOST"); }
std::string rabbit_api() { return env("TXP_TEST_RABBIT_API"); }
std::string admin_database_url() { return env("TXP_TEST_ADMIN_DATABASE_URL"); }

std::string database_url(const char* service) {
    std::string name = "TXP_TEST_";
    for (const char* p = service; *p; ++p) name += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
    name += "_DATABASE_URL";
    return env(name.c_str());
}

std::string unique_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
    return buf;
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("bind failed");
    }
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

int run(const std::string& command, std::string* out) {
    FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr) return -1;
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
        if (out) out->append(buf.data(), n);
    }
    int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string rabbit_api_call(const std::string& method, const std::string& path, int* http_status) {
    std::string out;
    std::string cmd = "curl -s -w '\\n%{http_code}' -X " + method + " -H 'content-type: application/json' '" +
                      rabbit_api() + path + "'";
    run(cmd, &out);
    auto nl = out.rfind('\n');
    int status = 0;
    if (nl != std::string::npos) {
        status = std::atoi(out.c_str() + nl + 1);
        out.resize(nl);
    }
    if (http_status) *http_status = status;
    return out;
}

}  // namespace txp::testing
