// The client's failure modes: refused connections, timeouts, TLS against a plain server.
#include "txp/http/client.hpp"
#include "txp/http/server.hpp"

#include "test_socket.hpp"

#include <catch2/catch.hpp>

using namespace txp::http;

namespace {

client_error::kind failure_kind(const client_request& r) {
    try {
        fetch(r);
    } catch (const client_error& e) {
        return e.k;
    }
    FAIL("fetch did not throw");
    return client_error::kind::protocol;
}

}  // namespace

TEST_CASE("a refused connection is a connect error", "[http][client]") {
    test::refused_port closed;
    client_request r;
    r.url = "http://127.0.0.1:" + std::to_string(closed.port()) + "/";
    CHECK(failure_kind(r) == client_error::kind::connect);
}

TEST_CASE("a server that never answers is a timeout", "[http][client]") {
    test::silent_listener silent;
    client_request r;
    r.url = "http://127.0.0.1:" + std::to_string(silent.port()) + "/";
    r.timeout = std::chrono::milliseconds(300);
    CHECK(failure_kind(r) == client_error::kind::timeout);

    bool got_any = false;
    try {
        fetch_stream(r, [&](unsigned, std::string_view) {
            got_any = true;
            return true;
        });
        FAIL("fetch_stream did not throw");
    } catch (const client_error& e) {
        CHECK(e.k == client_error::kind::timeout);
    }
    CHECK_FALSE(got_any);
}

TEST_CASE("https to a plain HTTP server fails as a TLS error", "[http][client]") {
    server s(server_options{}, [](request&&, std::shared_ptr<response_writer> w) { w->send(response{}); });
    s.start();
    client_request r;
    r.url = "https://127.0.0.1:" + std::to_string(s.port()) + "/";
    CHECK(failure_kind(r) == client_error::kind::tls);
    s.stop();
}

TEST_CASE("the client sends method, headers and body and reads the whole response", "[http][client]") {
    request seen;
    server s(server_options{}, [&](request&& req, std::shared_ptr<response_writer> w) {
        seen = req;
        response res;
        res.body = std::string(200 * 1024, 'z');  // larger than one read
        res.content_type = "application/octet-stream";
        w->send(std::move(res));
    });
    s.start();
    client_request r;
    r.method = "PUT";
    r.url = "http://127.0.0.1:" + std::to_string(s.port()) + "/x?y=1";
    r.headers = {{"Authorization", "Bearer t"}};
    r.body = R"({"a":1})";
    auto res = fetch(r);
    CHECK(res.status == 200);
    CHECK(res.body == std::string(200 * 1024, 'z'));
    CHECK(seen.method == "PUT");
    CHECK(seen.target == "/x?y=1");
    CHECK(seen.body == R"({"a":1})");
    CHECK(seen.header_value("authorization") == "Bearer t");
    CHECK(seen.header_value("content-type") == "application/json");
    CHECK(seen.header_value("host") == "127.0.0.1:" + std::to_string(s.port()));
    s.stop();
}

TEST_CASE("a HEAD response's announced length does not make the client wait for a body", "[http][client]") {
    server s(server_options{}, [](request&&, std::shared_ptr<response_writer> w) {
        response res;
        res.body = R"({"a":1})";
        w->send(std::move(res));
    });
    s.start();
    client_request r;
    r.method = "HEAD";
    r.url = "http://127.0.0.1:" + std::to_string(s.port()) + "/";
    auto res = fetch(r);
    CHECK(res.status == 200);
    CHECK(res.header_value("content-length") == "7");
    CHECK(res.body.empty());
    s.stop();
}
