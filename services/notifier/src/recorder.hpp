// Turning events from notifier.events into feed entries and scheduled webhook deliveries:
// parsing and validating a message, and recording a batch of them in one DB transaction,
// idempotent on (event id, leg).
#pragma once

#include "feed.hpp"

#include "txp/amqp/message.hpp"
#include "txp/db/db.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace txp::notifier {

inline constexpr const char* created_type = "notify.created.v1";
inline constexpr const char* webhook_type = "notify.webhook.v1";
inline constexpr const char* tx_event_type = "tx.event.v1";
inline constexpr const char* tx_events_type = "tx.events.v1";

// One user's view of an event: a row of notify.notifications to be.
struct event_leg {
    std::string event_id;
    int leg = 0;
    std::int64_t user_id = 0;
    std::string event_type;    // tx.completed ...
    std::string message_type;  // tx.event.v1 ...
    std::optional<std::int64_t> wallet_id;
    std::optional<std::int64_t> counterparty_wallet_id;
    std::optional<std::string> transaction_id;
    std::optional<std::string> transaction_type;
    std::optional<std::string> direction;
    std::optional<std::int64_t> amount;
    std::optional<std::string> currency;
    std::optional<std::int64_t> balance_after;
    std::optional<std::string> status;
    std::optional<std::string> reason;
    std::string occurred_at;
    std::string payload;  // the event body as received (valid JSON)
};

// A message that can never be recorded: parked with this reason.
struct invalid_event {
    std::string reason;  // malformed_json, unknown_message_type, schema_invalid, missing_event_id, no_recipient, invalid_timestamp
    std::string detail;
};

// Parses one delivery. Accepts any `type` whose schema is in proto/ (validated against it),
// except the notifier's own notify.* types. tx.event.v1 yields leg 0 for the wallet's
// owner and, for a completed transfer, leg 1 for the destination's owner; tx.events.v1
// yields those of each of its events (each with its own event_id and payload); other types
// yield one leg for the body's user_id or owner_id. Returns nullopt and fills `why` when
// the message must be parked.
std::optional<std::vector<event_leg>> parse_event(const amqp::delivery& d, invalid_event& why);

struct record_result {
    std::vector<feed_entry> entries;  // every leg of the batch, new or recorded before
    std::size_t new_entries = 0;
    std::size_t new_deliveries = 0;
};

// Records legs (of any number of events) in one DB transaction: feed entries with their
// per-user sequence numbers, and one pending delivery per matching active subscription of
// each new entry's user. Legs recorded before are left alone (and returned). Throws
// db::db_error (kind says whether a retry may succeed).
record_result record(db::pool& pool, std::span<const event_leg> legs);

// notify.created announcements of recorded entries, one message per up to 500 (not one per
// entry): gateways receive every entry anyway and pick their users' out, and one persistent
// message per batch keeps the broker off the hot path.
std::vector<amqp::outgoing> created_messages(const std::vector<feed_entry>& entries, const std::string& correlation_id);

// Schedules parked or failed deliveries again with fresh attempts (an operator moved their
// messages back from the error queue). Returns how many were rescheduled.
std::size_t reschedule_deliveries(db::pool& pool, const std::vector<std::string>& delivery_ids);

}  // namespace txp::notifier
