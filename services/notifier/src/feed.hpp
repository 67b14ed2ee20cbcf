// The accounting feed as users see it: one entry per update, its JSON form (the same in the
// gateway's GET /v1/notifications, the SSE stream, notify.created and webhook bodies), and
// the read queries the gateway runs with its own (SELECT-only) role.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace txp::notifier {

struct feed_entry {
    std::int64_t id = 0;        // notify.notifications.id (global)
    std::int64_t user_id = 0;
    std::int64_t seq = 0;       // per user, increasing in commit order: the SSE id
    std::string event_id;
    std::string event_type;     // tx.completed, tx.rejected, tx.failed, plaid.*...
    std::optional<std::int64_t> wallet_id;
    std::optional<std::int64_t> counterparty_wallet_id;
    std::optional<std::string> transaction_id;
    std::optional<std::string> transaction_type;
    std::optional<std::string> direction;  // debit, credit
    std::optional<std::int64_t> amount;    // minor units
    std::optional<std::string> currency;
    std::optional<std::int64_t> balance_after;
    std::optional<std::string> status;
    std::optional<std::string> reason;
    std::string occurred_at;    // ISO-8601 UTC
    std::string created_at;

    // {"id","seq","user_id","event_id","type",...}: nulls are written as null.
    std::string to_json() const;
};

// The SELECT list that from_row reads (prefix: the table alias with its dot, e.g. "n.").
std::string feed_columns(const std::string& prefix = "");
feed_entry feed_entry_from_row(const pqxx::row& r, int first_column = 0);

struct feed_query {
    std::int64_t user_id = 0;
    std::optional<std::int64_t> wallet_id;
    std::optional<std::string> event_type;   // exact, or "tx.*"
    std::optional<std::int64_t> before_seq;  // newest first, strictly older than this (pagination)
    std::optional<std::int64_t> after_seq;   // strictly newer than this (SSE Last-Event-ID resume)
    int limit = 50;                          // clamped to 1..500
    bool oldest_first = false;               // true for resume: replay in order
};

// Only the user's own entries, whatever else the query says.
std::vector<feed_entry> read_feed(pqxx::transaction_base& t, const feed_query& q);

}  // namespace txp::notifier
