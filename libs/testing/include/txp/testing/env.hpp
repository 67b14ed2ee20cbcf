// Test support: where the real PostgreSQL and RabbitMQ of this test run are (set by
// scripts/test), and small helpers the integration tests share.
#pragma once

#include <string>

namespace txp::testing {

// The value of a TXP_TEST_* variable; fails the test run with a clear message when unset
// (run the tests through scripts/test, which starts the servers and sets them).
std::string env(const char* name);

std::string amqp_url();             // TXP_TEST_AMQP_URL: this run's own vhost
std::string vhost();                // TXP_TEST_VHOST
std::string rabbit_api();           // TXP_TEST_RABBIT_API: management API base URL with credentials
std::string admin_database_url();   // TXP_TEST_ADMIN_DATABASE_URL
std::string database_url(const char* service);  // ledger, gateway, plaid, notify

// A fresh random hex id for names that must not collide between tests.
std::string unique_suffix();

// A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close).
int free_port();

// Runs a shell command, returns its exit status and captures stdout.
int run(const std::string& command, std::string* out = nullptr);

// Management API call through curl: method, path under /api (e.g. "/queues/vh/q"); returns body.
std::string rabbit_api_call(const std::string& method, const std::string& path, int* http_status = nullptr);

}  // namespace txp::testing
