// Test support for the ledger: a migrated ledger schema, wallets opened and transactions
// accepted through the ledger's own SQL functions (as the gateway role does), messages
// published to the real broker, and polling for outcomes.
#pragma once

#include "ledger.hpp"
#include "process.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/db/db.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace txp::testing {

// Owner ids for wallets the ledger tests open: far above the gateway's user ids (which start
// at 1000) and the demo users (1-6), so suites sharing a database never see each other's wallets.
inline std::int64_t test_owner(std::int64_t n) { return 5'000'000'000 + n; }

class ledger_fixture {
public:
    ledger_fixture();

    db::pool& ledger_pool() { return *ledger_; }
    db::pool& gateway_pool() { return *gateway_; }

    std::int64_t open_wallet(std::int64_t owner, const std::string& currency = "USD", std::int64_t limit = 0);
    // Accepts through ledger.accept_transaction as the gateway role; returns the message to publish.
    ledger::tx_message accept(const std::string& type, std::int64_t wallet, std::optional<std::int64_t> to,
                              std::int64_t amount, const std::string& currency = "USD",
                              std::optional<std::string> reverses = std::nullopt, std::string key = "");
    // Accepts and applies at once through the processor (no broker): for opening balances.
    void fund(std::int64_t wallet, std::int64_t amount, const std::string& currency = "USD");

    amqp::outgoing message_for(const ledger::tx_message& m, std::string message_id = "");
    void publish(const std::vector<amqp::outgoing>& msgs);
    void publish_raw(const std::string& body, const std::string& type = "ledger.transaction.v1");

    std::string status(const std::string& tx_id);
    std::optional<std::string> reason(const std::string& tx_id);
    std::int64_t balance(std::int64_t wallet);
    std::int64_t entry_count(const std::string& tx_id);
    // Polls until every transaction left `queued`, or the deadline; returns how many are still queued.
    std::size_t wait_final(const std::vector<std::string>& ids, std::chrono::seconds deadline = std::chrono::seconds(90));
    std::vector<std::string> reconcile();
    // Rows of ledger.unannounced: batches whose announcements were not confirmed (yet).
    std::int64_t unannounced();

    // Empties the ledger queues (main, retry tiers, error) and notifier.events, and leaves
    // nothing of earlier test cases to the recovery loop (unannounced rows, the scan's
    // watermark moved to now).
    void purge_queues();
    amqp::connection_options amqp_options() const;
    std::unique_ptr<child_process> start_worker(const std::string& replica, std::map<std::string, std::string> extra = {});

private:
    std::unique_ptr<db::pool> ledger_;
    std::unique_ptr<db::pool> gateway_;
    std::unique_ptr<amqp::publisher> publisher_;
};

}  // namespace txp::testing
