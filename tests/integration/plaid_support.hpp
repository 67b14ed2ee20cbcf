// Test support for Plaid: the emulator as a real process (one per test binary), its control
// endpoints, plaid-sync processes, the plaid schema migrated, and the gateway-facing API
// wired to plaid's own outbox.
#pragma once

#include "ledger_fixture.hpp"
#include "process.hpp"

#include "plaid_api.hpp"
#include "sync_service.hpp"

#include "txp/http/client.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace txp::testing {

// The emulator process shared by the tests of one binary.
class plaid_emulator_process {
public:
    static plaid_emulator_process& shared();
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::uint16_t port() const { return port_; }

    // Control endpoints: returns the body; throws on a non-200.
    std::string control(const std::string& method, const std::string& path, const std::string& body = "");

private:
    plaid_emulator_process();
    std::unique_ptr<child_process> proc_;
    std::uint16_t port_ = 0;
};

inline constexpr const char* test_client_id = "txp-test-client";
inline constexpr const char* test_secret = "txp-test-secret-0123456789";
std::string test_token_key();  // base64 of 32 fixed bytes

class plaid_fixture {
public:
    plaid_fixture();
    ~plaid_fixture();

    ledger_fixture& ledger() { return ledger_; }
    db::pool& plaid_pool() { return *plaid_; }
    plaid::client& client() { return *client_; }
    const plaid::token_cipher& cipher() const { return cipher_; }
    plaid_sync::api_context& api() { return *ctx_; }
    plaid_emulator_process& emulator() { return plaid_emulator_process::shared(); }

    // A linked sandbox item (user e.g. "user_good", "user_bulk_1200", "user_transactions_dynamic").
    plaid_sync::item_view link(std::int64_t owner, const std::string& username = "user_good");
    std::string access_token(const std::string& item_id);

    std::unique_ptr<child_process> start_sync(const std::string& replica, std::map<std::string, std::string> extra = {});

    // Polls fn until it returns true or the deadline passes; returns its last answer.
    static bool eventually(const std::function<bool()>& fn, std::chrono::seconds deadline = std::chrono::seconds(30));

    // Transaction ids (and pending flags) as the emulator and as the database have them.
    std::map<std::string, bool> emulator_transactions(const std::string& item_id);
    std::map<std::string, bool> db_transactions(const std::string& item_id);
    std::string db_scalar(const std::string& sql, const std::string& param);
    // Requests made to a Plaid endpoint with a status, from the emulator's stats.
    std::int64_t requests(const std::string& endpoint, unsigned status);

    void purge_plaid_queues();

private:
    ledger_fixture ledger_;
    std::unique_ptr<db::pool> plaid_;
    std::unique_ptr<plaid::client> client_;
    plaid::token_cipher cipher_;
    std::unique_ptr<outbox::outbox> outbox_;
    std::unique_ptr<plaid_sync::api_context> ctx_;
};

}  // namespace txp::testing
