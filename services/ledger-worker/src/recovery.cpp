// The ledger's recovery loop (see recovery.hpp).
#include "recovery.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <set>
#include <sstream>

namespace txp::ledger {

namespace {

// pg_advisory_lock key of the recovery leader ("txpledgr").
constexpr std::int64_t leader_lock = 0x747870'6c656467;

metrics::counter& recovered(const char* kind) {
    return metrics::global().get_counter("txp_ledger_recovered_total",
                                         "Transactions finished by the recovery loop (applied from the database, "
                                         "announced again, or republished)",
                                         {{"kind", kind}});
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string part; std::getline(in, part, sep);) {
        if (!part.empty()) out.push_back(part);
    }
    return out;
}

struct stale_tx {
    std::string id;
    std::int64_t wallet_id = 0;
    std::optional<std::int64_t> to_wallet_id;
    double age_s = 0;
};

}  // namespace

recovery::recovery(recovery_options opts, db::pool& pool, std::string replica)
    : opts_(std::move(opts)),
      replica_(std::move(replica)),
      processor_(pool, replica_),
      publisher_(opts_.amqp, amqp::txp_topology()),
      loop_({opts_.database_url, "ledger-worker-recovery", leader_lock, opts_.interval, "ledger-recovery"},
            [this](pqxx::connection& c) {
                recovery_round r;
                round(c, false, r);
            }) {}

recovery::~recovery() { stop(); }

void recovery::start() {
    log::info("recovery loop started", {{"interval_ms", static_cast<std::int64_t>(opts_.interval.count())},
                                        {"after_ms", static_cast<std::int64_t>(opts_.after.count())}});
    loop_.start();
}

void recovery::stop() { loop_.stop(); }

recovery_round recovery::run_round(bool full) {
    recovery_round r;
    r.leader = loop_.run_once([&](pqxx::connection& c) { round(c, full, r); });
    return r;
}

void recovery::round(pqxx::connection& c, bool full, recovery_round& r) {
    r.leader = true;
    metrics::global().get_counter("txp_ledger_recovery_rounds_total", "Recovery rounds run as leader").inc();
    r.announced += announce_lost(c);
    recover_queued(c, full, r);
}

// Journal rows older than the threshold: their batch's announcements were never confirmed.
std::size_t recovery::announce_lost(pqxx::connection& c) {
    std::size_t total = 0;
    for (int chunk = 0; chunk < 20; ++chunk) {
        pqxx::result rows;
        {
            pqxx::nontransaction n(c);
            rows = n.exec_params(
                "SELECT id, array_to_string(transaction_ids, ','), replica, "
                "round(extract(epoch FROM now() - created_at))::bigint "
                "FROM ledger.unannounced WHERE created_at < now() - $1 * interval '1 millisecond' ORDER BY id LIMIT 100",
                static_cast<std::int64_t>(opts_.after.count()));
        }
        if (rows.empty()) break;
        std::vector<std::int64_t> journal;
        std::vector<std::string> ids;
        for (const auto& row : rows) {
            journal.push_back(row[0].as<std::int64_t>());
            auto tx = split(row[1].as<std::string>(), ',');
            for (const auto& id : tx) {
                log::warn("recovery: announcing an outcome that was never announced",
                          {{"transaction_id", id}, {"reason", "announcement_unconfirmed"},
                           {"applied_by", row[2].as<std::string>()}, {"age_s", row[3].as<std::int64_t>()}});
            }
            ids.insert(ids.end(), tx.begin(), tx.end());
        }
        auto events = processor_.recorded_outcomes(ids);
        if (announce(events) != events.size()) break;  // not confirmed: the rows stay for the next round
        processor_.forget(journal);
        recovered("announced").inc(events.size());
        total += events.size();
        if (rows.size() < 100) break;
    }
    return total;
}

void recovery::recover_queued(pqxx::connection& c, bool full, recovery_round& r) {
    std::vector<stale_tx> stale;
    auto add = [&](const pqxx::row& row) {
        stale.push_back({row[0].as<std::string>(), row[1].as<std::int64_t>(), db::opt<std::int64_t>(row[2]),
                         row[3].as<double>()});
    };
    const auto after_ms = static_cast<std::int64_t>(opts_.after.count());
    if (full) {
        pqxx::nontransaction n(c);
        for (const auto& row : n.exec_params(
                 "SELECT id::text, wallet_id, to_wallet_id, extract(epoch FROM now() - created_at)::float8 "
                 "FROM ledger.transactions WHERE status = 'queued' AND created_at < now() - $1 * interval '1 millisecond' "
                 "ORDER BY created_at",
                 after_ms)) {
            add(row);
        }
        r.scanned = stale.size();
    } else {
        // From the watermark (every smaller id is final) up to the ids of `after` ago, in id
        // (acceptance time) order; the watermark moves up to the first one still queued.
        for (int chunk = 0; chunk < 50; ++chunk) {
            pqxx::work w(c);
            auto mark = w.exec("SELECT scanned_to::text FROM ledger.recovery_state")[0][0].as<std::string>();
            auto rows = w.exec_params(
                "SELECT t.id::text, t.wallet_id, t.to_wallet_id, extract(epoch FROM now() - t.created_at)::float8, "
                "t.status = 'queued' FROM ledger.transactions t "
                "WHERE t.id > $1::uuid AND t.id < ledger.uuid_v7_floor(clock_timestamp() - $2 * interval '1 millisecond') "
                "ORDER BY t.id LIMIT $3",
                mark, after_ms, static_cast<std::int64_t>(opts_.scan_limit));
            r.scanned += rows.size();
            auto next_mark = mark;
            bool blocked = false;
            for (const auto& row : rows) {
                if (row[4].as<bool>()) {
                    blocked = true;
                    add(row);
                } else if (!blocked) {
                    next_mark = row[0].as<std::string>();
                }
            }
            if (next_mark != mark) {
                w.exec_params("UPDATE ledger.recovery_state SET scanned_to = $1::uuid, updated_at = now()", next_mark);
            }
            w.commit();
            // Caught up, or found work: finish it before reading further.
            if (rows.size() < opts_.scan_limit || blocked) break;
        }
    }
    if (stale.empty()) {
        watched_.clear();
        return;
    }

    // Wallets that do not progress: the same next sequence as a round ago (every wallet, for
    // an operator's full run). A wallet whose backlog merely drains slowly is left to the
    // workers.
    std::set<std::int64_t> wallets;
    for (const auto& s : stale) {
        wallets.insert(s.wallet_id);
        if (s.to_wallet_id) wallets.insert(*s.to_wallet_id);
    }
    std::vector<std::int64_t> stuck;
    {
        std::vector<std::int64_t> ids(wallets.begin(), wallets.end());
        pqxx::nontransaction n(c);
        std::map<std::int64_t, std::int64_t> now_next;
        for (const auto& row :
             n.exec_params("SELECT id, next_apply_seq FROM ledger.wallets WHERE id = ANY($1::bigint[])", db::array_literal(ids))) {
            now_next[row[0].as<std::int64_t>()] = row[1].as<std::int64_t>();
        }
        for (auto [id, next] : now_next) {
            auto it = watched_.find(id);
            if (full || (it != watched_.end() && it->second == next)) stuck.push_back(id);
        }
        watched_ = std::move(now_next);
    }
    if (stuck.empty()) return;

    std::map<std::string, double> age;
    std::map<std::int64_t, std::vector<std::string>> stale_of;
    for (const auto& s : stale) {
        age[s.id] = s.age_s;
        stale_of[s.wallet_id].push_back(s.id);
        if (s.to_wallet_id) stale_of[*s.to_wallet_id].push_back(s.id);
    }
    auto finish = [&](const apply_result& res) {
        for (const auto& e : res.chained) {
            auto a = age.find(e.transaction_id);
            log::warn("recovery: applied a transaction whose message was lost",
                      {{"transaction_id", e.transaction_id}, {"reason", "queued_without_progress"},
                       {"wallet_id", e.wallet_id}, {"status", e.status},
                       {"queued_s", a == age.end() ? std::int64_t(-1) : static_cast<std::int64_t>(a->second)}});
        }
        r.applied += res.chained.size();
        recovered("applied").inc(res.chained.size());
        if (res.chained.empty()) return;
        if (announce(res.chained) == res.chained.size()) {
            processor_.forget({res.journal});
            r.announced += res.chained.size();
        }
    };
    constexpr std::size_t chunk = 100;
    for (std::size_t k = 0; k < stuck.size(); k += chunk) {
        std::vector<std::int64_t> part(stuck.begin() + static_cast<std::ptrdiff_t>(k),
                                       stuck.begin() + static_cast<std::ptrdiff_t>(std::min(stuck.size(), k + chunk)));
        try {
            finish(processor_.recover(part));
            continue;
        } catch (const db::db_error& e) {
            if (e.kind() == db::failure_kind::transient) throw;
            log::warn("recovery of a group of wallets failed; trying them one by one", {{"error", e.what()}});
        }
        for (auto wallet : part) {
            try {
                finish(processor_.recover({wallet}));
            } catch (const db::db_error& e) {
                if (e.kind() == db::failure_kind::transient) throw;
                // It cannot be applied here: its message goes through the workers' normal path
                // again, which parks a transaction that cannot be applied with its reason (and
                // ends it as failed, so the wallet moves on).
                log::error("recovery could not apply a wallet's transactions; publishing their messages again",
                           {{"wallet_id", wallet}, {"error", e.what()}});
                r.republished += republish(c, stale_of[wallet]);
            }
        }
    }
}

std::size_t recovery::announce(const std::vector<tx_event>& events) {
    if (events.empty()) return 0;
    std::vector<const tx_event*> ptrs;
    for (const auto& e : events) ptrs.push_back(&e);
    auto am = ledger::announce(ptrs);
    auto results = publisher_.publish(am.msgs, opts_.publish_timeout);
    std::size_t confirmed = 0;
    for (std::size_t k = 0; k < results.size(); ++k) {
        if (results[k].status == amqp::publish_status::confirmed) {
            confirmed += am.from[k].size();
        } else {
            log::warn("recovery: announcement not confirmed; trying again next round",
                      {{"status", amqp::to_string(results[k].status)}, {"detail", results[k].detail}});
        }
    }
    return confirmed;
}

std::size_t recovery::republish(pqxx::connection& c, const std::vector<std::string>& transaction_ids) {
    if (transaction_ids.empty()) return 0;
    std::vector<amqp::outgoing> msgs;
    std::vector<std::string> ids;
    {
        pqxx::nontransaction n(c);
        for (const auto& row : n.exec_params(
                 "SELECT id::text, type, wallet_id, to_wallet_id, amount, currency, sequence, to_sequence, "
                 "reverses_transaction_id::text, idempotency_key, origin, "
                 "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                 "FROM ledger.transactions WHERE id = ANY($1::uuid[]) AND status = 'queued' ORDER BY wallet_id, sequence",
                 db::array_literal(transaction_ids))) {
            tx_message m;
            m.transaction_id = row[0].as<std::string>();
            m.type = row[1].as<std::string>();
            m.wallet_id = row[2].as<std::int64_t>();
            m.to_wallet_id = db::opt<std::int64_t>(row[3]);
            m.amount = row[4].as<std::int64_t>();
            m.currency = row[5].as<std::string>();
            m.sequence = row[6].as<std::int64_t>();
            m.to_sequence = db::opt<std::int64_t>(row[7]);
            m.reverses_transaction_id = db::opt<std::string>(row[8]);
            m.reference = row[9].as<std::string>();
            m.origin = row[10].as<std::string>();
            m.accepted_at = row[11].as<std::string>();
            amqp::outgoing o;
            o.exchange = amqp::commands_exchange;
            o.routing_key = "ledger.transaction";
            o.body = m.to_json();
            o.props.message_id = "recovery:" + m.transaction_id + ":" + std::to_string(ids::unix_seconds());
            o.props.type = message_type;
            o.props.app_id = "ledger-worker";
            o.props.timestamp = ids::unix_seconds();
            msgs.push_back(std::move(o));
            ids.push_back(m.transaction_id);
        }
    }
    if (msgs.empty()) return 0;
    auto results = publisher_.publish(msgs, opts_.publish_timeout);
    std::size_t n = 0;
    for (std::size_t k = 0; k < results.size(); ++k) {
        if (results[k].status != amqp::publish_status::confirmed) continue;
        log::warn("recovery: published a lost transaction's message again",
                  {{"transaction_id", ids[k]}, {"reason", "apply_failed_in_recovery"}});
        ++n;
    }
    recovered("republished").inc(n);
    return n;
}

}  // namespace txp::ledger
