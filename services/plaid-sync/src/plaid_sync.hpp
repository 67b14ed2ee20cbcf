// plaid-sync's core: the plaid.sync.v1 job and plaid.event.v1 messages, and the syncer that
// brings one item up to date: /transactions/sync to the end from the saved cursor, accounts
// and balances, and every change plus the new cursor (and the ledger mirrors of posted bank
// transactions, and the outbox rows announcing them) in one DB transaction.
#pragma once

#include "txp/amqp/failure_routing.hpp"
#include "txp/amqp/message.hpp"
#include "txp/db/db.hpp"
#include "txp/outbox/outbox.hpp"
#include "txp/plaid/client.hpp"
#include "txp/plaid/crypto.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace txp::plaid_sync {

inline constexpr const char* service_name = "plaid-sync";
inline constexpr const char* sync_type = "plaid.sync.v1";
inline constexpr const char* event_type = "plaid.event.v1";
inline constexpr const char* sync_queue = "plaid.sync";

// ---- messages -----------------------------------------------------------------------------

struct sync_job {
    std::string item_id;
    std::string reason;  // webhook, manual, link, schedule, recovery
    std::optional<std::string> webhook_code;
    std::string to_json() const;
};

// nullopt (and why) when the body is not a valid plaid.sync.v1.
std::optional<sync_job> parse_sync_job(std::string_view body, std::string_view amqp_type, amqp::failure& why);

// The job as a message for txp.commands / plaid.sync.
amqp::outgoing sync_message(const sync_job& job, const std::string& correlation_id);

struct plaid_event {
    std::string event;  // plaid.item_linked, plaid.sync_completed, ...
    std::string item_id;
    std::int64_t owner_id = 0;
    std::optional<std::string> institution_id, institution_name;
    std::optional<std::int64_t> accounts, added, modified, removed, mirrored, reversed;
    std::optional<std::string> reason, status, error_type, error_code, display_message;
    std::string to_json(const std::string& event_id) const;
};

// The event as a message for txp.events (routing key = event name), with a fresh id.
amqp::outgoing event_message(const plaid_event& e, const std::string& correlation_id);

// Writes a message into the DB transaction: the outbox of whoever calls (plaid.outbox for
// plaid-sync, the gateway's own for its routes).
using enqueue_fn = std::function<void(pqxx::work&, const amqp::outgoing&)>;
enqueue_fn enqueue_into(const outbox::outbox& box);

// Queues a sync job in the DB transaction and marks the item as wanting a sync, so that the
// recovery finds the job again if its message is lost (plaid migration 0004).
void queue_sync(pqxx::work& w, const enqueue_fn& enqueue, const sync_job& job, const std::string& correlation_id);

// ---- the syncer ------------------------------------------------------------------------------

// A failure the consumer routes: transient to the retry tiers, permanent to the error queue.
class sync_failure : public std::runtime_error {
public:
    sync_failure(amqp::failure_kind kind, std::string reason, const std::string& detail)
        : std::runtime_error(detail), kind_(kind), reason_(std::move(reason)) {}
    amqp::failure_kind kind() const { return kind_; }
    const std::string& reason() const { return reason_; }

private:
    amqp::failure_kind kind_;
    std::string reason_;
};

enum class sync_status {
    synced,          // changes (if any) applied, cursor advanced
    not_ready,       // Plaid has no data yet (NOT_READY); a webhook will say when
    deferred,        // another sync of the item runs; it will sync once more
    skipped,         // unknown item, or not active (login required, revoked, ...)
    login_required,  // Plaid said ITEM_LOGIN_REQUIRED: item marked and announced
};
const char* to_string(sync_status s);

struct sync_result {
    sync_status status = sync_status::skipped;
    int added = 0, modified = 0, removed = 0;
    int mirrored = 0, reversed = 0;
    int pages = 0, restarts = 0, rounds = 0;
};

struct sync_options {
    int page_size = 500;
    int max_restarts = 5;  // mutation during pagination: restarts of the loop per round
    int max_rounds = 10;   // follow-up syncs requested while one ran
};

class syncer {
public:
    syncer(db::pool& pool, plaid::client& client, const plaid::token_cipher& cipher, enqueue_fn enqueue,
           sync_options opts = {});

    // Never two at once for one item, across processes (an advisory lock per item); a call
    // that finds the item busy asks the running one for another round and returns deferred.
    // Throws sync_failure for what the consumer must retry or park.
    sync_result sync_item(const std::string& item_id, const std::string& reason, const std::string& correlation_id);

private:
    struct item_row;
    sync_result run_round(const item_row& item, const std::string& reason, const std::string& correlation_id);

    db::pool& pool_;
    plaid::client& client_;
    const plaid::token_cipher& cipher_;
    enqueue_fn enqueue_;
    sync_options opts_;
};

// Moves the item to `status` (with the error code) and, when that changed its status,
// announces `event` in the same DB transaction. Returns false for an unknown item.
bool set_item_status(pqxx::work& w, const enqueue_fn& enqueue, const std::string& item_id, const std::string& status,
                     const std::optional<std::string>& error_code, const std::string& event,
                     const std::optional<std::string>& error_type, const std::optional<std::string>& display_message,
                     const std::string& correlation_id);

// db::with_transaction, except that an exception of our own thrown inside (sync_failure,
// request_error, ...) comes out as itself instead of as a db_error. The transaction is rolled
// back either way.
template <typename F>
void run_transaction(db::pool& pool, F&& fn) {
    std::exception_ptr ours;
    try {
        db::with_transaction(pool, [&](pqxx::work& w) {
            ours = nullptr;
            try {
                fn(w);
            } catch (const pqxx::failure&) {
                throw;
            } catch (...) {
                ours = std::current_exception();
                throw;
            }
        });
    } catch (...) {
        if (ours) std::rethrow_exception(ours);
        throw;
    }
}

// Statuses in which an item is synced (a pending expiration still syncs).
bool syncable(const std::string& status);

// Minor units of a Plaid decimal in `currency` (USD when unknown); nullopt when it does not fit.
std::optional<std::int64_t> minor_units(const std::string& decimal, const std::optional<std::string>& currency);

// The accounts as the JSON array plaid.save_linked_item / update_balances take.
std::string accounts_json(const std::vector<plaid::account>& accounts);

}  // namespace txp::plaid_sync
