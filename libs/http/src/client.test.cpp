// The client's failure modes: refused connections, timeouts, TLS against a plain server.
#include "txp/http/client.hpp"
#include "txp/http/server.hpp"

#include "test_socket.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

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

TEST_CASE("a kept-alive connection answers many requests in turn and survives the server closing it when idle", "[http][client]") {
    server_options so;
    so.idle_timeout = std::chrono::milliseconds(150);
    std::atomic<int> served{0};
    server s(so, [&](request&& req, std::shared_ptr<response_writer> w) {
        ++served;
        response res;
        res.body = req.target + ":" + req.body;
        w->send(std::move(res));
    });
    s.start();
    const std::string origin = "http://127.0.0.1:" + std::to_string(s.port());
    connection c(origin);
    for (int i = 0; i < 20; ++i) {
        client_request r;
        r.method = "POST";
        r.url = origin + "/n/" + std::to_string(i);
        r.body = std::string(static_cast<std::size_t>(i) * 1000, 'b');
        auto res = c.fetch(r);
        REQUIRE(res.status == 200);
        CHECK(res.body == "/n/" + std::to_string(i) + ":" + r.body);  // framing holds across requests
    }
    // The server drops the idle connection; the next request reconnects transparently.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    client_request again;
    again.url = origin + "/after-idle";
    CHECK(c.fetch(again).body == "/after-idle:");
    CHECK(served == 21);

    client_request elsewhere;
    elsewhere.url = "http://127.0.0.2:" + std::to_string(s.port()) + "/";
    CHECK_THROWS_AS(c.fetch(elsewhere), std::invalid_argument);
    CHECK_THROWS_AS(connection("https://127.0.0.1:1"), std::invalid_argument);
    s.stop();

    client_request down;
    down.url = origin + "/down";
    try {
        c.fetch(down);
        FAIL("fetch after the server stopped did not throw");
    } catch (const client_error& e) {
        CHECK(e.k == client_error::kind::connect);
    }
}
