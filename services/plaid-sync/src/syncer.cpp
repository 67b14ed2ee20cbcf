// Syncing one item (see plaid_sync.hpp): the Plaid calls first, with nothing held but the
// item's advisory lock, then everything they returned applied in one DB transaction.
#include "plaid_sync.hpp"

#include "ledger.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <map>
#include <set>
#include <unordered_map>

namespace txp::plaid_sync {

struct syncer::item_row {
    std::string item_id;
    std::int64_t owner_id = 0;
    std::string status;
    std::string cursor;
    std::string token;
};

namespace {

bool try_lock(pqxx::connection& c, const std::string& item_id) {
    pqxx::nontransaction n(c);
    return n.exec_params("SELECT pg_try_advisory_lock(hashtextextended('plaid.item:' || $1, 0))", item_id)[0][0].as<bool>();
}

void unlock(db::lease& c, const std::string& item_id) {
    try {
        pqxx::nontransaction n(*c);
        n.exec_params("SELECT pg_advisory_unlock(hashtextextended('plaid.item:' || $1, 0))", item_id);
    } catch (const std::exception& e) {
        // A broken connection has released its session locks already.
        log::warn("could not release the item's advisory lock; dropping the connection", {{"error", e.what()}});
        c.discard();
    }
}

struct final_change {
    bool removed = false;
    plaid::transaction tx;  // when not removed
    std::optional<std::int64_t> amount;
};

struct active_mirror {
    int version;
    std::int64_t wallet_id;
    std::string ledger_transaction_id;
    std::string type;
    std::int64_t amount;
    std::string currency;
    std::int64_t plaid_signed() const { return type == "payment" ? amount : -amount; }
};

struct linked_wallet {
    std::int64_t wallet_id;
    std::string currency;
};

std::optional<std::string> opt(const std::optional<std::string>& v) { return v; }

}  // namespace

syncer::syncer(db::pool& pool, plaid::client& client, const plaid::token_cipher& cipher, enqueue_fn enqueue, sync_options opts)
    : pool_(pool), client_(client), cipher_(cipher), enqueue_(std::move(enqueue)), opts_(opts) {}

sync_result syncer::sync_item(const std::string& item_id, const std::string& reason, const std::string& correlation_id) {
    sync_result total;
    try {
        auto conn = pool_.acquire();
        for (int round = 0; round < opts_.max_rounds; ++round) {
            if (!try_lock(*conn, item_id)) {
                if (round > 0) return total;  // the sync that holds it started after our request
                db::with_transaction(pool_, [&](pqxx::work& w) {
                    w.exec_params("UPDATE plaid.items SET sync_requested = true WHERE item_id = $1", item_id);
                });
                // It may have finished in between: then this job syncs itself.
                if (!try_lock(*conn, item_id)) {
                    log::info("item busy: the running sync will sync once more", {{"item_id", item_id}});
                    total.status = sync_status::deferred;
                    return total;
                }
            }
            sync_result r;
            try {
                std::optional<item_row> row;
                db::with_transaction(pool_, [&](pqxx::work& w) {
                    row.reset();
                    auto res = w.exec_params(
                        "UPDATE plaid.items SET sync_requested = false, sync_attempted_at = now() WHERE item_id = $1 "
                        "RETURNING owner_id, status, cursor, access_token_enc",
                        item_id);
                    if (res.empty()) return;
                    item_row ir;
                    ir.item_id = item_id;
                    ir.owner_id = res[0][0].as<std::int64_t>();
                    ir.status = res[0][1].as<std::string>();
                    ir.cursor = res[0][2].as<std::string>();
                    ir.token = pqxx::binarystring(res[0][3]).str();
                    row = std::move(ir);
                });
                if (!row || !syncable(row->status)) {
                    log::info(row ? "item is not active: not syncing it" : "unknown item: nothing to sync",
                              {{"item_id", item_id}, {"status", row ? row->status : std::string("unknown")}});
                    unlock(conn, item_id);
                    total.status = sync_status::skipped;
                    return total;
                }
                try {
                    row->token = cipher_.open(row->token, item_id);
                } catch (const std::exception& e) {
                    throw sync_failure(amqp::failure_kind::permanent, "token_unreadable",
                                       std::string("the access token does not decrypt with TXP_PLAID_TOKEN_KEY: ") + e.what());
                }
                r = run_round(*row, reason, correlation_id);
            } catch (...) {
                unlock(conn, item_id);
                throw;
            }
            unlock(conn, item_id);
            total.status = r.status;
            total.added += r.added;
            total.modified += r.modified;
            total.removed += r.removed;
            total.mirrored += r.mirrored;
            total.reversed += r.reversed;
            total.pages += r.pages;
            total.restarts += r.restarts;
            total.rounds += 1;
            if (r.status != sync_status::synced) return total;
            bool again = false;
            db::with_transaction(pool_, [&](pqxx::work& w) {
                auto res = w.exec_params("SELECT sync_requested FROM plaid.items WHERE item_id = $1", item_id);
                again = !res.empty() && res[0][0].as<bool>();
            });
            if (!again) return total;
            log::info("another sync was requested meanwhile: syncing once more", {{"item_id", item_id}});
        }
        return total;
    } catch (const db::db_error& e) {
        throw sync_failure(e.kind() == db::failure_kind::transient ? amqp::failure_kind::transient : amqp::failure_kind::permanent,
                           e.kind() == db::failure_kind::transient ? "database_unavailable" : "database_error", e.what());
    }
}

sync_result syncer::run_round(const item_row& item, const std::string& reason, const std::string& correlation_id) {
    sync_result result;
    std::string from = item.cursor;
    std::vector<plaid::sync_page> pages;
    plaid::accounts_result accounts;

    auto mark = [&](const std::string& status, const plaid::api_error& e) {
        db::with_transaction(pool_, [&](pqxx::work& w) {
            set_item_status(w, enqueue_, item.item_id, status, e.error_code(), "plaid.item_error", e.error_type(),
                            e.display_message(), correlation_id);
        });
    };

    for (;;) {
        pages.clear();
        std::string cursor = from;
        try {
            for (;;) {
                auto page = client_.transactions_sync(item.token, cursor, opts_.page_size);
                cursor = page.next_cursor;
                bool more = page.has_more;
                pages.push_back(std::move(page));
                if (!more) break;
            }
            accounts = client_.accounts_get(item.token);
            break;
        } catch (const plaid::api_error& e) {
            switch (e.classification()) {
                case plaid::error_class::mutation_during_pagination:
                    if (++result.restarts > opts_.max_restarts) {
                        throw sync_failure(amqp::failure_kind::transient, "mutation_during_pagination", e.what());
                    }
                    log::info("data changed while paging: restarting from the saved cursor",
                              {{"item_id", item.item_id}, {"pages_dropped", pages.size()}, {"restart", result.restarts}});
                    continue;
                case plaid::error_class::invalid_cursor:
                    if (!from.empty()) {
                        log::warn("Plaid refused the saved cursor: resyncing from the start", {{"item_id", item.item_id}});
                        from.clear();
                        continue;
                    }
                    throw sync_failure(amqp::failure_kind::permanent, "plaid_invalid_cursor", e.what());
                case plaid::error_class::item_login_required:
                    log::warn("item needs the user to log in again: syncing stops until repaired",
                              {{"item_id", item.item_id}, {"request_id", e.request_id()}});
                    mark("login_required", e);
                    result.status = sync_status::login_required;
                    return result;
                case plaid::error_class::invalid_access_token:
                    mark("error", e);
                    throw sync_failure(amqp::failure_kind::permanent, "invalid_access_token", e.what());
                default:
                    if (e.retryable()) {
                        throw sync_failure(amqp::failure_kind::transient, std::string("plaid_") + plaid::to_string(e.classification()),
                                           e.what());
                    }
                    throw sync_failure(amqp::failure_kind::permanent, "plaid_error", e.what());
            }
        }
    }
    result.pages = static_cast<int>(pages.size());

    // The net change per transaction id, in page order.
    std::map<std::string, final_change> changes;
    std::vector<plaid::account> all_accounts = accounts.accounts;
    std::set<std::string> known_accounts;
    for (const auto& a : all_accounts) known_accounts.insert(a.account_id);
    for (const auto& p : pages) {
        result.added += static_cast<int>(p.added.size());
        result.modified += static_cast<int>(p.modified.size());
        result.removed += static_cast<int>(p.removed.size());
        for (const auto* list : {&p.added, &p.modified}) {
            for (const auto& t : *list) {
                auto& c = changes[t.transaction_id];
                c.removed = false;
                c.tx = t;
                c.amount = minor_units(t.amount, t.iso_currency_code ? t.iso_currency_code : t.unofficial_currency_code);
                if (!c.amount) {
                    log::warn("a bank amount does not fit its currency's minor unit: stored as text only",
                              {{"transaction_id", t.transaction_id}, {"amount", t.amount}});
                }
            }
        }
        for (const auto& r : p.removed) {
            auto& c = changes[r.transaction_id];
            c.removed = true;
        }
        for (const auto& a : p.accounts) {
            if (known_accounts.insert(a.account_id).second) all_accounts.push_back(a);
        }
    }
    const auto& last = pages.back();
    bool not_ready = last.update_status == "NOT_READY" && changes.empty();
    std::string new_cursor = (not_ready && last.next_cursor.empty()) ? item.cursor : last.next_cursor;

    run_transaction(pool_, [&](pqxx::work& w) {
        result.mirrored = result.reversed = 0;
        auto cur = w.exec_params("SELECT cursor, status FROM plaid.items WHERE item_id = $1 FOR UPDATE", item.item_id);
        if (cur.empty() || !syncable(cur[0][1].as<std::string>())) {
            result.status = sync_status::skipped;  // removed or marked while we fetched
            return;
        }
        if (cur[0][0].as<std::string>() != item.cursor) {
            throw sync_failure(amqp::failure_kind::transient, "cursor_moved", "the item's cursor moved during the sync");
        }
        w.exec_params("SELECT plaid.upsert_accounts($1, $2::jsonb)", item.item_id, accounts_json(all_accounts));

        std::vector<std::string> ids;
        ids.reserve(changes.size());
        for (const auto& [id, _] : changes) ids.push_back(id);

        // Mirroring state, read before the rows change.
        std::map<std::string, linked_wallet> linked;
        for (const auto& r : w.exec_params(
                 "SELECT a.account_id, a.wallet_id, w.currency::text FROM plaid.accounts a "
                 "JOIN ledger.wallets w ON w.id = a.wallet_id WHERE a.item_id = $1 AND a.wallet_id IS NOT NULL",
                 item.item_id)) {
            linked[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<std::string>()};
        }
        std::unordered_map<std::string, active_mirror> active;
        std::unordered_map<std::string, int> max_version;
        if (!ids.empty()) {
            for (const auto& r : w.exec_params(
                     "SELECT plaid_transaction_id, version, wallet_id, ledger_transaction_id::text, type, amount, currency, "
                     "reversal_transaction_id IS NULL FROM plaid.mirrors WHERE plaid_transaction_id = ANY($1::text[])",
                     db::array_literal(ids))) {
                auto id = r[0].as<std::string>();
                auto v = r[1].as<int>();
                max_version[id] = std::max(max_version[id], v);
                if (r[7].as<bool>()) {
                    active[id] = {v, r[2].as<std::int64_t>(), r[3].as<std::string>(), r[4].as<std::string>(),
                                  r[5].as<std::int64_t>(), r[6].as<std::string>()};
                }
            }
        }

        // The bank transactions themselves, set-based.
        std::vector<std::optional<std::string>> id_a, acct_a, amount_a, text_a, iso_a, unoff_a, date_a, adate_a, name_a,
            merchant_a, pending_a, ptid_a, channel_a, cp_a, cd_a;
        std::vector<std::string> removed_ids;
        for (const auto& [id, c] : changes) {
            if (c.removed) {
                removed_ids.push_back(id);
                continue;
            }
            const auto& t = c.tx;
            id_a.push_back(id);
            acct_a.push_back(t.account_id);
            amount_a.push_back(c.amount ? std::optional<std::string>(std::to_string(*c.amount)) : std::nullopt);
            text_a.push_back(t.amount);
            iso_a.push_back(opt(t.iso_currency_code));
            unoff_a.push_back(opt(t.unofficial_currency_code));
            date_a.push_back(t.date);
            adate_a.push_back(opt(t.authorized_date));
            name_a.push_back(t.name);
            merchant_a.push_back(opt(t.merchant_name));
            pending_a.push_back(std::string(t.pending ? "t" : "f"));
            ptid_a.push_back(opt(t.pending_transaction_id));
            channel_a.push_back(t.payment_channel);
            cp_a.push_back(opt(t.category_primary));
            cd_a.push_back(opt(t.category_detailed));
        }
        if (!id_a.empty()) {
            auto res = w.exec_params(
                "INSERT INTO plaid.transactions AS t (transaction_id, account_id, item_id, amount, amount_text, "
                "iso_currency_code, unofficial_currency_code, date, authorized_date, name, merchant_name, pending, "
                "pending_transaction_id, payment_channel, category_primary, category_detailed) "
                "SELECT u.id, u.acct, $1, u.amount, u.amount_text, u.iso, u.unoff, u.date::date, u.adate::date, u.name, "
                "u.merchant, u.pending, u.ptid, u.channel, u.cp, u.cd "
                "FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], "
                "$9::text[], $10::text[], $11::text[], $12::boolean[], $13::text[], $14::text[], $15::text[], $16::text[]) "
                "AS u(id, acct, amount, amount_text, iso, unoff, date, adate, name, merchant, pending, ptid, channel, cp, cd) "
                "JOIN plaid.accounts a ON a.account_id = u.acct AND a.item_id = $1 "
                "ON CONFLICT (transaction_id) DO UPDATE SET account_id = EXCLUDED.account_id, amount = EXCLUDED.amount, "
                "amount_text = EXCLUDED.amount_text, iso_currency_code = EXCLUDED.iso_currency_code, "
                "unofficial_currency_code = EXCLUDED.unofficial_currency_code, date = EXCLUDED.date, "
                "authorized_date = EXCLUDED.authorized_date, name = EXCLUDED.name, merchant_name = EXCLUDED.merchant_name, "
                "pending = EXCLUDED.pending, pending_transaction_id = EXCLUDED.pending_transaction_id, "
                "payment_channel = EXCLUDED.payment_channel, category_primary = EXCLUDED.category_primary, "
                "category_detailed = EXCLUDED.category_detailed, updated_at = now() WHERE t.item_id = $1",
                item.item_id, db::array_literal(id_a), db::array_literal(acct_a), db::array_literal(amount_a),
                db::array_literal(text_a), db::array_literal(iso_a), db::array_literal(unoff_a), db::array_literal(date_a),
                db::array_literal(adate_a), db::array_literal(name_a), db::array_literal(merchant_a),
                db::array_literal(pending_a), db::array_literal(ptid_a), db::array_literal(channel_a),
                db::array_literal(cp_a), db::array_literal(cd_a));
            if (res.affected_rows() != id_a.size()) {
                log::warn("some transactions belong to accounts Plaid did not return: not stored",
                          {{"item_id", item.item_id}, {"received", id_a.size()}, {"stored", res.affected_rows()}});
            }
        }
        if (!removed_ids.empty()) {
            w.exec_params("DELETE FROM plaid.transactions WHERE item_id = $1 AND transaction_id = ANY($2::text[])", item.item_id,
                          db::array_literal(removed_ids));
        }

        // Mirrors: posted bank transactions of linked accounts become ledger transactions;
        // corrections reverse them. Each acceptance and its outbox row are in this transaction.
        auto accept = [&](const std::string& key, const std::string& type, std::int64_t wallet, std::int64_t amount,
                          const std::string& currency, const std::optional<std::string>& reverses,
                          const std::string& description, const std::string& metadata) -> std::optional<std::string> {
            pqxx::result r;
            try {
                pqxx::subtransaction s(w, "accept");
                r = s.exec_params(
                    "SELECT transaction_id::text, sequence FROM ledger.accept_transaction('plaid', $1, $2, $3, NULL, $4, $5, "
                    "$6::uuid, $7, $8::jsonb, 'plaid')",
                    key, type, wallet, amount, currency, reverses, description, metadata);
                s.commit();
            } catch (const pqxx::sql_error& e) {
                auto state = db::sqlstate_of(e);
                if (state.rfind("TX", 0) != 0) throw;
                log::error("the ledger refused a mirrored bank transaction", {{"key", key}, {"sqlstate", state}, {"error", e.what()}});
                return std::nullopt;
            }
            ledger::tx_message m;
            m.transaction_id = r[0][0].as<std::string>();
            m.type = type;
            m.wallet_id = wallet;
            m.amount = amount;
            m.currency = currency;
            m.sequence = r[0][1].as<std::int64_t>();
            m.reverses_transaction_id = reverses;
            m.reference = key;
            m.origin = "plaid";
            m.accepted_at = ids::iso8601_now();
            amqp::outgoing o;
            o.exchange = amqp::commands_exchange;
            o.routing_key = "ledger.transaction";
            o.body = m.to_json();
            o.props.message_id = ids::uuid_v4();
            o.props.correlation_id = correlation_id;
            o.props.type = ledger::message_type;
            enqueue_(w, o);
            return m.transaction_id;
        };
        auto metadata = [&](const std::string& id, const std::string& account_id) {
            json::writer mw;
            mw.start_object().kv("plaid_transaction_id", id).kv("plaid_account_id", account_id).kv("plaid_item_id", item.item_id);
            mw.end_object();
            return mw.str();
        };
        auto reverse = [&](const std::string& id, const active_mirror& m) {
            auto key = id + ":v" + std::to_string(m.version) + ":reversal";
            auto rev = accept(key, "reversal", m.wallet_id, m.amount, m.currency, m.ledger_transaction_id,
                              "Bank correction of " + id, metadata(id, ""));
            if (!rev) return;
            w.exec_params("UPDATE plaid.mirrors SET reversal_transaction_id = $3::uuid, reversed_at = now() "
                          "WHERE plaid_transaction_id = $1 AND version = $2",
                          id, m.version, *rev);
            ++result.reversed;
        };
        auto mirror = [&](const std::string& id, const final_change& c, const linked_wallet& lw) {
            std::int64_t amount = *c.amount;
            if (c.tx.iso_currency_code.value_or("") != lw.currency) {
                log::warn("bank transaction currency differs from the wallet's: not mirrored",
                          {{"transaction_id", id}, {"currency", c.tx.iso_currency_code.value_or("")}, {"wallet_currency", lw.currency}});
                return;
            }
            int version = max_version[id] + 1;
            auto key = version == 1 ? id : id + ":v" + std::to_string(version);
            std::string type = amount > 0 ? "payment" : "deposit";  // Plaid: positive = money out
            std::int64_t abs_amount = amount > 0 ? amount : -amount;
            auto tx = accept(key, type, lw.wallet_id, abs_amount, lw.currency, std::nullopt, c.tx.name,
                             metadata(id, c.tx.account_id));
            if (!tx) return;
            w.exec_params("INSERT INTO plaid.mirrors (plaid_transaction_id, version, item_id, wallet_id, ledger_transaction_id, "
                          "type, amount, currency) VALUES ($1, $2, $3, $4, $5::uuid, $6, $7, $8)",
                          id, version, item.item_id, lw.wallet_id, *tx, type, abs_amount, lw.currency);
            max_version[id] = version;
            ++result.mirrored;
        };
        for (const auto& [id, c] : changes) {
            auto act = active.find(id);
            if (c.removed) {
                if (act != active.end()) reverse(id, act->second);
                continue;
            }
            if (c.tx.pending) continue;  // pending: shown, never mirrored
            auto link = linked.find(c.tx.account_id);
            bool mirrorable = link != linked.end() && c.amount && *c.amount != 0;
            if (act != active.end()) {
                if (c.amount && act->second.plaid_signed() == *c.amount) continue;
                reverse(id, act->second);
                if (mirrorable) mirror(id, c, link->second);
            } else if (mirrorable) {
                mirror(id, c, link->second);
            }
        }

        w.exec_params("UPDATE plaid.items SET cursor = $2, transactions_update_status = $3, last_sync_at = now(), "
                      "last_sync_status = $4, updated_at = now() WHERE item_id = $1",
                      item.item_id, new_cursor, last.update_status, not_ready ? "not_ready" : "ok");
        if (!changes.empty() || reason == "manual" || reason == "link") {
            plaid_event e;
            e.event = "plaid.sync_completed";
            e.item_id = item.item_id;
            e.owner_id = item.owner_id;
            e.reason = reason;
            e.added = result.added;
            e.modified = result.modified;
            e.removed = result.removed;
            e.mirrored = result.mirrored;
            e.reversed = result.reversed;
            e.status = cur[0][1].as<std::string>();
            enqueue_(w, event_message(e, correlation_id));
        }
        result.status = not_ready ? sync_status::not_ready : sync_status::synced;
    });
    metrics::global().get_counter("txp_plaid_sync_total", "Item syncs by outcome", {{"status", to_string(result.status)}}).inc();
    log::info("item synced", {{"item_id", item.item_id}, {"status", to_string(result.status)}, {"reason", reason},
                              {"pages", result.pages}, {"restarts", result.restarts}, {"added", result.added},
                              {"modified", result.modified}, {"removed", result.removed}, {"mirrored", result.mirrored},
                              {"reversed", result.reversed}});
    return result;
}

}  // namespace txp::plaid_sync
