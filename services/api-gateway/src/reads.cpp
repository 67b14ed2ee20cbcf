// Read routes: wallets (own, or all for an admin), a wallet's history with keyset
// pagination and filters, and single transactions. Another user's ids answer 404.
#include "api_internal.hpp"

#include "txp/common/money.hpp"

#include <algorithm>
#include <cstring>
#include <regex>

namespace txp::gateway {

namespace {

const std::string wallet_cols_sql =
    "w.id, w.owner_id, w.currency::text, w.status, w.balance, w.overdraft_limit, w.overdrawn, " + iso("w.created_at") + ", " +
    iso("w.updated_at");

const std::string transaction_cols_sql =
    "t.id::text, t.type, t.status, t.reason, t.wallet_id, t.to_wallet_id, t.amount, t.currency::text, t.description, "
    "t.metadata::text, t.idempotency_scope, t.idempotency_key, t.balance_after, t.to_balance_after, " +
    iso("t.created_at") + ", " + iso("t.finished_at") + ", t.reverses_transaction_id::text, t.origin, " +
    "(extract(epoch FROM t.created_at) * 1000000)::bigint";

// Base64url without padding, for opaque cursors.
const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64_encode(std::string_view in) {
    std::string out;
    unsigned val = 0;
    int bits = -6;
    for (unsigned char ch : in) {
        val = (val << 8) + ch;
        bits += 8;
        while (bits >= 0) {
            out.push_back(b64[(val >> bits) & 0x3F]);
            bits -= 6;
        }
    }
    if (bits > -6) out.push_back(b64[((val << 8) >> (bits + 8)) & 0x3F]);
    return out;
}

std::optional<std::string> b64_decode(std::string_view in) {
    std::string out;
    unsigned val = 0;
    int bits = -8;
    for (char ch : in) {
        const char* p = std::strchr(b64, ch);
        if (ch == '\0' || p == nullptr) return std::nullopt;
        val = (val << 6) + static_cast<unsigned>(p - b64);
        bits += 6;
        if (bits >= 0) {
            out.push_back(static_cast<char>((val >> bits) & 0xFF));
            bits -= 8;
        }
    }
    return out;
}

struct cursor {
    std::int64_t created_us;
    std::string id;
};

std::string encode_cursor(std::int64_t created_us, const std::string& id) {
    return b64_encode(std::to_string(created_us) + ":" + id);
}

cursor decode_cursor(const std::string& text) {
    auto raw = text.size() <= 128 ? b64_decode(text) : std::nullopt;
    static const std::regex shape("^(-?[0-9]{1,18}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$");
    std::smatch m;
    if (!raw || !std::regex_match(*raw, m, shape)) fail_field("cursor", "cursor is not a cursor this API returned.");
    return {std::stoll(m[1].str()), m[2].str()};
}

std::optional<std::string> timestamp_query(const http::request& req, const char* name) {
    auto v = req.query_param(name);
    if (!v) return std::nullopt;
    static const std::regex shape(
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$");
    if (v->size() > 40 || !std::regex_match(*v, shape)) {
        fail_field(name, std::string(name) + " must be an ISO-8601 date or date-time, e.g. 2026-01-31T12:00:00Z.");
    }
    return v;
}

std::optional<std::string> enum_query(const http::request& req, const char* name, std::initializer_list<const char*> values) {
    auto v = req.query_param(name);
    if (!v) return std::nullopt;
    if (std::none_of(values.begin(), values.end(), [&](const char* x) { return *v == x; })) {
        std::string list;
        for (const char* x : values) list += (list.empty() ? "" : ", ") + std::string(x);
        fail_field(name, std::string(name) + " must be one of " + list + ".");
    }
    return v;
}

// The wallet's row when the caller may see it (owner, or an admin); else 404.
pqxx::row visible_wallet(pqxx::work& w, const caller& me, std::int64_t id) {
    auto r = w.exec_params("SELECT " + wallet_cols_sql + " FROM ledger.wallets w WHERE w.id = $1", id);
    if (r.empty() || (!me.admin() && r[0][1].as<std::int64_t>() != me.id)) fail_not_found("The wallet");
    return r[0];
}

// The condition on a wallet's incoming half (transfers to it): money shows once it arrived;
// a transfer the sender could not make (rejected, failed) or that is still queued is the
// sender's business. An admin sees everything.
std::string incoming_filter(const caller& viewer) { return viewer.admin() ? "" : " AND t.status = 'completed'"; }

}  // namespace

const char* const wallet_columns = wallet_cols_sql.c_str();
const char* const transaction_columns = transaction_cols_sql.c_str();

void write_wallet(json::writer& j, const pqxx::row& r) {
    auto balance = r[4].as<std::int64_t>();
    auto limit = r[5].as<std::int64_t>();
    auto currency = r[2].as<std::string>();
    j.start_object();
    j.kv("id", r[0].as<std::int64_t>()).kv("owner_id", r[1].as<std::int64_t>()).kv("currency", currency);
    j.kv("status", r[3].as<std::string>()).kv("balance", balance);
    j.kv("available", r[6].as<bool>() ? std::int64_t{0} : std::max<std::int64_t>(0, balance + limit));
    j.kv("overdraft_limit", limit).kv("overdrawn", r[6].as<bool>());
    if (auto e = money::minor_unit_exponent(currency)) j.kv("balance_decimal", money::format_decimal(balance, *e));
    j.kv("created_at", r[7].as<std::string>()).kv("updated_at", r[8].as<std::string>());
    j.end_object();
}

void write_transaction(json::writer& j, const pqxx::row& r, const caller& viewer, std::optional<std::int64_t> wallet,
                       bool sees_source, bool sees_destination) {
    auto opt_str = [&](const char* k, const pqxx::field& f) {
        j.key(k);
        if (f.is_null()) j.null();
        else j.str(f.as<std::string>());
    };
    auto opt_int = [&](const char* k, const pqxx::field& f) {
        j.key(k);
        if (f.is_null()) j.null();
        else j.i64(f.as<std::int64_t>());
    };
    auto wallet_id = r[4].as<std::int64_t>();
    j.start_object();
    j.kv("id", r[0].as<std::string>()).kv("type", r[1].as<std::string>()).kv("status", r[2].as<std::string>());
    opt_str("reason", r[3]);
    j.kv("wallet_id", wallet_id);
    opt_int("to_wallet_id", r[5]);
    j.kv("amount", r[6].as<std::int64_t>()).kv("currency", r[7].as<std::string>());
    if (wallet) {
        // Which way the money moved for the wallet whose history this is.
        auto type = r[1].as<std::string>();
        j.key("direction");
        if (type == "reversal") j.null();
        else j.str(type == "deposit" || (type == "transfer" && *wallet != wallet_id) ? "credit" : "debit");
    }
    opt_str("description", r[8]);
    // The description travels with the money (a transfer's memo); metadata is the sender's
    // own and stays with the source side.
    if (r[9].is_null() || !sees_source) j.key("metadata").null();
    else j.raw("metadata", r[9].as<std::string>());
    // The caller's own idempotency key is their reference; someone else's stays private.
    j.key("reference");
    if (r[10].as<std::string>() == viewer.idempotency_scope()) j.str(r[11].as<std::string>());
    else j.null();
    j.key("balance_after");
    if (sees_source && !r[12].is_null()) j.i64(r[12].as<std::int64_t>());
    else j.null();
    j.key("to_balance_after");
    if (sees_destination && !r[13].is_null()) j.i64(r[13].as<std::int64_t>());
    else j.null();
    j.kv("created_at", r[14].as<std::string>());
    opt_str("finished_at", r[15]);
    if (!r[16].is_null()) j.kv("reverses_transaction_id", r[16].as<std::string>());
    j.kv("origin", r[17].as<std::string>());
    j.end_object();
}

std::optional<http::response> api::impl::list_wallets(context& c) {
    auto limit = int_query(c.req, "limit", 1, 100).value_or(100);
    std::int64_t after = 0;
    if (auto cur = c.req.query_param("cursor")) {
        auto raw = cur->size() <= 40 ? b64_decode(*cur) : std::nullopt;
        if (!raw || raw->empty() || raw->size() > 18 ||
            !std::all_of(raw->begin(), raw->end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
            fail_field("cursor", "cursor is not a cursor this API returned.");
        }
        after = std::stoll(*raw);
    }
    return in_transaction(pool, [&](pqxx::work& w) {
        auto rows = c.me().admin()
                        ? w.exec_params("SELECT " + wallet_cols_sql + " FROM ledger.wallets w WHERE w.id > $1 ORDER BY w.id LIMIT $2",
                                        after, limit + 1)
                        : w.exec_params("SELECT " + wallet_cols_sql +
                                            " FROM ledger.wallets w WHERE w.owner_id = $1 AND w.id > $2 ORDER BY w.id LIMIT $3",
                                        c.me().id, after, limit + 1);
        json::writer j;
        j.start_object().key("wallets").start_array();
        std::size_t n = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(limit));
        for (std::size_t i = 0; i < n; ++i) write_wallet(j, rows[i]);
        j.end_array().key("next_cursor");
        if (rows.size() > n) j.str(b64_encode(std::to_string(rows[n - 1][0].as<std::int64_t>())));
        else j.null();
        j.end_object();
        return json_response(200, j.str());
    });
}

std::optional<http::response> api::impl::my_wallet(context& c) {
    auto currency = c.req.query_param("currency");
    if (currency && !money::is_currency(*currency)) fail_field("currency", "currency must be an ISO 4217 code such as USD.");
    return in_transaction(pool, [&](pqxx::work& w) {
        auto rows = w.exec_params("SELECT " + wallet_cols_sql +
                                      " FROM ledger.wallets w WHERE w.owner_id = $1 AND ($2::text IS NULL OR w.currency = $2) "
                                      "ORDER BY w.id LIMIT 1",
                                  c.me().id, currency);
        if (rows.empty()) fail_not_found("A wallet of yours");
        auto wallet_id = rows[0][0].as<std::int64_t>();
        auto txs = w.exec_params(
            "SELECT * FROM ((SELECT " + transaction_cols_sql +
                " FROM ledger.transactions t WHERE t.wallet_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT 10) "
                "UNION ALL (SELECT " + transaction_cols_sql +
                " FROM ledger.transactions t WHERE t.to_wallet_id = $1" + incoming_filter(c.me()) +
                " ORDER BY t.created_at DESC, t.id DESC LIMIT 10)) x "
                "ORDER BY 19 DESC, 1 DESC LIMIT 10",
            wallet_id);
        json::writer j;
        j.start_object().key("wallet");
        write_wallet(j, rows[0]);
        j.key("recent_transactions").start_array();
        for (const auto& t : txs) {
            write_transaction(j, t, c.me(), wallet_id, t[4].as<std::int64_t>() == wallet_id,
                              !t[5].is_null() && t[5].as<std::int64_t>() == wallet_id);
        }
        j.end_array().end_object();
        return json_response(200, j.str());
    });
}

std::optional<http::response> api::impl::get_wallet(context& c) {
    auto id = id_param(c, "id", "The wallet");
    // The hottest read: grouped with concurrent ones into one query; no io thread waits.
    wallets.read(id, [writer = c.writer, me = c.me(), request_id = c.req.request_id, path = c.req.path](
                         const pqxx::row* row, std::exception_ptr error) {
        http::response resp;
        try {
            if (error) std::rethrow_exception(error);
            if (row == nullptr || (!me.admin() && (*row)[1].as<std::int64_t>() != me.id)) {
                resp = http::problem(404, "not-found", "Not Found", "The wallet was not found.", request_id);
            } else {
                json::writer j;
                write_wallet(j, *row);
                resp = json_response(200, j.str());
            }
        } catch (const std::exception& e) {
            resp = error_response(e, request_id, path);
        }
        writer->send(std::move(resp));
    });
    return std::nullopt;
}

std::optional<http::response> api::impl::wallet_transactions(context& c) {
    auto id = id_param(c, "id", "The wallet");
    auto limit = int_query(c.req, "limit", 1, 100).value_or(20);
    auto type = enum_query(c.req, "type", {"deposit", "withdrawal", "payment", "transfer", "reversal"});
    auto status = enum_query(c.req, "status", {"queued", "completed", "rejected", "failed"});
    auto from = timestamp_query(c.req, "from");
    auto to = timestamp_query(c.req, "to");
    auto min_amount = int_query(c.req, "min_amount", 1, 9007199254740991);
    auto max_amount = int_query(c.req, "max_amount", 1, 9007199254740991);
    std::optional<cursor> after;
    if (auto cur = c.req.query_param("cursor")) after = decode_cursor(*cur);
    std::optional<std::int64_t> after_us = after ? std::optional(after->created_us) : std::nullopt;
    std::optional<std::string> after_id = after ? std::optional(after->id) : std::nullopt;

    // The same filters on both halves: the wallet as source, and as destination.
    const std::string filters =
        " AND ($2::text IS NULL OR t.type = $2) AND ($3::text IS NULL OR t.status = $3)"
        " AND ($4::timestamptz IS NULL OR t.created_at >= $4) AND ($5::timestamptz IS NULL OR t.created_at < $5)"
        " AND ($6::bigint IS NULL OR t.amount >= $6) AND ($7::bigint IS NULL OR t.amount <= $7)"
        " AND ($8::bigint IS NULL OR (t.created_at, t.id) < ('epoch'::timestamptz + $8 * interval '1 microsecond', $9::uuid))"
        " ORDER BY t.created_at DESC, t.id DESC LIMIT $10";
    return in_transaction(pool, [&](pqxx::work& w) {
        visible_wallet(w, c.me(), id);
        auto rows = w.exec_params("SELECT * FROM ((SELECT " + transaction_cols_sql +
                                      " FROM ledger.transactions t WHERE t.wallet_id = $1" + filters + ") UNION ALL (SELECT " +
                                      transaction_cols_sql + " FROM ledger.transactions t WHERE t.to_wallet_id = $1" +
                                      incoming_filter(c.me()) + filters +
                                      ")) x ORDER BY 19 DESC, 1 DESC LIMIT $10",
                                  id, type, status, from, to, min_amount, max_amount, after_us, after_id, limit + 1);
        json::writer j;
        j.start_object().kv("wallet_id", id).key("transactions").start_array();
        std::size_t n = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(limit));
        for (std::size_t i = 0; i < n; ++i) {
            const auto& t = rows[i];
            write_transaction(j, t, c.me(), id, t[4].as<std::int64_t>() == id, !t[5].is_null() && t[5].as<std::int64_t>() == id);
        }
        j.end_array().key("next_cursor");
        if (rows.size() > n) j.str(encode_cursor(rows[n - 1][18].as<std::int64_t>(), rows[n - 1][0].as<std::string>()));
        else j.null();
        j.end_object();
        return json_response(200, j.str());
    });
}

std::optional<http::response> api::impl::get_transaction(context& c) {
    auto it = c.params.find("id");
    static const std::regex uuid("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
    if (it == c.params.end() || it->second.size() != 36 || !std::regex_match(it->second, uuid)) fail_not_found("The transaction");
    // One statement: no BEGIN/COMMIT round trips, and a plan prepared once per connection.
    return single_read(pool, [&](pqxx::nontransaction& n) {
        auto rows = n.exec_prepared(transaction_statement, it->second);
        if (rows.empty()) fail_not_found("The transaction");
        const auto& t = rows[0];
        bool source = !t[19].is_null() && t[19].as<std::int64_t>() == c.me().id;
        bool dest = !t[20].is_null() && t[20].as<std::int64_t>() == c.me().id;
        // The recipient alone sees a transfer once it completed (as in the wallet's history).
        if (!source && !c.me().admin() && (!dest || t[2].as<std::string>() != "completed")) fail_not_found("The transaction");
        json::writer j;
        write_transaction(j, t, c.me(), std::nullopt, source || c.me().admin(), dest || c.me().admin());
        return json_response(200, j.str());
    });
}

}  // namespace txp::gateway
