// Applies a batch of accepted transactions in one DB transaction: locks the wallets in id
// order, recognises duplicates through the inbox and the transaction status, applies each
// wallet's transactions in acceptance order, and writes postings set-based.
#include "ledger.hpp"
#include "posting_rules.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace txp::ledger {

namespace {

struct wallet_state {
    std::int64_t id = 0;
    std::int64_t owner_id = 0;
    std::string currency;
    std::string status;
    std::int64_t balance = 0;
    std::int64_t limit = 0;
    bool overdrawn = false;
    std::int64_t next = 1;
    bool changed = false;
};

struct tx_row {
    std::string id, type, currency, status;
    std::int64_t wallet_id = 0, amount = 0, sequence = 0;
    std::optional<std::int64_t> to_wallet_id, to_sequence, balance_after, to_balance_after;
    std::optional<std::string> reverses, reason, reference;
    std::string finished_at;
};

using db::opt;

// The columns parse_tx_row reads, from ledger.transactions aliased t.
constexpr const char* tx_cols =
    "t.id::text, t.type, t.wallet_id, t.to_wallet_id, t.amount, t.currency, t.sequence, t.to_sequence, "
    "t.reverses_transaction_id::text, t.status, t.reason, t.balance_after, t.to_balance_after, t.idempotency_key, "
    "to_char(coalesce(t.finished_at, t.updated_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

tx_row parse_tx_row(const pqxx::row& row) {
    tx_row t;
    t.id = row[0].as<std::string>();
    t.type = row[1].as<std::string>();
    t.wallet_id = row[2].as<std::int64_t>();
    t.to_wallet_id = opt<std::int64_t>(row[3]);
    t.amount = row[4].as<std::int64_t>();
    t.currency = row[5].as<std::string>();
    t.sequence = row[6].as<std::int64_t>();
    t.to_sequence = opt<std::int64_t>(row[7]);
    t.reverses = opt<std::string>(row[8]);
    t.status = row[9].as<std::string>();
    t.reason = opt<std::string>(row[10]);
    t.balance_after = opt<std::int64_t>(row[11]);
    t.to_balance_after = opt<std::int64_t>(row[12]);
    t.reference = opt<std::string>(row[13]);
    t.finished_at = row[14].as<std::string>();
    return t;
}

// The recorded outcome of a final transaction, to announce (again).
tx_event recorded_event(const tx_row& t, std::optional<std::int64_t> owner, std::optional<std::int64_t> to_owner) {
    tx_event e;
    e.transaction_id = t.id;
    e.status = t.status;
    e.reason = t.reason;
    e.type = t.type;
    e.wallet_id = t.wallet_id;
    e.to_wallet_id = t.to_wallet_id;
    e.amount = t.amount;
    e.currency = t.currency;
    e.balance_after = t.balance_after;
    e.to_balance_after = t.to_balance_after;
    e.reference = t.reference;
    e.occurred_at = t.finished_at;
    e.owner_id = owner;
    e.to_owner_id = to_owner;
    return e;
}

struct posting {
    std::string tx_id;
    std::optional<std::int64_t> wallet_id;
    std::optional<std::string> system_account;
    std::int64_t amount;
    std::string currency;
};

struct tx_update {
    std::string id, status;
    std::optional<std::string> reason;
    std::optional<std::int64_t> balance_after, to_balance_after;
};

bool content_matches(const tx_message& m, const tx_row& r) {
    return m.type == r.type && m.wallet_id == r.wallet_id && m.to_wallet_id == r.to_wallet_id && m.amount == r.amount &&
           m.currency == r.currency && m.sequence == r.sequence && m.to_sequence == r.to_sequence &&
           m.reverses_transaction_id == r.reverses;
}

class batch {
public:
    // recover: wallets to apply from the database (recovery); items_ is then empty.
    batch(pqxx::work& w, const std::vector<batch_item>& items, const std::string& replica, std::vector<tx_event>& chained,
          bool allow_chain, bool wait_for_wallets, const std::vector<std::int64_t>& recover = {})
        : w_(w),
          items_(items),
          replica_(replica),
          chained_(chained),
          allow_chain_(allow_chain),
          wait_for_wallets_(wait_for_wallets),
          recover_(recover),
          out_(items.size()) {}

    // Returns the outcomes; journal() is the ledger.unannounced row written (0: none).
    std::vector<outcome> run() {
        lock_wallets();
        if (!recover_.empty()) {
            recover_wallets();
        } else {
            load_inbox();
            load_transactions();
            classify();
            apply_in_order();
            if (allow_chain_) chain_early();
            resolve_in_batch_duplicates();
        }
        write();
        return std::move(out_);
    }

    std::int64_t journal() const { return journal_; }

private:
    void lock_wallets() {
        std::set<std::int64_t> ids(recover_.begin(), recover_.end());
        for (const auto& it : items_) {
            ids.insert(it.msg.wallet_id);
            if (it.msg.to_wallet_id) ids.insert(*it.msg.to_wallet_id);
        }
        std::vector<std::int64_t> v(ids.begin(), ids.end());
        // ORDER BY id: rows are locked in id order, so concurrent batches cannot deadlock.
        // NO KEY UPDATE (the worker changes no key): acceptances check their foreign key to the
        // wallet with KEY SHARE, which this mode does not block, so a hot wallet being applied
        // does not hold up the gateway accepting its next transactions.
        // Without waiting (SKIP LOCKED), a wallet another replica's batch holds is left out:
        // its items are "busy" and come back in a later batch, while the rest of this batch
        // goes ahead instead of queueing behind that replica's whole batch. Such a batch
        // never waits for a lock, so it is never part of a deadlock either.
        auto r = w_.exec_params(std::string(wallet_cols) + "WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE" +
                                    (wait_for_wallets_ && recover_.empty() ? "" : " SKIP LOCKED"),
                                db::array_literal(v));
        add_wallets(r);
        if (wallets_.size() == v.size()) return;
        // Left out: held by another batch, or not a wallet at all (unknown_wallet below).
        std::vector<std::int64_t> missing;
        for (auto id : v) {
            if (!wallets_.count(id)) missing.push_back(id);
        }
        for (const auto& row : w_.exec_params("SELECT id FROM ledger.wallets WHERE id = ANY($1::bigint[])",
                                              db::array_literal(missing))) {
            busy_.insert(row[0].as<std::int64_t>());
        }
    }

    bool busy(const tx_message& m) const {
        return busy_.count(m.wallet_id) || (m.to_wallet_id && busy_.count(*m.to_wallet_id));
    }

    static constexpr const char* wallet_cols =
        "SELECT id, owner_id, currency, status, balance, overdraft_limit, overdrawn, next_apply_seq FROM ledger.wallets ";

    void add_wallets(const pqxx::result& r) {
        for (const auto& row : r) {
            wallet_state s;
            s.id = row[0].as<std::int64_t>();
            s.owner_id = row[1].as<std::int64_t>();
            s.currency = row[2].as<std::string>();
            s.status = row[3].as<std::string>();
            s.balance = row[4].as<std::int64_t>();
            s.limit = row[5].as<std::int64_t>();
            s.overdrawn = row[6].as<bool>();
            s.next = row[7].as<std::int64_t>();
            wallets_.emplace(s.id, s);
        }
    }

    void load_inbox() {
        std::vector<std::string> ids;
        for (const auto& it : items_) ids.push_back(it.message_id);
        auto r = w_.exec_params("SELECT message_id FROM ledger.inbox WHERE message_id = ANY($1::text[])",
                                db::array_literal(ids));
        for (const auto& row : r) inbox_.insert(row[0].as<std::string>());
    }

    void load_transactions() {
        std::vector<std::string> ids;
        for (const auto& it : items_) {
            ids.push_back(it.msg.transaction_id);
            if (it.msg.reverses_transaction_id) ids.push_back(*it.msg.reverses_transaction_id);
        }
        auto r = w_.exec_params(std::string("SELECT ") + tx_cols + " FROM ledger.transactions t WHERE id = ANY($1::uuid[])",
                                db::array_literal(ids));
        for (const auto& row : r) {
            auto t = parse_tx_row(row);
            rows_.emplace(t.id, std::move(t));
        }
    }


    tx_event event_from_row(const tx_row& t) {
        std::optional<std::int64_t> owner, to_owner;
        if (auto it = wallets_.find(t.wallet_id); it != wallets_.end()) owner = it->second.owner_id;
        if (t.to_wallet_id) {
            if (auto it = wallets_.find(*t.to_wallet_id); it != wallets_.end()) to_owner = it->second.owner_id;
        }
        return recorded_event(t, owner, to_owner);
    }

    void classify() {
        std::unordered_map<std::string, std::size_t> first_of_tx;
        for (std::size_t i = 0; i < items_.size(); ++i) {
            const auto& m = items_[i].msg;
            auto& o = out_[i];
            if (busy(m)) {
                auto id = busy_.count(m.wallet_id) ? m.wallet_id : *m.to_wallet_id;
                o = {outcome_kind::busy, "wallet_busy", "wallet " + std::to_string(id) + " is locked by another batch", {}};
                continue;
            }
            auto row = rows_.find(m.transaction_id);
            if (row == rows_.end()) {
                o = {outcome_kind::invalid, "unknown_transaction",
                     "no accepted transaction " + m.transaction_id + " (not published through the acceptance function)", {}};
                continue;
            }
            if (!content_matches(m, row->second)) {
                o = {outcome_kind::invalid, "content_mismatch",
                     "the message differs from accepted transaction " + m.transaction_id, {}};
                continue;
            }
            if (!wallets_.count(m.wallet_id) || (m.to_wallet_id && !wallets_.count(*m.to_wallet_id))) {
                o = {outcome_kind::invalid, "unknown_wallet", "wallet not found", {}};
                continue;
            }
            if (auto [it, inserted] = first_of_tx.emplace(m.transaction_id, i); !inserted) {
                dup_of_.emplace_back(i, it->second);
                continue;
            }
            if (inbox_.count(items_[i].message_id) || row->second.status != "queued") {
                o.kind = outcome_kind::duplicate;
                if (row->second.status != "queued") o.event = event_from_row(row->second);
                inbox_new_.emplace_back(items_[i].message_id, m.transaction_id);
                continue;
            }
            pending_.push_back(i);
        }
    }

    bool ready(const tx_message& m) {
        if (wallets_.at(m.wallet_id).next != m.sequence) return false;
        return !m.to_wallet_id || wallets_.at(*m.to_wallet_id).next == *m.to_sequence;
    }

    // Moves a wallet's expected sequence past transactions that were parked as failed.
    bool skip_failed(wallet_state& ws, std::int64_t up_to) {
        auto r = w_.exec_params(
            "SELECT s, status FROM ("
            "  SELECT sequence AS s, status FROM ledger.transactions WHERE wallet_id = $1 AND sequence >= $2 AND sequence < $3"
            "  UNION ALL"
            "  SELECT to_sequence, status FROM ledger.transactions WHERE to_wallet_id = $1 AND to_sequence >= $2 AND to_sequence < $3"
            ") x ORDER BY s",
            ws.id, ws.next, up_to);
        bool moved = false;
        for (const auto& row : r) {
            if (row[0].as<std::int64_t>() != ws.next || row[1].as<std::string>() != "failed") break;
            ++ws.next;
            ws.changed = true;
            moved = true;
        }
        return moved;
    }

    // Of the wallets that early messages wait on, those with a failed transaction at or past
    // their expected sequence: one query per batch, so that waiting costs no query per message.
    std::set<std::int64_t> wallets_with_failed_ahead(const std::vector<bool>& done) {
        std::set<std::int64_t> early;
        for (auto i : pending_) {
            if (done[i]) continue;
            early.insert(items_[i].msg.wallet_id);
            if (items_[i].msg.to_wallet_id) early.insert(*items_[i].msg.to_wallet_id);
        }
        std::set<std::int64_t> out;
        if (early.empty()) return out;
        std::vector<std::int64_t> ids, next;
        for (auto id : early) {
            ids.push_back(id);
            next.push_back(wallets_.at(id).next);
        }
        // Two EXISTS, one per role, so that each is a range scan of the wallet's sequence index
        // from its expected sequence on (its backlog). One EXISTS with an OR of the two roles
        // was planned as a sequential scan of the whole table for every such batch: on the 5
        // demo wallets with 3 replicas it took 82 ms per batch after 250,000 transactions, and
        // throughput fell run after run as the table grew (1,876 -> 1,749 -> 1,340/s).
        auto r = w_.exec_params(
            "SELECT v.w FROM unnest($1::bigint[], $2::bigint[]) AS v(w, n)"
            " WHERE EXISTS (SELECT 1 FROM ledger.transactions t"
            "                WHERE t.wallet_id = v.w AND t.sequence >= v.n AND t.status = 'failed')"
            "    OR EXISTS (SELECT 1 FROM ledger.transactions t"
            "                WHERE t.to_wallet_id = v.w AND t.to_sequence >= v.n AND t.status = 'failed')",
            db::array_literal(ids), db::array_literal(next));
        for (const auto& row : r) out.insert(row[0].as<std::int64_t>());
        return out;
    }

    void apply_in_order() {
        std::vector<bool> done(items_.size(), false);
        bool skipped_once = false;
        for (;;) {
            bool progress = true;
            while (progress) {
                progress = false;
                for (auto i : pending_) {
                    if (done[i] || !ready(items_[i].msg)) continue;
                    apply_one(i);
                    done[i] = true;
                    progress = true;
                }
            }
            // Anything left waits for a predecessor; unless the predecessors were parked as
            // failed, in which case the wallet moves past them (once per batch).
            bool moved = false;
            if (!skipped_once) {
                auto candidates = wallets_with_failed_ahead(done);
                for (auto i : pending_) {
                    if (done[i]) continue;
                    const auto& m = items_[i].msg;
                    auto& ws = wallets_.at(m.wallet_id);
                    if (ws.next < m.sequence && candidates.count(ws.id)) moved |= skip_failed(ws, m.sequence);
                    if (m.to_wallet_id) {
                        auto& wt = wallets_.at(*m.to_wallet_id);
                        if (wt.next < *m.to_sequence && candidates.count(wt.id)) moved |= skip_failed(wt, *m.to_sequence);
                    }
                }
                skipped_once = true;
            }
            if (!moved) break;
        }
        for (auto i : pending_) {
            if (done[i]) continue;
            const auto& m = items_[i].msg;
            const auto& ws = wallets_.at(m.wallet_id);
            bool stale = ws.next > m.sequence || (m.to_wallet_id && wallets_.at(*m.to_wallet_id).next > *m.to_sequence);
            if (stale) {
                // A queued transaction behind its wallet's applied sequence breaks an invariant.
                out_[i] = {outcome_kind::invalid, "sequence_conflict",
                           "wallet " + std::to_string(m.wallet_id) + " is past sequence " + std::to_string(m.sequence), {}};
                log::error("sequence conflict: a queued transaction is behind its wallet's applied sequence",
                           {{"transaction_id", m.transaction_id}, {"wallet_id", m.wallet_id}, {"sequence", m.sequence},
                            {"next_apply_seq", ws.next}});
            } else {
                out_[i].kind = outcome_kind::early;
                out_[i].reason = "awaiting_predecessor";
                out_[i].detail = "wallet " + std::to_string(m.wallet_id) + " expects sequence " + std::to_string(ws.next);
            }
        }
    }

    void post(const std::string& tx, std::optional<std::int64_t> wallet, std::optional<std::string> account,
              std::int64_t amount, const std::string& currency) {
        postings_.push_back({tx, wallet, std::move(account), amount, currency});
    }

    void apply_one(std::size_t i) { out_[i] = apply_message(items_[i].msg, &items_[i].message_id); }

    // Applies one transaction that is next in its wallets' order. message_id: the inbox row to
    // record (none for a transaction applied by chaining, whose message has not come yet).
    outcome apply_message(const tx_message& m, const std::string* message_id) {
        auto& w = wallets_.at(m.wallet_id);
        wallet_state* t = m.to_wallet_id ? &wallets_.at(*m.to_wallet_id) : nullptr;
        const std::string& tx = m.transaction_id;

        // The rules (posting_rules.hpp) on the wallets' current state, then back into it.
        auto as_balance = [](const wallet_state& ws) {
            return wallet_balance{ws.id, ws.currency, ws.status == "active", ws.balance, ws.limit, ws.overdrawn};
        };
        auto wb = as_balance(w);
        std::optional<wallet_balance> tb;
        if (t) tb = as_balance(*t);
        std::optional<reversed_transaction> reversed;
        if (m.reverses_transaction_id) {
            if (auto orig = rows_.find(*m.reverses_transaction_id); orig != rows_.end()) {
                reversed = reversed_transaction{orig->second.type, orig->second.status};
            }
        }
        auto result = apply_rules({m.type, m.amount, m.currency}, wb, tb ? &*tb : nullptr, reversed);
        std::optional<std::string> reject = result.rejected;
        for (const auto& l : result.legs) post(tx, l.wallet_id, l.system_account, l.amount, m.currency);
        w.balance = wb.balance;
        w.overdrawn = wb.overdrawn;
        w.changed = true;
        if (t) {
            t->balance = tb->balance;
            t->overdrawn = tb->overdrawn;
            t->changed = true;
        }
        w.next = m.sequence + 1;
        if (t) t->next = *m.to_sequence + 1;

        tx_update u;
        u.id = tx;
        u.status = reject ? "rejected" : "completed";
        u.reason = reject;
        u.balance_after = w.balance;
        if (t) u.to_balance_after = t->balance;
        updates_.push_back(u);
        if (message_id) inbox_new_.emplace_back(*message_id, tx);

        tx_event e;
        e.transaction_id = tx;
        e.status = u.status;
        e.reason = reject;
        e.type = m.type;
        e.wallet_id = m.wallet_id;
        e.to_wallet_id = m.to_wallet_id;
        e.owner_id = w.owner_id;
        if (t) e.to_owner_id = t->owner_id;
        e.amount = m.amount;
        e.currency = m.currency;
        e.balance_after = u.balance_after;
        e.to_balance_after = u.to_balance_after;
        e.reference = m.reference;
        e.occurred_at = ids::iso8601_now();
        e.applied_rank = ++applied_;
        if (!reject) {
            rows_[tx].status = "completed";  // a reversal later in this batch may reverse it
        }
        return {reject ? outcome_kind::rejected : outcome_kind::completed, reject.value_or(""), "", e};
    }

    // Messages of one wallet that reach different replicas wait for each other. When an item
    // waits for its predecessor, this batch (which holds the wallet's lock) applies the
    // wallet's accepted transactions from the database instead, in sequence order, for as
    // long as they are next in every wallet they touch: the transactions table is the source
    // of truth and a message only says "there is work". The waiting item is applied among
    // them; the others' messages arrive later as duplicates and are acknowledged (their
    // outcome announced again). Wallets of transfers not locked yet are taken only if free
    // (SKIP LOCKED: never waiting while holding locks, so never a deadlock).
    void chain_early() {
        std::unordered_map<std::string, std::size_t> early_item;
        std::set<std::int64_t> waiting;
        for (auto i : pending_) {
            if (out_[i].kind != outcome_kind::early) continue;
            const auto& m = items_[i].msg;
            early_item.emplace(m.transaction_id, i);
            waiting.insert(m.wallet_id);
            if (m.to_wallet_id) waiting.insert(*m.to_wallet_id);
        }
        if (waiting.empty()) return;
        chain(waiting, early_item);
        // An early item the chain could not take may be next now.
        for (bool progress = true; progress;) {
            progress = false;
            for (auto i : pending_) {
                if (out_[i].kind != outcome_kind::early || !ready(items_[i].msg)) continue;
                apply_one(i);
                progress = true;
            }
        }
        // Items still waiting keep their "early" outcome; the ones applied above have theirs.
    }

    // Recovery: the wallets this batch could lock, chained from their next sequence. Busy
    // wallets are left for the next look.
    void recover_wallets() {
        std::set<std::int64_t> waiting;
        for (auto id : recover_) {
            if (wallets_.count(id)) waiting.insert(id);
        }
        if (!waiting.empty()) chain(waiting, {});
    }

    // Applies the wallets' accepted transactions from the database in sequence order from
    // each one's next, for as long as they are next in every wallet they touch; a wallet
    // moves past a transaction parked as failed. A transaction that is an item of this batch
    // (early_item) is applied as that item.
    void chain(std::set<std::int64_t> waiting, const std::unordered_map<std::string, std::size_t>& early_item) {
        constexpr std::size_t max_chain = 2000;
        constexpr std::int64_t window = 500;
        std::size_t applied = 0;
        std::unordered_set<std::string> done;
        for (int round = 0; round < 8 && applied < max_chain; ++round) {
            std::vector<std::int64_t> ids, next;
            for (auto id : waiting) {
                ids.push_back(id);
                next.push_back(wallets_.at(id).next);
            }
            auto r = w_.exec_params(
                std::string("SELECT ") + tx_cols +
                    " FROM unnest($1::bigint[], $2::bigint[]) AS v(w, n) CROSS JOIN LATERAL ("
                    "  SELECT * FROM ledger.transactions x WHERE x.wallet_id = v.w AND x.sequence >= v.n AND x.sequence < v.n + $3"
                    "  UNION ALL"
                    "  SELECT * FROM ledger.transactions x WHERE x.to_wallet_id = v.w AND x.to_sequence >= v.n AND x.to_sequence < v.n + $3"
                    ") t WHERE t.status IN ('queued', 'failed')",
                db::array_literal(ids), db::array_literal(next), window);
            std::vector<tx_row> candidates;
            std::unordered_set<std::string> seen;
            std::set<std::int64_t> unlocked;
            for (const auto& row : r) {
                auto t = parse_tx_row(row);
                if (done.count(t.id) || !seen.insert(t.id).second) continue;  // a transfer between two waiting wallets comes twice
                if (!wallets_.count(t.wallet_id)) unlocked.insert(t.wallet_id);
                if (t.to_wallet_id && !wallets_.count(*t.to_wallet_id)) unlocked.insert(*t.to_wallet_id);
                candidates.push_back(std::move(t));
            }
            if (!unlocked.empty()) {
                std::vector<std::int64_t> v(unlocked.begin(), unlocked.end());
                add_wallets(w_.exec_params(std::string(wallet_cols) + "WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
                                           db::array_literal(v)));
            }
            // A reversal needs the transaction it reverses (its status decides).
            std::vector<std::string> originals;
            for (const auto& t : candidates) {
                if (t.reverses && !rows_.count(*t.reverses)) originals.push_back(*t.reverses);
            }
            if (!originals.empty()) {
                for (const auto& row : w_.exec_params(std::string("SELECT ") + tx_cols +
                                                          " FROM ledger.transactions t WHERE id = ANY($1::uuid[])",
                                                      db::array_literal(originals))) {
                    auto t = parse_tx_row(row);
                    rows_.emplace(t.id, std::move(t));
                }
            }
            std::sort(candidates.begin(), candidates.end(), [](const tx_row& a, const tx_row& b) { return a.sequence < b.sequence; });
            bool progress = true, any = false;
            while (progress && applied < max_chain) {
                progress = false;
                for (const auto& t : candidates) {
                    if (applied >= max_chain) break;
                    if (done.count(t.id)) continue;
                    if (t.status == "failed") {
                        // Parked: each wallet it touches moves past it when it is next there.
                        for (auto [wid, seq] : {std::pair{std::optional<std::int64_t>(t.wallet_id), std::optional<std::int64_t>(t.sequence)},
                                                std::pair{t.to_wallet_id, t.to_sequence}}) {
                            if (!wid) continue;
                            auto ws = wallets_.find(*wid);
                            if (ws == wallets_.end() || ws->second.next != *seq) continue;
                            ++ws->second.next;
                            ws->second.changed = true;
                            progress = any = true;
                        }
                        continue;
                    }
                    auto w = wallets_.find(t.wallet_id);
                    if (w == wallets_.end() || w->second.next != t.sequence) continue;
                    if (t.to_wallet_id) {
                        auto to = wallets_.find(*t.to_wallet_id);
                        if (to == wallets_.end() || to->second.next != *t.to_sequence) continue;
                    }
                    done.insert(t.id);
                    if (auto it = early_item.find(t.id); it != early_item.end()) {
                        apply_one(it->second);  // the waiting item itself
                    } else {
                        tx_message m;
                        m.transaction_id = t.id;
                        m.type = t.type;
                        m.wallet_id = t.wallet_id;
                        m.to_wallet_id = t.to_wallet_id;
                        m.amount = t.amount;
                        m.currency = t.currency;
                        m.sequence = t.sequence;
                        m.to_sequence = t.to_sequence;
                        m.reverses_transaction_id = t.reverses;
                        m.reference = t.reference;
                        auto o = apply_message(m, nullptr);
                        if (o.event) chained_.push_back(std::move(*o.event));
                    }
                    ++applied;
                    progress = any = true;
                }
            }
            if (!any) break;
        }
    }

    void resolve_in_batch_duplicates() {
        for (auto [i, j] : dup_of_) {
            out_[i].kind = outcome_kind::duplicate;
            if (out_[j].kind == outcome_kind::completed || out_[j].kind == outcome_kind::rejected) {
                out_[i].event = out_[j].event;
                inbox_new_.emplace_back(items_[i].message_id, items_[i].msg.transaction_id);
            }
        }
    }

    void write() {
        if (!postings_.empty()) {
            std::vector<std::string> tx, cur;
            std::vector<std::optional<std::int64_t>> wallet;
            std::vector<std::optional<std::string>> account;
            std::vector<std::int64_t> amount;
            for (const auto& p : postings_) {
                tx.push_back(p.tx_id);
                wallet.push_back(p.wallet_id);
                account.push_back(p.system_account);
                amount.push_back(p.amount);
                cur.push_back(p.currency);
            }
            w_.exec_params(
                "INSERT INTO ledger.entries (transaction_id, wallet_id, system_account, amount, currency) "
                "SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])",
                db::array_literal(tx), db::array_literal(wallet), db::array_literal(account), db::array_literal(amount),
                db::array_literal(cur));
        }
        std::vector<std::int64_t> wid, bal, next;
        std::vector<std::string> od;
        for (const auto& [id, ws] : wallets_) {
            if (!ws.changed) continue;
            wid.push_back(id);
            bal.push_back(ws.balance);
            next.push_back(ws.next);
            od.push_back(ws.overdrawn ? "true" : "false");
        }
        if (!wid.empty()) {
            w_.exec_params(
                "UPDATE ledger.wallets w SET balance = v.balance, overdrawn = v.overdrawn, next_apply_seq = v.next, "
                "updated_at = now() FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::bigint[]) "
                "AS v(id, balance, overdrawn, next) WHERE w.id = v.id",
                db::array_literal(wid), db::array_literal(bal), db::array_literal(od), db::array_literal(next));
        }
        if (!updates_.empty()) {
            std::vector<std::string> id, st;
            std::vector<std::optional<std::string>> reason;
            std::vector<std::optional<std::int64_t>> ba, tba;
            for (const auto& u : updates_) {
                id.push_back(u.id);
                st.push_back(u.status);
                reason.push_back(u.reason);
                ba.push_back(u.balance_after);
                tba.push_back(u.to_balance_after);
            }
            auto r = w_.exec_params(
                "UPDATE ledger.transactions t SET status = v.status, reason = v.reason, balance_after = v.ba, "
                "to_balance_after = v.tba, applied_by = $6, finished_at = clock_timestamp(), updated_at = now() "
                "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS v(id, status, reason, ba, tba) "
                "WHERE t.id = v.id AND t.status = 'queued'",
                db::array_literal(id), db::array_literal(st), db::array_literal(reason), db::array_literal(ba),
                db::array_literal(tba), replica_);
            if (r.affected_rows() != updates_.size()) {
                // Everything that changes a status holds the wallets' locks (batches and
                // mark_failed), so this should not happen; if it does, roll back and retry.
                throw db::db_error(db::failure_kind::transient, "transaction status changed concurrently");
            }
        }
        if (!updates_.empty()) {
            // What this DB transaction made final, in the order applied: announced by whoever
            // publishes this batch's outcomes, or else by the recovery loop.
            std::vector<std::string> ids;
            for (const auto& u : updates_) ids.push_back(u.id);
            journal_ = w_.exec_params("INSERT INTO ledger.unannounced (transaction_ids, replica) VALUES ($1::uuid[], $2) "
                                      "RETURNING id",
                                      db::array_literal(ids), replica_)[0][0]
                           .as<std::int64_t>();
        }
        if (!inbox_new_.empty()) {
            std::vector<std::string> mid, tid;
            for (const auto& [m, t] : inbox_new_) {
                mid.push_back(m);
                tid.push_back(t);
            }
            w_.exec_params(
                "INSERT INTO ledger.inbox (message_id, transaction_id) SELECT * FROM unnest($1::text[], $2::uuid[]) "
                "ON CONFLICT (message_id) DO NOTHING",
                db::array_literal(mid), db::array_literal(tid));
        }
    }

    pqxx::work& w_;
    const std::vector<batch_item>& items_;
    const std::string& replica_;
    std::vector<tx_event>& chained_;
    bool allow_chain_;
    bool wait_for_wallets_;
    const std::vector<std::int64_t>& recover_;
    std::int64_t journal_ = 0;
    std::vector<outcome> out_;
    std::map<std::int64_t, wallet_state> wallets_;
    std::set<std::int64_t> busy_;  // wallets another batch holds (only without waiting)
    std::unordered_set<std::string> inbox_;
    std::unordered_map<std::string, tx_row> rows_;
    std::vector<std::size_t> pending_;
    std::vector<std::pair<std::size_t, std::size_t>> dup_of_;
    std::vector<posting> postings_;
    std::vector<tx_update> updates_;
    std::vector<std::pair<std::string, std::string>> inbox_new_;
    std::uint64_t applied_ = 0;  // transactions applied so far (tx_event::applied_rank)
};

}  // namespace

processor::processor(db::pool& pool, std::string replica) : pool_(pool), replica_(std::move(replica)) {}

std::vector<outcome> processor::apply(const std::vector<batch_item>& items, std::vector<tx_event>* chained, bool allow_chain,
                                      bool wait_for_wallets) {
    auto r = run(items, {allow_chain, wait_for_wallets, {}});
    if (chained) *chained = std::move(r.chained);
    return std::move(r.outcomes);
}

namespace {

// The recorded outcomes of the final ones of these transactions, in the order given.
std::vector<tx_event> recorded_outcomes_in(pqxx::work& w, const std::vector<std::string>& transaction_ids) {
    std::vector<tx_event> out;
    auto rows = w.exec_params(std::string("SELECT ") + tx_cols +
                                  ", (SELECT owner_id FROM ledger.wallets WHERE id = t.wallet_id), "
                                  "(SELECT owner_id FROM ledger.wallets WHERE id = t.to_wallet_id) "
                                  "FROM unnest($1::uuid[]) WITH ORDINALITY AS x(id, n) "
                                  "JOIN ledger.transactions t ON t.id = x.id WHERE t.status <> 'queued' ORDER BY x.n",
                              db::array_literal(transaction_ids));
    for (const auto& row : rows) {
        out.push_back(recorded_event(parse_tx_row(row), opt<std::int64_t>(row[15]), opt<std::int64_t>(row[16])));
    }
    return out;
}

void delete_journal(pqxx::work& w, const std::vector<std::int64_t>& journal) {
    if (!journal.empty()) {
        w.exec_params("DELETE FROM ledger.unannounced WHERE id = ANY($1::bigint[])", db::array_literal(journal));
    }
}

}  // namespace

apply_result processor::run(const std::vector<batch_item>& items, const apply_options& o) {
    apply_result res;
    if (items.empty() && o.announced.empty()) return res;
    db::with_transaction(pool_, [&](pqxx::work& w) {
        res = {};  // a retried DB transaction starts over
        delete_journal(w, o.announced);
        if (items.empty()) return;
        batch b(w, items, replica_, res.chained, o.allow_chain, o.wait_for_wallets);
        res.outcomes = b.run();
        res.journal = b.journal();
    });
    return res;
}

apply_result processor::recover(const std::vector<std::int64_t>& wallets) {
    apply_result res;
    if (wallets.empty()) return res;
    const std::vector<batch_item> none;
    db::with_transaction(pool_, [&](pqxx::work& w) {
        res = {};
        batch b(w, none, replica_, res.chained, true, false, wallets);
        b.run();
        res.journal = b.journal();
    });
    return res;
}

void processor::forget(const std::vector<std::int64_t>& journal) {
    if (journal.empty()) return;
    db::with_transaction(pool_, [&](pqxx::work& w) { delete_journal(w, journal); });
}

std::vector<tx_event> processor::recorded_outcomes(const std::vector<std::string>& transaction_ids) {
    std::vector<tx_event> out;
    if (transaction_ids.empty()) return out;
    db::with_transaction(pool_, [&](pqxx::work& w) { out = recorded_outcomes_in(w, transaction_ids); });
    return out;
}

std::optional<tx_event> processor::mark_failed(const tx_message& m, const std::string& reason, std::int64_t* journal) {
    std::optional<tx_event> ev;
    db::with_transaction(pool_, [&](pqxx::work& w) {
        ev.reset();
        if (journal) *journal = 0;
        // The wallets first, in id order as batches lock them: a batch chaining this
        // transaction and this update then happen one after the other, never interleaved.
        std::vector<std::int64_t> wallets{m.wallet_id};
        if (m.to_wallet_id) wallets.push_back(*m.to_wallet_id);
        w.exec_params("SELECT 1 FROM ledger.wallets WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE",
                      db::array_literal(wallets));
        auto r = w.exec_params(
            "UPDATE ledger.transactions t SET status = 'failed', reason = $2, applied_by = $3, finished_at = clock_timestamp(), "
            "updated_at = now() WHERE t.id = $1::uuid AND t.status = 'queued' AND t.wallet_id = $4 AND t.amount = $5 "
            "AND t.sequence = $6 "
            "RETURNING (SELECT owner_id FROM ledger.wallets WHERE id = t.wallet_id), "
            "(SELECT owner_id FROM ledger.wallets WHERE id = t.to_wallet_id), "
            "(SELECT balance FROM ledger.wallets WHERE id = t.wallet_id)",
            m.transaction_id, reason, replica_, m.wallet_id, m.amount, m.sequence);
        if (r.empty()) {
            // Already final (applied by a batch that chained it, or marked before): announce
            // what was recorded (again: consumers deduplicate by event id).
            auto f = recorded_outcomes_in(w, {m.transaction_id});
            if (!f.empty()) ev = std::move(f.front());
            return;
        }
        tx_event e;
        e.transaction_id = m.transaction_id;
        e.status = "failed";
        e.reason = reason;
        e.type = m.type;
        e.wallet_id = m.wallet_id;
        e.to_wallet_id = m.to_wallet_id;
        e.owner_id = opt<std::int64_t>(r[0][0]);
        e.to_owner_id = opt<std::int64_t>(r[0][1]);
        e.balance_after = opt<std::int64_t>(r[0][2]);
        e.amount = m.amount;
        e.currency = m.currency;
        e.reference = m.reference;
        e.occurred_at = ids::iso8601_now();
        ev = e;
        auto j = w.exec_params("INSERT INTO ledger.unannounced (transaction_ids, replica) VALUES (ARRAY[$1::uuid], $2) "
                               "RETURNING id",
                               m.transaction_id, replica_)[0][0]
                     .as<std::int64_t>();
        if (journal) *journal = j;
    });
    return ev;
}

}  // namespace txp::ledger
