// The gateway-facing Plaid operations (see plaid_api.hpp).
#include "plaid_api.hpp"

#include "txp/common/json.hpp"
#include "txp/common/log.hpp"

#include <rapidjson/document.h>

namespace txp::plaid_sync {

namespace {

[[noreturn]] void rethrow_plaid(const plaid::api_error& e) {
    log::warn("Plaid call failed", {{"endpoint", e.endpoint()}, {"status", static_cast<std::int64_t>(e.http_status())},
                                    {"error_code", e.error_code()}, {"request_id", e.request_id()}});
    switch (e.classification()) {
        case plaid::error_class::item_login_required:
            throw request_error(409, "item_login_required", "the bank needs the user to log in again (Link update mode)");
        case plaid::error_class::rate_limited:
            throw request_error(503, "bank_rate_limited", "the bank connection is rate limited; retry later");
        case plaid::error_class::server_error:
        case plaid::error_class::transport:
        case plaid::error_class::invalid_response:
        case plaid::error_class::product_not_ready:
            throw request_error(502, "bank_unavailable", "the bank connection is unavailable; retry later");
        default:
            throw request_error(e.http_status() >= 400 && e.http_status() < 500 ? 400 : 502, "plaid_error",
                                e.error_code() + ": " + e.error_message());
    }
}

[[noreturn]] void rethrow_db(const std::exception& e) {
    auto state = db::sqlstate_of(e);
    if (state == "TX404") throw request_error(404, "not_found", db::primary_message(e));
    if (state == "TX400") throw request_error(400, "invalid_request", db::primary_message(e));
    if (state == "TX409") throw request_error(409, "conflict", db::primary_message(e));
    if (auto d = dynamic_cast<const db::db_error*>(&e); d && d->kind() == db::failure_kind::transient) {
        throw request_error(503, "database_unavailable", "the database is unavailable; retry later");
    }
    log::error("database error in a Plaid request", {{"error", e.what()}, {"sqlstate", state}});
    throw request_error(500, "internal_error", "unexpected database error");
}

template <typename F>
void transaction(db::pool& pool, F&& fn) {
    try {
        run_transaction(pool, fn);
    } catch (const request_error&) {
        throw;
    } catch (const db::db_error& e) {
        // with_transaction wraps the cause; its text carries the SQLSTATE message.
        if (!e.sqlstate().empty() && e.sqlstate().rfind("TX", 0) == 0) {
            auto s = e.sqlstate();
            throw request_error(s == "TX404" ? 404 : s == "TX409" ? 409 : 400,
                                s == "TX404" ? "not_found" : s == "TX409" ? "conflict" : "invalid_request",
                                db::primary_message(e));
        }
        rethrow_db(e);
    } catch (const pqxx::sql_error& e) {
        rethrow_db(e);
    }
}


const char* account_columns =
    "a.account_id, a.item_id, a.name, a.official_name, a.mask, a.type, a.subtype, a.available, a.current, a.credit_limit, "
    "a.iso_currency_code, a.wallet_id, to_char(a.balances_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

account_view account_of(const pqxx::row& r) {
    account_view a;
    a.account_id = r[0].as<std::string>();
    a.item_id = r[1].as<std::string>();
    a.name = r[2].as<std::string>();
    a.official_name = db::opt<std::string>(r[3]);
    a.mask = db::opt<std::string>(r[4]);
    a.type = r[5].as<std::string>();
    a.subtype = db::opt<std::string>(r[6]);
    a.available = db::opt<std::int64_t>(r[7]);
    a.current = db::opt<std::int64_t>(r[8]);
    a.limit = db::opt<std::int64_t>(r[9]);
    a.currency = db::opt<std::string>(r[10]);
    a.wallet_id = db::opt<std::int64_t>(r[11]);
    a.balances_updated_at = db::opt<std::string>(r[12]);
    return a;
}

std::string access_token_of(api_context& ctx, std::int64_t owner_id, const std::string& item_id) {
    std::string sealed;
    transaction(ctx.pool, [&](pqxx::work& w) {
        auto r = w.exec_params("SELECT access_token_enc FROM plaid.items WHERE item_id = $1 AND owner_id = $2", item_id, owner_id);
        if (r.empty()) throw request_error(404, "not_found", "no such item");
        sealed = pqxx::binarystring(r[0][0]).str();
    });
    try {
        return ctx.cipher.open(sealed, item_id);
    } catch (const std::exception&) {
        throw request_error(500, "internal_error", "the item's access token cannot be decrypted with the configured key");
    }
}

}  // namespace

std::string account_view::to_json() const {
    json::writer w;
    w.start_object().kv("account_id", account_id).kv("item_id", item_id).kv("name", name).kv_opt("official_name", official_name);
    w.kv_opt("mask", mask).kv("type", type).kv_opt("subtype", subtype);
    w.key("balances").start_object();
    w.kv_opt("available", available);
    w.kv_opt("current", current);
    w.kv_opt("limit", limit);
    w.kv_opt("currency", currency).kv_opt("updated_at", balances_updated_at).end_object();
    w.kv_opt("wallet_id", wallet_id);
    w.end_object();
    return w.str();
}

std::string item_view::to_json() const {
    json::writer w;
    w.start_object().kv("item_id", item_id).kv_opt("institution_id", institution_id).kv_opt("institution_name", institution_name);
    w.kv("status", status).kv_opt("error_code", error_code).kv_opt("last_sync_at", last_sync_at);
    w.kv_opt("last_sync_status", last_sync_status).kv("created_at", created_at);
    w.key("accounts").start_array();
    for (const auto& a : accounts) w.w().RawValue(a.to_json().c_str(), a.to_json().size(), rapidjson::kObjectType);
    w.end_array().end_object();
    return w.str();
}

std::string transaction_view::to_json() const {
    json::writer w;
    w.start_object().kv("transaction_id", transaction_id).kv("account_id", account_id).kv("item_id", item_id);
    w.kv_opt("amount", amount);
    w.kv("amount_decimal", amount_text).kv_opt("currency", currency).kv("date", date).kv_opt("authorized_date", authorized_date);
    w.kv("name", name).kv_opt("merchant_name", merchant_name).kv_opt("category_primary", category_primary);
    w.kv_opt("category_detailed", category_detailed).kv("pending", pending).kv_opt("pending_transaction_id", pending_transaction_id);
    w.kv_opt("ledger_transaction_id", ledger_transaction_id);
    w.end_object();
    return w.str();
}

std::string transactions_page::to_json() const {
    json::writer w;
    w.start_object().key("transactions").start_array();
    for (const auto& t : transactions) {
        auto j = t.to_json();
        w.w().RawValue(j.c_str(), j.size(), rapidjson::kObjectType);
    }
    w.end_array().kv_opt("next", next).end_object();
    return w.str();
}

plaid::link_token create_link_token(api_context& ctx, std::int64_t owner_id) {
    plaid::link_token_request r;
    r.client_user_id = "txp-user-" + std::to_string(owner_id);
    r.webhook = ctx.webhook_url;
    try {
        return ctx.client.link_token_create(r);
    } catch (const plaid::api_error& e) {
        rethrow_plaid(e);
    }
}

item_view exchange_public_token(api_context& ctx, std::int64_t owner_id, const std::string& public_token,
                                const std::string& correlation_id) {
    plaid::exchange_result ex;
    plaid::accounts_result accounts;
    try {
        ex = ctx.client.item_public_token_exchange(public_token);
        accounts = ctx.client.accounts_get(ex.access_token);
    } catch (const plaid::api_error& e) {
        rethrow_plaid(e);
    }
    auto sealed = ctx.cipher.seal(ex.access_token, ex.item_id);
    transaction(ctx.pool, [&](pqxx::work& w) {
        w.exec_params("SELECT plaid.save_linked_item($1, $2, $3, $4, $5, $6, $7::jsonb)", ex.item_id, owner_id,
                      accounts.item.institution_id, accounts.item.institution_name, pqxx::binarystring(sealed.data(), sealed.size()),
                      ctx.webhook_url, accounts_json(accounts.accounts));
        plaid_event e;
        e.event = "plaid.item_linked";
        e.item_id = ex.item_id;
        e.owner_id = owner_id;
        e.institution_id = accounts.item.institution_id;
        e.institution_name = accounts.item.institution_name;
        e.accounts = static_cast<std::int64_t>(accounts.accounts.size());
        e.status = "active";
        ctx.enqueue(w, event_message(e, correlation_id));
        queue_sync(w, ctx.enqueue, {ex.item_id, "link", std::nullopt}, correlation_id);
    });
    log::info("bank item linked", {{"item_id", ex.item_id}, {"owner_id", owner_id}, {"accounts", accounts.accounts.size()}});
    auto items = list_items(ctx.pool, owner_id);
    for (auto& i : items)
        if (i.item_id == ex.item_id) return i;
    throw request_error(500, "internal_error", "the linked item vanished");
}

item_view sandbox_link(api_context& ctx, std::int64_t owner_id, const plaid::sandbox_link_request& req,
                       const std::string& correlation_id) {
    std::string public_token;
    try {
        auto r = req;
        if (!r.webhook) r.webhook = ctx.webhook_url;
        public_token = ctx.client.sandbox_public_token_create(r);
    } catch (const plaid::api_error& e) {
        rethrow_plaid(e);
    }
    return exchange_public_token(ctx, owner_id, public_token, correlation_id);
}

std::vector<account_view> list_accounts(db::pool& pool, std::int64_t owner_id, const std::optional<std::string>& item_id) {
    std::vector<account_view> out;
    transaction(pool, [&](pqxx::work& w) {
        out.clear();
        auto r = w.exec_params(std::string("SELECT ") + account_columns +
                                   " FROM plaid.accounts a JOIN plaid.items i USING (item_id) WHERE i.owner_id = $1 "
                                   "AND ($2::text IS NULL OR a.item_id = $2) ORDER BY a.item_id, a.mask, a.account_id",
                               owner_id, item_id);
        for (const auto& row : r) out.push_back(account_of(row));
    });
    return out;
}

std::vector<item_view> list_items(db::pool& pool, std::int64_t owner_id) {
    std::vector<item_view> out;
    transaction(pool, [&](pqxx::work& w) {
        out.clear();
        auto r = w.exec_params(
            "SELECT item_id, institution_id, institution_name, status, error_code, "
            "to_char(last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), last_sync_status, "
            "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
            "FROM plaid.items WHERE owner_id = $1 ORDER BY created_at, item_id",
            owner_id);
        for (const auto& row : r) {
            item_view i;
            i.item_id = row[0].as<std::string>();
            i.institution_id = db::opt<std::string>(row[1]);
            i.institution_name = db::opt<std::string>(row[2]);
            i.status = row[3].as<std::string>();
            i.error_code = db::opt<std::string>(row[4]);
            i.last_sync_at = db::opt<std::string>(row[5]);
            i.last_sync_status = db::opt<std::string>(row[6]);
            i.created_at = row[7].as<std::string>();
            out.push_back(std::move(i));
        }
    });
    auto accounts = list_accounts(pool, owner_id);
    for (auto& i : out)
        for (const auto& a : accounts)
            if (a.item_id == i.item_id) i.accounts.push_back(a);
    return out;
}

transactions_page list_transactions(db::pool& pool, std::int64_t owner_id, const transaction_filter& f) {
    if (f.limit < 1 || f.limit > 500) throw request_error(400, "invalid_request", "limit must be from 1 to 500");
    transactions_page page;
    // Keyset pagination on (date DESC, transaction_id): `after` names the last row seen.
    transaction(pool, [&](pqxx::work& w) {
        page.transactions.clear();
        // A cursor that names nothing of the caller's would page from nowhere (an empty list).
        if (f.after && w.exec_params("SELECT 1 FROM plaid.transactions a JOIN plaid.items i ON i.item_id = a.item_id "
                                     "WHERE a.transaction_id = $1 AND i.owner_id = $2",
                                     *f.after, owner_id)
                           .empty()) {
            throw request_error(400, "invalid_request",
                                "after must name one of your bank transactions (the last one of the previous page)");
        }
        auto r = w.exec_params(
            "SELECT t.transaction_id, t.account_id, t.item_id, t.amount, t.amount_text, coalesce(t.iso_currency_code, "
            "t.unofficial_currency_code), t.date::text, t.authorized_date::text, t.name, t.merchant_name, t.category_primary, "
            "t.category_detailed, t.pending_transaction_id, t.pending, m.ledger_transaction_id::text "
            "FROM plaid.transactions t JOIN plaid.items i ON i.item_id = t.item_id "
            "LEFT JOIN plaid.mirrors m ON m.plaid_transaction_id = t.transaction_id AND m.reversal_transaction_id IS NULL "
            "WHERE i.owner_id = $1 AND ($2::text IS NULL OR t.account_id = $2) AND ($3::text IS NULL OR t.item_id = $3) "
            "AND ($4::date IS NULL OR t.date >= $4::date) AND ($5::date IS NULL OR t.date <= $5::date) "
            "AND ($6::bigint IS NULL OR t.amount >= $6) AND ($7::bigint IS NULL OR t.amount <= $7) "
            "AND ($8::text IS NULL OR t.category_primary = $8 OR t.category_detailed = $8) "
            "AND ($9::boolean IS NULL OR t.pending = $9) "
            "AND ($10::text IS NULL OR (t.date, t.transaction_id COLLATE \"C\") < (SELECT a.date, a.transaction_id COLLATE \"C\" "
            "FROM plaid.transactions a WHERE a.transaction_id = $10)) "
            "ORDER BY t.date DESC, t.transaction_id COLLATE \"C\" DESC LIMIT $11",
            owner_id, f.account_id, f.item_id, f.start_date, f.end_date, f.min_amount, f.max_amount, f.category,
            f.pending ? std::optional<std::string>(*f.pending ? "true" : "false") : std::nullopt, f.after, f.limit + 1);
        for (const auto& row : r) {
            if (static_cast<int>(page.transactions.size()) == f.limit) break;
            transaction_view t;
            t.transaction_id = row[0].as<std::string>();
            t.account_id = row[1].as<std::string>();
            t.item_id = row[2].as<std::string>();
            t.amount = db::opt<std::int64_t>(row[3]);
            t.amount_text = row[4].as<std::string>();
            t.currency = db::opt<std::string>(row[5]);
            t.date = row[6].as<std::string>();
            t.authorized_date = db::opt<std::string>(row[7]);
            t.name = row[8].as<std::string>();
            t.merchant_name = db::opt<std::string>(row[9]);
            t.category_primary = db::opt<std::string>(row[10]);
            t.category_detailed = db::opt<std::string>(row[11]);
            t.pending_transaction_id = db::opt<std::string>(row[12]);
            t.pending = row[13].as<bool>();
            t.ledger_transaction_id = db::opt<std::string>(row[14]);
            page.transactions.push_back(std::move(t));
        }
        page.next = r.size() > static_cast<std::size_t>(f.limit) ? std::optional<std::string>(page.transactions.back().transaction_id)
                                                                : std::nullopt;
    });
    return page;
}

void request_sync(api_context& ctx, std::int64_t owner_id, const std::string& item_id, const std::string& correlation_id) {
    transaction(ctx.pool, [&](pqxx::work& w) {
        auto r = w.exec_params("SELECT status FROM plaid.items WHERE item_id = $1 AND owner_id = $2", item_id, owner_id);
        if (r.empty()) throw request_error(404, "not_found", "no such item");
        if (r[0][0].as<std::string>() == "login_required") {
            throw request_error(409, "item_login_required", "the bank needs the user to log in again before it can sync");
        }
        queue_sync(w, ctx.enqueue, {item_id, "manual", std::nullopt}, correlation_id);
    });
}

account_view refresh_balance(api_context& ctx, std::int64_t owner_id, const std::string& account_id) {
    std::string item_id;
    transaction(ctx.pool, [&](pqxx::work& w) {
        auto r = w.exec_params("SELECT a.item_id FROM plaid.accounts a JOIN plaid.items i USING (item_id) "
                               "WHERE a.account_id = $1 AND i.owner_id = $2",
                               account_id, owner_id);
        if (r.empty()) throw request_error(404, "not_found", "no such account");
        item_id = r[0][0].as<std::string>();
    });
    auto token = access_token_of(ctx, owner_id, item_id);
    plaid::accounts_result res;
    try {
        res = ctx.client.accounts_balance_get(token, {account_id});
    } catch (const plaid::api_error& e) {
        rethrow_plaid(e);
    }
    transaction(ctx.pool, [&](pqxx::work& w) {
        w.exec_params("SELECT plaid.update_balances($1, $2::jsonb)", item_id, accounts_json(res.accounts));
    });
    for (auto& a : list_accounts(ctx.pool, owner_id, item_id))
        if (a.account_id == account_id) return a;
    throw request_error(404, "not_found", "no such account");
}

void remove_item(api_context& ctx, std::int64_t owner_id, const std::string& item_id, const std::string& correlation_id) {
    auto token = access_token_of(ctx, owner_id, item_id);
    try {
        ctx.client.item_remove(token);
    } catch (const plaid::api_error& e) {
        // Already gone at Plaid: forget it here too.
        if (e.classification() != plaid::error_class::invalid_access_token && e.error_code() != "ITEM_NOT_FOUND") rethrow_plaid(e);
    }
    transaction(ctx.pool, [&](pqxx::work& w) {
        if (!w.exec_params("SELECT plaid.remove_item($1, $2)", item_id, owner_id)[0][0].as<bool>()) return;
        plaid_event e;
        e.event = "plaid.item_removed";
        e.item_id = item_id;
        e.owner_id = owner_id;
        e.status = "removed";
        ctx.enqueue(w, event_message(e, correlation_id));
    });
    log::info("bank item removed", {{"item_id", item_id}, {"owner_id", owner_id}});
}

account_view link_account_to_wallet(api_context& ctx, std::int64_t owner_id, const std::string& account_id,
                                    std::optional<std::int64_t> wallet_id) {
    transaction(ctx.pool, [&](pqxx::work& w) {
        w.exec_params("SELECT plaid.link_account_to_wallet($1, $2, $3)", account_id, owner_id, wallet_id);
    });
    for (auto& a : list_accounts(ctx.pool, owner_id))
        if (a.account_id == account_id) return a;
    throw request_error(404, "not_found", "no such account");
}

webhook_outcome handle_webhook(api_context& ctx, std::string_view raw_body, const std::string& correlation_id) {
    rapidjson::Document d;
    d.Parse(raw_body.data(), raw_body.size());
    if (d.HasParseError() || !d.IsObject()) throw request_error(400, "invalid_request", "the webhook body is not a JSON object");
    auto str = [&](const rapidjson::Value& o, const char* k) -> std::optional<std::string> {
        auto it = o.FindMember(k);
        if (it == o.MemberEnd() || !it->value.IsString()) return std::nullopt;
        return std::string(it->value.GetString(), it->value.GetStringLength());
    };
    auto type = str(d, "webhook_type").value_or("");
    auto code = str(d, "webhook_code").value_or("");
    auto item_id = str(d, "item_id");
    webhook_outcome out{"ignored", item_id};
    if (!item_id) return out;
    std::optional<std::string> err_code, err_type, display;
    if (auto e = d.FindMember("error"); e != d.MemberEnd() && e->value.IsObject()) {
        err_code = str(e->value, "error_code");
        err_type = str(e->value, "error_type");
        display = str(e->value, "display_message");
    }
    transaction(ctx.pool, [&](pqxx::work& w) {
        out.action = "ignored";
        auto r = w.exec_params("SELECT status FROM plaid.items WHERE item_id = $1", *item_id);
        if (r.empty()) return;  // not ours (or removed): acknowledge, do nothing
        auto status = r[0][0].as<std::string>();
        if (type == "TRANSACTIONS") {
            // SYNC_UPDATES_AVAILABLE and the legacy codes alike: just sync (never act on counts).
            if (!syncable(status)) return;
            queue_sync(w, ctx.enqueue, {*item_id, "webhook", code}, correlation_id);
            out.action = "sync_queued";
        } else if (type == "ITEM") {
            bool changed = false;
            if (code == "ERROR") {
                bool login = err_code.value_or("") == "ITEM_LOGIN_REQUIRED";
                changed = set_item_status(w, ctx.enqueue, *item_id, login ? "login_required" : "error", err_code, "plaid.item_error",
                                          err_type, display, correlation_id);
            } else if (code == "LOGIN_REPAIRED") {
                changed = set_item_status(w, ctx.enqueue, *item_id, "active", std::nullopt, "plaid.login_repaired", std::nullopt,
                                          std::nullopt, correlation_id);
                queue_sync(w, ctx.enqueue, {*item_id, "webhook", code}, correlation_id);
            } else if (code == "PENDING_EXPIRATION" || code == "PENDING_DISCONNECT") {
                // Still syncing; the user is told to re-authenticate soon.
                if (status == "active") {
                    changed = set_item_status(w, ctx.enqueue, *item_id, code == "PENDING_EXPIRATION" ? "pending_expiration" : "pending_disconnect",
                                              std::nullopt, "plaid.item_status", std::nullopt, std::nullopt, correlation_id);
                }
            } else if (code == "USER_PERMISSION_REVOKED" || code == "USER_ACCOUNT_REVOKED") {
                changed = set_item_status(w, ctx.enqueue, *item_id, "revoked", err_code.value_or(code), "plaid.item_status", err_type,
                                          display, correlation_id);
            } else if (code == "NEW_ACCOUNTS_AVAILABLE") {
                queue_sync(w, ctx.enqueue, {*item_id, "webhook", code}, correlation_id);
                out.action = "sync_queued";
                return;
            } else {
                return;
            }
            out.action = changed ? "status_changed" : "ignored";
            if (code == "LOGIN_REPAIRED") out.action = "status_changed";
        }
    });
    return out;
}

}  // namespace txp::plaid_sync
