// Feed entries: JSON form and the read queries (see feed.hpp).
#include "feed.hpp"

#include "txp/common/json.hpp"
#include "txp/db/db.hpp"

#include <algorithm>

namespace txp::notifier {

namespace {

using db::opt;

constexpr const char* iso = "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"";

}  // namespace

std::string feed_entry::to_json() const {
    json::writer w;
    w.start_object();
    w.kv("id", id).kv("seq", seq).kv("user_id", user_id).kv("event_id", event_id).kv("type", event_type);
    w.kv_opt("wallet_id", wallet_id);
    w.kv_opt("counterparty_wallet_id", counterparty_wallet_id);
    w.kv_opt("transaction_id", transaction_id);
    w.kv_opt("transaction_type", transaction_type);
    w.kv_opt("direction", direction);
    w.kv_opt("amount", amount);
    w.kv_opt("currency", currency);
    w.kv_opt("balance_after", balance_after);
    w.kv_opt("status", status);
    w.kv_opt("reason", reason);
    w.kv("occurred_at", occurred_at).kv("created_at", created_at);
    w.end_object();
    return w.str();
}

std::string feed_columns(const std::string& p) {
    return p + "id, " + p + "user_id, " + p + "user_seq, " + p + "event_id, " + p + "event_type, " + p + "wallet_id, " + p +
           "counterparty_wallet_id, " + p + "transaction_id::text, " + p + "transaction_type, " + p + "direction, " + p +
           "amount, " + p + "currency::text, " + p + "balance_after, " + p + "status, " + p + "reason, to_char(" + p +
           "occurred_at AT TIME ZONE 'UTC', '" + iso + "'), to_char(" + p + "created_at AT TIME ZONE 'UTC', '" + iso + "')";
}

feed_entry feed_entry_from_row(const pqxx::row& r, int c) {
    feed_entry e;
    e.id = r[c + 0].as<std::int64_t>();
    e.user_id = r[c + 1].as<std::int64_t>();
    e.seq = r[c + 2].as<std::int64_t>();
    e.event_id = r[c + 3].as<std::string>();
    e.event_type = r[c + 4].as<std::string>();
    e.wallet_id = opt<std::int64_t>(r[c + 5]);
    e.counterparty_wallet_id = opt<std::int64_t>(r[c + 6]);
    e.transaction_id = opt<std::string>(r[c + 7]);
    e.transaction_type = opt<std::string>(r[c + 8]);
    e.direction = opt<std::string>(r[c + 9]);
    e.amount = opt<std::int64_t>(r[c + 10]);
    e.currency = opt<std::string>(r[c + 11]);
    e.balance_after = opt<std::int64_t>(r[c + 12]);
    e.status = opt<std::string>(r[c + 13]);
    e.reason = opt<std::string>(r[c + 14]);
    e.occurred_at = r[c + 15].as<std::string>();
    e.created_at = r[c + 16].as<std::string>();
    return e;
}

std::vector<feed_entry> read_feed(pqxx::transaction_base& t, const feed_query& q) {
    int limit = std::clamp(q.limit, 1, 500);
    std::optional<std::string> type_exact, type_prefix;
    if (q.event_type) {
        if (q.event_type->size() > 2 && q.event_type->compare(q.event_type->size() - 2, 2, ".*") == 0) {
            type_prefix = q.event_type->substr(0, q.event_type->size() - 1);  // "tx."
        } else {
            type_exact = *q.event_type;
        }
    }
    auto res = t.exec_params(
        "SELECT " + feed_columns() +
            " FROM notify.notifications WHERE user_id = $1"
            " AND ($2::bigint IS NULL OR wallet_id = $2)"
            " AND ($3::text IS NULL OR event_type = $3)"
            " AND ($4::text IS NULL OR starts_with(event_type, $4))"
            " AND ($5::bigint IS NULL OR user_seq < $5)"
            " AND ($6::bigint IS NULL OR user_seq > $6)"
            " ORDER BY user_seq " +
            std::string(q.oldest_first ? "ASC" : "DESC") + " LIMIT $7",
        q.user_id, q.wallet_id, type_exact, type_prefix, q.before_seq, q.after_seq, limit);
    std::vector<feed_entry> out;
    out.reserve(res.size());
    for (const auto& r : res) out.push_back(feed_entry_from_row(r));
    return out;
}

}  // namespace txp::notifier
