// The ledger's core: parsing ledger.transaction.v1 messages and applying a batch of them
// as double-entry postings in one DB transaction, in each wallet's acceptance order.
#pragma once

#include "txp/amqp/message.hpp"
#include "txp/db/db.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace txp::ledger {

inline constexpr const char* message_type = "ledger.transaction.v1";
// Outcomes go out as tx.events.v1: runs of tx.event.v1 elements of the same status.
inline constexpr const char* events_type = "tx.events.v1";
inline constexpr std::size_t max_events_per_message = 500;

struct tx_message {
    std::string transaction_id;
    std::string type;
    std::int64_t wallet_id = 0;
    std::optional<std::int64_t> to_wallet_id;
    std::int64_t amount = 0;
    std::string currency;
    std::int64_t sequence = 0;
    std::optional<std::int64_t> to_sequence;
    std::optional<std::string> reverses_transaction_id;
    std::optional<std::string> reference;
    std::string origin;
    std::string accepted_at;

    std::string to_json() const;
};

// A message that cannot be applied at all: it goes to the error queue with this reason.
struct invalid_message {
    std::string reason;  // malformed_json, schema_invalid, unknown_message_type
    std::string detail;
};

// Parses and validates a message body against proto/ledger.transaction.v1.schema.json.
// amqp_type is the AMQP `type` property ("" is accepted as the default type).
std::optional<tx_message> parse_message(std::string_view body, std::string_view amqp_type, invalid_message& why);

// The announced outcome of a transaction (proto/tx.event.v1.schema.json).
struct tx_event {
    std::string transaction_id;
    std::string status;  // completed, rejected, failed
    std::optional<std::string> reason;
    std::string type;
    std::int64_t wallet_id = 0;
    std::optional<std::int64_t> to_wallet_id;
    std::optional<std::int64_t> owner_id;
    std::optional<std::int64_t> to_owner_id;
    std::int64_t amount = 0;
    std::string currency;
    std::optional<std::int64_t> balance_after;
    std::optional<std::int64_t> to_balance_after;
    std::optional<std::string> reference;
    std::string occurred_at;
    // Its place in the order the batch applied transactions in (1, 2, ...); 0 when an earlier
    // batch applied it and this is announcing it again. Not part of the message.
    std::uint64_t applied_rank = 0;

    // Deterministic, so a re-announcement carries the same id and consumers dedupe it.
    std::string event_id() const { return transaction_id + ":" + status; }
    std::string routing_key() const { return "tx." + status; }
    std::string to_json() const;
};

enum class outcome_kind {
    completed,   // applied; announce
    rejected,    // business outcome (insufficient_funds, ...); announce
    duplicate,   // already processed; announce the recorded outcome again
    early,       // its predecessor in the wallet's order is not applied yet; try again shortly
    busy,        // a wallet of it is locked by another batch (without waiting); try again shortly
    invalid,     // permanent: park in the error queue with reason/detail
};

struct outcome {
    outcome_kind kind = outcome_kind::invalid;
    std::string reason;
    std::string detail;
    std::optional<tx_event> event;  // completed, rejected, duplicate (when terminal)
};

struct batch_item {
    std::string message_id;
    tx_message msg;
};

// The outcome announcements of a run of events: tx.events.v1 messages, one per run of the same
// status (so that the routing key says tx.completed, tx.rejected or tx.failed and the order is
// kept), of at most max_events_per_message. from[k] lists the positions in `events` that
// message k carries. correlation_id goes on a message that carries a single event.
struct announcement_messages {
    std::vector<amqp::outgoing> msgs;
    std::vector<std::vector<std::size_t>> from;
};
announcement_messages announce(const std::vector<const tx_event*>& events,
                               const std::vector<std::string>& correlation_ids = {});

// A DB transaction that made transactions final also wrote one row of ledger.unannounced
// listing them; `journal` is its id (0: none). Once the broker confirmed their announcements,
// the row is deleted (processor::forget or apply_options::announced); a row left behind is
// announced again by the recovery loop.
struct apply_options {
    bool allow_chain = true;
    bool wait_for_wallets = true;
    // ledger.unannounced rows whose announcements the broker confirmed: deleted in the same
    // DB transaction as the batch (no round trip of their own).
    std::vector<std::int64_t> announced;
};

struct apply_result {
    std::vector<outcome> outcomes;  // outcomes[i] belongs to items[i]
    // Transactions applied from the database ahead of their messages (chaining), or by
    // recovery: their outcomes, in the order applied (to be announced with the items').
    std::vector<tx_event> chained;
    std::int64_t journal = 0;
};

// Applies batches. Thread-compatible: one processor per worker thread.
class processor {
public:
    processor(db::pool& pool, std::string replica);

    // One DB transaction for the whole batch; outcomes[i] belongs to items[i]. Safe to call
    // again with the same items (idempotent through the inbox and transaction status).
    // An item that waits for its predecessor makes the batch apply that wallet's accepted
    // transactions from the database in order ("chaining", unless allow_chain is false): the
    // outcomes of those that are not items go to `chained` (for logs; each is announced by
    // its own message, which finds it applied). wait_for_wallets false: wallets locked by
    // another batch are not waited for; the items touching them come back `busy`, nothing of
    // them recorded. Throws db::db_error when the database fails (kind says whether to retry).
    std::vector<outcome> apply(const std::vector<batch_item>& items, std::vector<tx_event>* chained = nullptr,
                               bool allow_chain = true, bool wait_for_wallets = true);
    // The same, with the row of ledger.unannounced it wrote, and deleting confirmed ones.
    apply_result run(const std::vector<batch_item>& items, const apply_options& o);

    // Recovery: applies the accepted transactions of these wallets from the database, in
    // each wallet's sequence order from the next one it expects (past transactions parked
    // as failed), as a batch would chain them: for transactions whose messages were lost.
    // Wallets another batch holds are skipped (never waits for a lock). Returns what it
    // applied in `chained`, and its ledger.unannounced row.
    apply_result recover(const std::vector<std::int64_t>& wallets);

    // Ends a queued transaction as failed with the reason (its message was parked), so that
    // the wallet's later transactions are not held up, and returns its event. When it was no
    // longer queued (applied by a batch that chained it, or marked before), returns its
    // recorded outcome instead, so the parked message still announces it. journal: the
    // ledger.unannounced row written for a transaction it failed (0: none).
    std::optional<tx_event> mark_failed(const tx_message& msg, const std::string& reason, std::int64_t* journal = nullptr);

    // The recorded outcomes of final transactions, in the order given (unknown or queued
    // ones left out): for announcing them again.
    std::vector<tx_event> recorded_outcomes(const std::vector<std::string>& transaction_ids);

    // Deletes ledger.unannounced rows whose announcements were confirmed.
    void forget(const std::vector<std::int64_t>& journal);

private:
    db::pool& pool_;
    std::string replica_;
};

// Demo data: wallets 101-105 (owners 1-5, USD) with an opening deposit, once.
void seed_demo(db::pool& pool, std::int64_t opening_balance);

// Checks every ledger invariant on the live database; returns the problems found (empty
// when all hold) and lists overdrawn wallets separately in `notes`.
std::vector<std::string> reconcile(db::pool& pool, std::vector<std::string>& notes);

}  // namespace txp::ledger
