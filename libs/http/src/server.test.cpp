// The server over real loopback sockets: routing, keep-alive, limits, timeouts, failures,
// asynchronous and streamed replies, request ids and graceful stop.
#include "txp/http/client.hpp"
#include "txp/http/server.hpp"

#include "test_socket.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <thread>

using namespace txp::http;
using txp::http::test::raw_connection;

namespace {

server_options local_options() {
    server_options o;
    o.threads = 2;
    return o;
}

std::string base_url(const server& s) { return "http://127.0.0.1:" + std::to_string(s.port()); }

client_response get(const server& s, const std::string& target, std::vector<header> headers = {}) {
    client_request r;
    r.url = base_url(s) + target;
    r.headers = std::move(headers);
    return fetch(r);
}

std::string problem_type(const std::string& body) {
    auto doc = txp::json::parse(body);
    return doc["type"].GetString();
}

}  // namespace

TEST_CASE("a request reaches the handler decoded and the response comes back with the standard headers", "[http][server]") {
    request seen;
    server s(local_options(), [&](request&& req, std::shared_ptr<response_writer> w) {
        seen = req;
        response r;
        r.body = R"({"echo":")" + req.body + R"("})";
        r.status = 201;
        r.headers.push_back({"Location", "/things/1"});
        w->send(std::move(r));
    });
    s.start();
    client_request req;
    req.method = "POST";
    req.url = base_url(s) + "/things/a%20b?x=1&y=two+words";
    req.body = "hi";
    auto res = fetch(req);
    CHECK(res.status == 201);
    CHECK(res.body == R"({"echo":"hi"})");
    CHECK(res.header_value("location") == "/things/1");
    CHECK(res.header_value("content-type") == "application/json");
    CHECK(res.header_value("cache-control") == "no-store");
    CHECK(res.header_value("x-content-type-options") == "nosniff");
    CHECK(res.header_value("server") == "txp");
    CHECK(seen.method == "POST");
    CHECK(seen.path == "/things/a b");
    CHECK(seen.target == "/things/a%20b?x=1&y=two+words");
    CHECK(seen.query == "x=1&y=two+words");
    CHECK(seen.query_param("y") == "two words");
    CHECK(seen.remote_address == "127.0.0.1");
    CHECK(seen.header_value("content-type") == "application/json");
    s.stop();
}

TEST_CASE("keep-alive serves two requests on one connection and honours Connection: close", "[http][server]") {
    std::atomic<int> calls{0};
    server s(local_options(), [&](request&& req, std::shared_ptr<response_writer> w) {
        ++calls;
        response r;
        r.content_type = "text/plain";
        r.body = req.path;
        w->send(std::move(r));
    });
    s.start();
    raw_connection c(s.port());
    c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    auto a = c.read_response();
    CHECK(a.status == 200);
    CHECK(a.body == "/one");
    CHECK(a.head.find("Connection: keep-alive") != std::string::npos);
    CHECK(a.head.find("Cache-Control") == std::string::npos);  // not JSON
    c.send("GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto b = c.read_response();
    CHECK(b.body == "/two");
    CHECK(b.head.find("Connection: close") != std::string::npos);
    std::string rest;
    CHECK(c.read_until_closed(rest));
    CHECK(rest.empty());
    CHECK(calls == 2);
    s.stop();
}

TEST_CASE("pipelined requests are answered in order", "[http][server]") {
    server s(local_options(), [&](request&& req, std::shared_ptr<response_writer> w) {
        response r;
        r.body = req.path;
        w->send(std::move(r));
    });
    s.start();
    raw_connection c(s.port());
    c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(c.read_response().body == "/a");
    CHECK(c.read_response().body == "/b");
    s.stop();
}

TEST_CASE("HEAD gets the headers of the response without its body", "[http][server]") {
    server s(local_options(), [&](request&& req, std::shared_ptr<response_writer> w) {
        response r;
        r.content_type = "text/plain";
        r.body = req.method == "HEAD" ? "hello" : "world!";
        w->send(std::move(r));
    });
    s.start();
    raw_connection c(s.port());
    c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto h = c.read_response(false);
    CHECK(h.status == 200);
    CHECK(h.head.find("Content-Length: 5") != std::string::npos);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(c.read_response().body == "world!");  // nothing of the HEAD body was left in between
    s.stop();
}

TEST_CASE("a body over the limit gets 413 problem+json without reaching the handler", "[http][server]") {
    auto opts = local_options();
    opts.body_limit = 1024;
    std::atomic<bool> called{false};
    server s(opts, [&](request&&, std::shared_ptr<response_writer> w) {
        called = true;
        w->send(response{});
    });
    s.start();
    client_request req;
    req.method = "POST";
    req.url = base_url(s) + "/upload";
    req.body = std::string(100 * 1024, 'x');
    auto res = fetch(req);
    CHECK(res.status == 413);
    CHECK(res.header_value("content-type") == "application/problem+json");
    CHECK(problem_type(res.body) == "https://txp.dev/problems/payload-too-large");
    CHECK_FALSE(called);

    req.body = std::string(1000, 'x');  // under the limit still works
    CHECK(fetch(req).status == 200);
    s.stop();
}

TEST_CASE("a header over the limit gets 431", "[http][server]") {
    auto opts = local_options();
    opts.header_limit = 2048;
    server s(opts, [&](request&&, std::shared_ptr<response_writer> w) { w->send(response{}); });
    s.start();
    auto res = get(s, "/", {{"X-Big", std::string(8 * 1024, 'a')}});
    CHECK(res.status == 431);
    CHECK(problem_type(res.body) == "https://txp.dev/problems/header-too-large");
    CHECK(get(s, "/", {{"X-Small", "a"}}).status == 200);
    s.stop();
}

TEST_CASE("garbage bytes get 400 problem+json and the connection closes", "[http][server]") {
    std::atomic<bool> called{false};
    server s(local_options(), [&](request&&, std::shared_ptr<response_writer> w) {
        called = true;
        w->send(response{});
    });
    s.start();
    raw_connection c(s.port());
    static const char garbage[] = "\x16\x03\x01\x02\x00 \x01\xfe garbage\r\n\r\n";
    c.send(std::string(garbage, sizeof garbage - 1));
    std::string all;
    REQUIRE(c.read_until_closed(all));
    CHECK(all.rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(all.find("application/problem+json") != std::string::npos);
    CHECK(all.find("https://txp.dev/problems/bad-request") != std::string::npos);
    CHECK(all.find("Connection: close") != std::string::npos);
    CHECK_FALSE(called);
    s.stop();
}

TEST_CASE("a client that sends half a request is cut off after read_timeout with 408", "[http][server]") {
    auto opts = local_options();
    opts.read_timeout = std::chrono::milliseconds(300);
    std::atomic<bool> called{false};
    server s(opts, [&](request&&, std::shared_ptr<response_writer> w) {
        called = true;
        w->send(response{});
    });
    s.start();
    raw_connection c(s.port());
    c.send("GET /slow HTTP/1.1\r\nHost: x\r\n");  // no blank line: the header never ends
    std::string all;
    REQUIRE(c.read_until_closed(all, std::chrono::seconds(10)));
    CHECK(all.rfind("HTTP/1.1 408 ", 0) == 0);
    CHECK_FALSE(called);

    // A connection that sends nothing at all is closed too, without a response.
    raw_connection idle(s.port());
    std::string nothing;
    REQUIRE(idle.read_until_closed(nothing, std::chrono::seconds(10)));
    CHECK(nothing.empty());
    s.stop();
}

TEST_CASE("a handler that throws gives 500 problem+json without the exception text", "[http][server]") {
    server s(local_options(), [&](request&&, std::shared_ptr<response_writer>) {
        throw std::runtime_error("password=hunter2 at db.internal");
    });
    s.start();
    auto res = get(s, "/boom", {{"X-Request-Id", "boom-1"}});
    CHECK(res.status == 500);
    CHECK(res.header_value("content-type") == "application/problem+json");
    CHECK(res.body.find("hunter2") == std::string::npos);
    CHECK(res.body.find("db.internal") == std::string::npos);
    auto doc = txp::json::parse(res.body);
    CHECK(std::string(doc["request_id"].GetString()) == "boom-1");
    CHECK(get(s, "/boom").status == 500);  // the server is still serving
    s.stop();
}

TEST_CASE("a handler that drops its writer without answering gives 500", "[http][server]") {
    server s(local_options(), [&](request&&, std::shared_ptr<response_writer>) {});
    s.start();
    CHECK(get(s, "/").status == 500);
    s.stop();
}

TEST_CASE("a reply sent later from another thread reaches the client; a second send is ignored", "[http][server]") {
    std::promise<std::shared_ptr<response_writer>> parked;
    server s(local_options(), [&](request&&, std::shared_ptr<response_writer> w) { parked.set_value(std::move(w)); });
    s.start();
    auto pending = std::async(std::launch::async, [&] { return get(s, "/long-poll"); });
    auto writer = parked.get_future().get();  // the handler has returned; the request waits
    CHECK_FALSE(writer->client_gone());
    response r;
    r.body = R"({"late":true})";
    std::thread([writer, r]() mutable { writer->send(std::move(r)); }).join();
    writer->send(response{500, {}, "{}"});
    auto res = pending.get();
    CHECK(res.status == 200);
    CHECK(res.body == R"({"late":true})");
    s.stop();
}

TEST_CASE("a streamed response arrives chunk by chunk in order", "[http][server]") {
    std::promise<std::shared_ptr<response_writer>> parked;
    server s(local_options(), [&](request&&, std::shared_ptr<response_writer> w) {
        w->start_stream(200, {{"X-Accel-Buffering", "no"}}, "text/event-stream");
        parked.set_value(std::move(w));
    });
    s.start();
    auto writer_future = parked.get_future();
    std::shared_ptr<response_writer> writer;
    std::vector<std::string> received;
    unsigned status = 0;
    int next = 1;
    client_request req;
    req.url = base_url(s) + "/events";
    std::string acc;
    fetch_stream(req, [&](unsigned st, std::string_view chunk) {
        status = st;
        if (!writer) writer = writer_future.get();
        acc.append(chunk);
        // Each event is written only after the previous one arrived, so they cannot merge.
        auto end = acc.find("\n\n");
        if (end != std::string::npos) {
            received.push_back(acc.substr(0, end));
            acc.erase(0, end + 2);
        }
        if (chunk.empty() || end != std::string::npos) {
            if (next <= 3) {
                CHECK(writer->write("data: " + std::to_string(next++) + "\n\n"));
            } else {
                writer->finish();
            }
        }
        return true;  // read until the server ends the stream
    });
    CHECK(status == 200);
    CHECK(received == std::vector<std::string>{"data: 1", "data: 2", "data: 3"});
    CHECK(acc.empty());
    s.stop();
}

TEST_CASE("write returns false once the streaming client has gone", "[http][server]") {
    std::promise<std::shared_ptr<response_writer>> parked;
    server s(local_options(), [&](request&&, std::shared_ptr<response_writer> w) {
        w->start_stream(200, {}, "text/event-stream");
        w->write("data: hello\n\n");
        parked.set_value(std::move(w));
    });
    s.start();
    client_request req;
    req.url = base_url(s) + "/events";
    std::string first;
    fetch_stream(req, [&](unsigned, std::string_view chunk) {
        first.append(chunk);
        return first.size() < 13;  // hang up after the first event
    });
    CHECK(first == "data: hello\n\n");
    auto writer = parked.get_future().get();
    // The server learns of the hang-up asynchronously; a producer keeps writing until told.
    bool stopped = false;
    for (int i = 0; i < 1000 && !stopped; ++i) {
        stopped = !writer->write("data: more\n\n");
        if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(stopped);
    CHECK(writer->client_gone());
    writer->send(response{});  // harmless after the client left
    writer->finish();
    s.stop();
}

TEST_CASE("request ids are echoed when sane and generated otherwise", "[http][server]") {
    std::vector<std::string> seen;
    std::mutex mu;
    server s(local_options(), [&](request&& req, std::shared_ptr<response_writer> w) {
        {
            std::lock_guard lk(mu);
            seen.push_back(req.request_id);
        }
        w->send(response{});
    });
    s.start();
    auto a = get(s, "/", {{"X-Request-Id", "client-id.42"}});
    CHECK(a.header_value("x-request-id") == "client-id.42");
    auto b = get(s, "/", {{"X-Request-Id", "not ok; <script>"}});
    REQUIRE(b.header_value("x-request-id"));
    CHECK(txp::ids::is_uuid(*b.header_value("x-request-id")));
    auto c = get(s, "/");
    REQUIRE(c.header_value("x-request-id"));
    CHECK(txp::ids::is_uuid(*c.header_value("x-request-id")));
    CHECK(*b.header_value("x-request-id") != *c.header_value("x-request-id"));
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == "client-id.42");
    CHECK(seen[1] == *b.header_value("x-request-id"));
    CHECK(seen[2] == *c.header_value("x-request-id"));
    s.stop();
}

TEST_CASE("graceful stop lets an in-flight handler finish and closes idle connections", "[http][server]") {
    std::promise<void> entered;
    std::promise<void> release;
    auto release_future = release.get_future().share();
    server s(local_options(), [&](request&& req, std::shared_ptr<response_writer> w) {
        if (req.path == "/slow") {
            entered.set_value();
            release_future.wait();
        }
        response r;
        r.body = R"({"done":true})";
        w->send(std::move(r));
    });
    s.start();
    auto port = s.port();

    raw_connection idle(port);  // a keep-alive connection with nothing in flight
    idle.send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(idle.read_response().status == 200);

    auto in_flight = std::async(std::launch::async, [&] {
        raw_connection c(port);  // keep-alive: the server itself must decide to close
        c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        auto r = c.read_response(true, std::chrono::seconds(20));
        std::string after;
        bool closed = c.read_until_closed(after);
        return std::make_pair(r, closed);
    });
    entered.get_future().wait();
    auto stopping = std::async(std::launch::async, [&] { s.stop(std::chrono::seconds(10)); });

    // Stop has begun once the idle connection is closed; the slow request is still running.
    std::string rest;
    CHECK(idle.read_until_closed(rest));
    CHECK(rest.empty());
    CHECK(in_flight.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
    release.set_value();
    auto [res, closed] = in_flight.get();
    CHECK(res.status == 200);
    CHECK(res.body == R"({"done":true})");
    CHECK(res.head.find("Connection: close") != std::string::npos);
    CHECK(closed);
    stopping.get();

    client_request after;
    after.url = "http://127.0.0.1:" + std::to_string(port) + "/";
    try {
        fetch(after);
        FAIL("a stopped server still answered");
    } catch (const client_error& e) {
        CHECK(e.k == client_error::kind::connect);
    }
}

TEST_CASE("start throws std::system_error when the port is taken", "[http][server]") {
    server a(local_options(), [](request&&, std::shared_ptr<response_writer> w) { w->send(response{}); });
    a.start();
    auto opts = local_options();
    opts.port = a.port();
    server b(opts, [](request&&, std::shared_ptr<response_writer> w) { w->send(response{}); });
    CHECK_THROWS_AS(b.start(), std::system_error);
    a.stop();
}
