// endpoint::parse: the URL forms services are configured with, and no password in errors.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "txp/amqp/message.hpp"

using txp::amqp::connection_options;
using txp::amqp::endpoint;
using txp::amqp::parse_endpoints;

TEST_CASE("endpoint::parse reads every part of a full URL", "[amqp][endpoint]") {
    auto ep = endpoint::parse("amqp://alice:s3cret@rabbit.local:5673/txp_run_1");
    CHECK(ep.user == "alice");
    CHECK(ep.password == "s3cret");
    CHECK(ep.host == "rabbit.local");
    CHECK(ep.port == 5673);
    CHECK(ep.vhost == "txp_run_1");
    CHECK(ep.describe() == "rabbit.local:5673/txp_run_1");
}

TEST_CASE("endpoint::parse defaults and percent-decoding", "[amqp][endpoint]") {
    auto plain = endpoint::parse("amqp://broker");
    CHECK(plain.host == "broker");
    CHECK(plain.port == 5672);
    CHECK(plain.user == "guest");
    CHECK(plain.vhost == "/");

    CHECK(endpoint::parse("amqp://broker/").vhost == "/");
    CHECK(endpoint::parse("amqp://broker/%2f").vhost == "/");
    CHECK(endpoint::parse("amqp://broker/%2Fprod").vhost == "/prod");
    auto enc = endpoint::parse("amqp://us%40er:p%40ss%3Aw@[::1]:5999/v");
    CHECK(enc.user == "us@er");
    CHECK(enc.password == "p@ss:w");
    CHECK(enc.host == "::1");
    CHECK(enc.port == 5999);
}

TEST_CASE("endpoint::parse errors never contain the password", "[amqp][endpoint]") {
    const char* bad[] = {
        "http://u:hunter2@host:5672/v",     // wrong scheme
        "amqp://u:hunter2@host:notaport/v",  // bad port
        "amqp://u:hunter2@host:99999/v",     // port out of range
        "amqp://u:hunter2@:5672/v",          // no host
        "amqp://u:hunter2%zz@host/v",        // bad escape in the password itself
        "amqp://u:hunter2@host/%g1",         // bad escape in the vhost
    };
    for (const char* url : bad) {
        INFO(url);
        try {
            endpoint::parse(url);
            FAIL("accepted a bad URL");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
        }
    }
}

TEST_CASE("a list of URLs names the nodes of a cluster, tried in turn", "[amqp][endpoint]") {
    auto one = parse_endpoints("amqp://u:p@h1:5672/v");
    REQUIRE(one.size() == 1);
    CHECK(one[0].host == "h1");

    connection_options o;
    o.set_endpoints("amqp://u:p@127.0.0.1:5701/txp, amqp://u:p@127.0.0.1:5702/txp,amqp://u:p@127.0.0.1:5703/txp");
    REQUIRE(o.node_count() == 3);
    CHECK(o.ep.port == 5701);
    CHECK(o.node(1).port == 5702);
    CHECK(o.node(2).port == 5703);
    CHECK(o.node(3).port == 5701);  // round again
    CHECK(o.node(4).port == 5702);
    CHECK(o.node(1).vhost == "txp");
    CHECK(o.node(2).password == "p");

    connection_options single;
    single.set_endpoints("amqp://broker");
    CHECK(single.node_count() == 1);
    CHECK(single.node(5).host == "broker");

    for (const char* bad : {"", "amqp://h1,", ",amqp://h1", "amqp://h1,,amqp://h2", "amqp://u:hunter2@h1,http://u:hunter2@h2"}) {
        INFO(bad);
        try {
            parse_endpoints(bad);
            FAIL("accepted a bad list");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
        }
    }
}
