// Test support for the notifier: the notify schema migrated, subscriptions created through
// the gateway's path (notify.create_subscription with the gateway role), tx events
// published to txp.events as the ledger-worker does, local webhook receivers, the notifier
// as a real process, and polling helpers.
#pragma once

#include "process.hpp"

#include "feed.hpp"
#include "subscriptions.hpp"
#include "webhook_crypto.hpp"

#include "txp/amqp/amqp.hpp"
#include "txp/db/db.hpp"
#include "txp/http/server.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace txp::testing {

inline constexpr const char* test_webhook_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

// An HTTP endpoint on 127.0.0.1 that records what it receives and answers as told.
class webhook_receiver {
public:
    struct received {
        std::string body;
        std::string signature;
        std::string event_id;
        std::string delivery_id;
        std::string attempt;
    };
    // reply(n) for the n-th request (0-based): an HTTP status, or nullopt to never answer.
    explicit webhook_receiver(std::function<std::optional<unsigned>(std::size_t n)> reply = {});
    ~webhook_receiver();

    std::string url(const std::string& path = "/hook") const;
    std::vector<received> requests() const;
    std::size_t count() const;

private:
    std::function<std::optional<unsigned>(std::size_t)> reply_;
    mutable std::mutex mu_;
    std::vector<received> got_;
    std::vector<std::shared_ptr<http::response_writer>> unanswered_;
    std::unique_ptr<http::server> server_;
};

struct tx_event_spec {
    std::string status = "completed";  // completed, rejected, failed
    std::string type = "deposit";
    std::int64_t owner = 0;
    std::int64_t wallet = 0;
    std::int64_t amount = 100;
    std::optional<std::int64_t> balance_after;
    std::optional<std::string> reason;
    std::optional<std::int64_t> to_owner;
    std::optional<std::int64_t> to_wallet;
    std::optional<std::int64_t> to_balance_after;
    std::string transaction_id;  // generated when empty
};

class notifier_fixture {
public:
    notifier_fixture();
    ~notifier_fixture();  // deletes the subscriptions this fixture created

    db::pool& notify_pool() { return *notify_; }
    db::pool& gateway_pool() { return *gateway_; }
    const notifier::secret_key& key() const { return key_; }
    amqp::connection_options amqp_options() const;

    // A user id no other test uses.
    static std::int64_t fresh_user();

    // Through notify.create_subscription as the gateway role, loopback allowed; returns
    // {id, secret}.
    std::pair<std::string, std::string> subscribe(std::int64_t user, const std::string& url,
                                                  std::vector<std::string> types = {"*"});

    // Publishes a tx.event.v1 like the ledger-worker's; returns the message (id = event id).
    amqp::outgoing tx_event(const tx_event_spec& spec);
    // Those events as one tx.events.v1 message, as a ledger-worker announces a run of them.
    static amqp::outgoing tx_events(const std::vector<amqp::outgoing>& singles);
    void publish(const std::vector<amqp::outgoing>& msgs);

    // Empties notifier.events, its retry tiers and its error queue.
    void purge_queues();
    std::unique_ptr<child_process> start_notifier(const std::string& name, std::map<std::string, std::string> extra = {});

    std::int64_t count(const std::string& sql, const std::string& param);
    // delivery status and attempts
    std::optional<std::pair<std::string, int>> delivery(const std::string& event_id, const std::string& subscription_id);

private:
    std::unique_ptr<db::pool> notify_;
    std::unique_ptr<db::pool> gateway_;
    std::unique_ptr<amqp::publisher> publisher_;
    notifier::secret_key key_;
    std::vector<std::pair<std::int64_t, std::string>> subscriptions_;
};

// Polls pred every 20 ms until it holds or the deadline passes; returns whether it held.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds deadline = std::chrono::seconds(20));


}  // namespace txp::testing
