// endpoint::parse: the URL forms services are configured with, and no password in errors.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "txp/amqp/message.hpp"

using txp::amqp::endpoint;

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
