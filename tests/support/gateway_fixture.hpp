// Test support for api-gateway: the real gateway and ledger-worker as child processes
// (one shared pair per test binary, plus dedicated gateways with their own settings), an
// HTTP client over txp::http::fetch, and users registered through the API.
#pragma once

#include "ledger_fixture.hpp"
#include "process.hpp"

#include "txp/http/client.hpp"
#include "txp/testing/env.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace txp::testing {

struct gateway_process {
    std::unique_ptr<child_process> proc;
    std::uint16_t port = 0;
    std::string base;  // http://127.0.0.1:<port>
};

// Starts an api-gateway with the test database and vhost (extra env overrides; a TXP_HTTP_PORT
// there is its port, else a free one), waits until /healthz answers; throws with the process
// log when it does not within 30 s.
gateway_process start_gateway(const std::string& name, std::map<std::string, std::string> extra = {});

struct api_user {
    std::int64_t id = 0;
    std::string username;
    std::string password;
    std::string token;
    std::int64_t wallet_id = 0;
};

class gateway_fixture {
public:
    // One gateway and one ledger-worker shared by the tests of this binary (started lazily,
    // restarted when a test stopped the gateway).
    static gateway_fixture& shared();

    const std::string& base();
    // Stops the shared gateway (tests that must be the only outbox relay); the next base() restarts it.
    void stop_gateway();

    ledger_fixture& ledger() { return ledger_; }

    http::client_response call(const std::string& method, const std::string& path, const std::string& body = "",
                               const std::string& token = "", std::vector<http::header> headers = {},
                               const std::string& base_url = "");
    // Registers (unique name from prefix) and logs in.
    api_user new_user(const std::string& prefix, const std::string& base_url = "");
    // Deposits through the API and waits for it to complete.
    void fund(const api_user& u, std::int64_t amount);

    std::int64_t transaction_count();
    std::int64_t outbox_pending();

private:
    gateway_fixture();
    ledger_fixture ledger_;
    std::unique_ptr<child_process> worker_;
    std::optional<gateway_process> gateway_;
};

// Parsed JSON body helpers.
std::string json_string(const std::string& body, const char* field);
std::int64_t json_int(const std::string& body, const char* field);
bool is_problem(const http::client_response& r, unsigned status, const std::string& type);

}  // namespace txp::testing
