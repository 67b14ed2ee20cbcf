// See feed_recovery.hpp.
#include "feed_recovery.hpp"

#include "recorder.hpp"

#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

namespace txp::notifier {

namespace {

// pg_advisory_lock key of the feed recovery leader ("txpfeedr").
constexpr std::int64_t leader_lock = 0x747870'66656564;

}  // namespace

feed_recovery::feed_recovery(feed_recovery_options opts, db::pool& pool, std::function<void()> on_new_deliveries)
    : opts_(std::move(opts)),
      pool_(pool),
      on_new_deliveries_(std::move(on_new_deliveries)),
      publisher_(opts_.amqp, amqp::txp_topology()),
      loop_({opts_.database_url, "notifier-feed-recovery", leader_lock, opts_.interval, "feed-recovery"},
            [this](pqxx::connection& c) { round(c); }) {}

feed_recovery::~feed_recovery() { stop(); }

void feed_recovery::start() { loop_.start(); }

void feed_recovery::stop() { loop_.stop(); }

long feed_recovery::run_round() {
    std::size_t n = 0;
    if (!loop_.run_once([&](pqxx::connection& c) { n = round(c); })) return -1;
    return static_cast<long>(n);
}

std::size_t feed_recovery::round(pqxx::connection& c) {
    const auto after_ms = static_cast<std::int64_t>(opts_.after.count());
    std::vector<std::string> missing;
    {
        // From the watermark (every smaller transaction id is final and in the feed) to the ids
        // of `after` ago; the watermark moves up to the first transaction not settled yet
        // (still queued, or final so recently that its event may still be on its way).
        pqxx::work w(c);
        auto mark = w.exec("SELECT scanned_to::text FROM notify.feed_recovery_state")[0][0].as<std::string>();
        auto rows = w.exec_params(
            "SELECT t.id::text, t.status <> 'queued' AND t.finished_at < now() - $2 * interval '1 millisecond', "
            "EXISTS (SELECT 1 FROM notify.notifications n WHERE n.event_id = t.id::text || ':' || t.status AND n.leg = 0) "
            "FROM ledger.transactions t "
            "WHERE t.id > $1::uuid AND t.id < ledger.uuid_v7_floor(clock_timestamp() - $2 * interval '1 millisecond') "
            "ORDER BY t.id LIMIT $3",
            mark, after_ms, static_cast<std::int64_t>(opts_.scan_limit));
        auto next_mark = mark;
        bool blocked = false;
        for (const auto& row : rows) {
            bool settled = row[1].as<bool>(), recorded = row[2].as<bool>();
            if (settled && !recorded) missing.push_back(row[0].as<std::string>());
            if (!settled && !recorded) blocked = true;
            if (!blocked) next_mark = row[0].as<std::string>();
        }
        if (next_mark != mark) {
            w.exec_params("UPDATE notify.feed_recovery_state SET scanned_to = $1::uuid, updated_at = now()", next_mark);
        }
        w.commit();
    }
    if (missing.empty()) return 0;

    // The outcomes as the ledger would have announced them: one tx.events.v1 message.
    amqp::delivery d;
    d.props.type = tx_events_type;
    d.props.correlation_id = "feed-recovery";
    {
        pqxx::nontransaction n(c);
        auto rows = n.exec_params(
            "SELECT t.id::text, t.status, t.reason, t.type, t.wallet_id, t.to_wallet_id, w.owner_id, tw.owner_id, "
            "t.amount, t.currency, t.balance_after, t.to_balance_after, t.idempotency_key, "
            "to_char(t.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
            "FROM ledger.transactions t LEFT JOIN ledger.wallets w ON w.id = t.wallet_id "
            "LEFT JOIN ledger.wallets tw ON tw.id = t.to_wallet_id WHERE t.id = ANY($1::uuid[]) ORDER BY t.id",
            db::array_literal(missing));
        json::writer j;
        j.start_object();
        j.key("events").start_array();
        for (const auto& r : rows) {
            auto id = r[0].as<std::string>();
            auto status = r[1].as<std::string>();
            j.start_object();
            j.kv("event_id", id + ":" + status).kv("transaction_id", id).kv("status", status);
            j.kv_opt("reason", db::opt<std::string>(r[2]));
            j.kv("type", r[3].as<std::string>()).kv("wallet_id", r[4].as<std::int64_t>());
            j.kv_opt("to_wallet_id", db::opt<std::int64_t>(r[5]));
            j.kv_opt("owner_id", db::opt<std::int64_t>(r[6]));
            j.kv_opt("to_owner_id", db::opt<std::int64_t>(r[7]));
            j.kv("amount", r[8].as<std::int64_t>()).kv("currency", r[9].as<std::string>());
            j.kv_opt("balance_after", db::opt<std::int64_t>(r[10]));
            j.kv_opt("to_balance_after", db::opt<std::int64_t>(r[11]));
            j.kv_opt("reference", db::opt<std::string>(r[12]));
            j.kv("occurred_at", r[13].as<std::string>());
            j.end_object();
            log::warn("feed recovery: recording an outcome whose event never reached the notifier",
                      {{"transaction_id", id}, {"status", status}, {"reason", "event_lost"}});
        }
        j.end_array();
        j.end_object();
        d.body = j.str();
    }
    invalid_event why;
    auto legs = parse_event(d, why);
    if (!legs) {
        log::error("feed recovery: the ledger's outcomes do not make a valid event", {{"reason", why.reason}, {"detail", why.detail}});
        return 0;
    }
    auto r = record(pool_, *legs);
    metrics::global()
        .get_counter("txp_notifier_recovered_total", "Feed entries recorded from the ledger (their events were lost)")
        .inc(r.new_entries);
    if (r.new_deliveries > 0 && on_new_deliveries_) on_new_deliveries_();
    if (opts_.announce && !r.entries.empty()) {
        auto msgs = created_messages(r.entries, d.props.correlation_id);
        for (const auto& res : publisher_.publish(msgs, std::chrono::seconds(15))) {
            // Recorded either way; live streams that missed it catch up from the feed (Last-Event-ID).
            if (res.status != amqp::publish_status::confirmed) {
                log::warn("feed recovery: notify.created not confirmed", {{"detail", res.detail}});
            }
        }
    }
    return r.new_entries;
}

}  // namespace txp::notifier
