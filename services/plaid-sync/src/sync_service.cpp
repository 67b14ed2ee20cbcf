// plaid-sync's consumers, scheduler and relay (see sync_service.hpp).
#include "sync_service.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <thread>

namespace txp::plaid_sync {

namespace {

metrics::counter& jobs_counter(const char* outcome) {
    return metrics::global().get_counter("txp_plaid_jobs_total", "plaid.sync jobs by outcome", {{"outcome", outcome}});
}

}  // namespace

service::service(service_options opts, db::pool& pool, plaid::client& client, const plaid::token_cipher& cipher)
    : opts_(std::move(opts)), pool_(pool), client_(client), cipher_(cipher), outbox_(opts_.outbox_table, opts_.outbox_channel) {}

void service::run(const std::function<bool()>& stop) {
    outbox::relay_options ro;
    ro.table = opts_.outbox_table;
    ro.channel = opts_.outbox_channel;
    ro.database_url = opts_.database_url;
    ro.amqp = opts_.amqp;
    ro.amqp.connection_name = "plaid-sync " + opts_.replica + " outbox";
    ro.app_id = service_name;
    outbox::relay relay(ro);
    relay.start();

    std::vector<std::thread> threads;
    for (int i = 0; i < opts_.consumers; ++i) threads.emplace_back([this, &stop, i] { consume(stop, i); });
    threads.emplace_back([this, &stop] { schedule(stop); });
    for (auto& t : threads) t.join();
    // What the last jobs wrote is published before we go: the relay flushes once more.
    relay.stop();
}

void service::consume(const std::function<bool()>& stop, int index) {
    auto conn = opts_.amqp;
    conn.connection_name = "plaid-sync " + opts_.replica + " consumer " + std::to_string(index);
    amqp::consumer consumer(conn, amqp::txp_topology(), sync_queue, 1);
    amqp::publisher publisher(conn, amqp::txp_topology());
    syncer s(pool_, client_, cipher_, enqueue_into(outbox_), opts_.sync);
    while (!stop()) {
        auto d = consumer.next(std::chrono::milliseconds(200));
        if (!d) {
            publisher.keep_alive();
            continue;
        }
        log::scope scope(d->props.message_id, d->props.correlation_id);
        amqp::failure why;
        std::optional<amqp::failure> failed;
        auto job = parse_sync_job(d->body, d->props.type, why);
        if (!job) {
            failed = why;
        } else {
            try {
                auto r = s.sync_item(job->item_id, job->reason, d->props.correlation_id);
                jobs_counter(to_string(r.status)).inc();
            } catch (const sync_failure& f) {
                failed = amqp::failure{f.kind(), f.reason(), f.what()};
            } catch (const std::exception& e) {
                failed = amqp::failure{amqp::failure_kind::permanent, "internal_error", e.what()};
            }
        }
        if (failed) {
            auto o = amqp::route_failure(*d, sync_queue, *failed, service_name);
            bool parked = amqp::is_parked(o);
            log::write(parked ? log::level::error : log::level::warn, parked ? "sync job parked in the error queue" : "sync job sent to retry",
                       {{"reason", failed->reason}, {"detail", failed->detail}, {"item_id", job ? job->item_id : std::string()},
                        {"routing_key", o.routing_key}});
            jobs_counter(parked ? "parked" : "retried").inc();
            auto res = publisher.publish(std::span<const amqp::outgoing>(&o, 1), std::chrono::seconds(15));
            if (res.at(0).status != amqp::publish_status::confirmed) {
                log::error("could not route the failed job; it will be redelivered", {{"detail", res[0].detail}});
                consumer.nack(*d, true);
                continue;
            }
        }
        consumer.ack(*d);
        ++jobs_;
    }
    consumer.cancel();
    publisher.close();
}

std::size_t schedule_syncs(db::pool& pool, const outbox::outbox& box, std::chrono::milliseconds interval) {
    std::size_t n = 0;
    db::with_transaction(pool, [&](pqxx::work& w) {
        n = 0;
        // One replica at a time; the timestamp makes it once per interval across replicas.
        if (!w.exec("SELECT pg_try_advisory_xact_lock(hashtextextended('plaid.scheduler', 0))")[0][0].as<bool>()) return;
        auto due = w.exec_params(
            "SELECT NOT EXISTS (SELECT 1 FROM plaid.scheduler_state WHERE name = 'sync' "
            "AND last_run_at > now() - $1 * interval '1 millisecond')",
            static_cast<std::int64_t>(interval.count()));
        if (!due[0][0].as<bool>()) return;
        w.exec("INSERT INTO plaid.scheduler_state (name, last_run_at) VALUES ('sync', now()) "
               "ON CONFLICT (name) DO UPDATE SET last_run_at = now()");
        auto r = w.exec("WITH due AS (UPDATE plaid.items SET sync_wanted_at = now() "
                        "  WHERE status IN ('active', 'pending_expiration', 'pending_disconnect') RETURNING item_id) "
                        "INSERT INTO " + box.table() +
                        " (message_id, exchange, routing_key, body, type, correlation_id) "
                        "SELECT gen_random_uuid(), 'txp.commands', 'plaid.sync', "
                        "jsonb_build_object('item_id', item_id, 'reason', 'schedule', 'requested_at', "
                        "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))::text, "
                        "'plaid.sync.v1', 'schedule-' || to_char(now(), 'YYYYMMDDHH24MISS') "
                        "FROM due");
        n = r.affected_rows();
        w.exec("SELECT pg_notify('" + box.channel() + "', '')");
    });
    return n;
}

std::size_t recover_lost_syncs(db::pool& pool, const outbox::outbox& box, std::chrono::milliseconds after) {
    struct lost {
        std::string item_id, wanted_at;
    };
    std::vector<lost> found;
    db::with_transaction(pool, [&](pqxx::work& w) {
        found.clear();
        // One replica at a time, as the scheduler.
        if (!w.exec("SELECT pg_try_advisory_xact_lock(hashtextextended('plaid.recovery', 0))")[0][0].as<bool>()) return;
        // Wanted well before now and never attempted since: the job's message was lost. The
        // mark moves to now, so a job queued again and lost again is found again only after
        // another `after`.
        auto r = w.exec_params(
            "WITH lost AS (SELECT item_id, sync_wanted_at FROM plaid.items "
            "  WHERE sync_wanted_at < now() - $1 * interval '1 millisecond' "
            "    AND (sync_attempted_at IS NULL OR sync_attempted_at < sync_wanted_at) "
            "    AND status IN ('active', 'pending_expiration', 'pending_disconnect') "
            "  ORDER BY sync_wanted_at LIMIT 1000 FOR UPDATE SKIP LOCKED) "
            "UPDATE plaid.items i SET sync_wanted_at = now() FROM lost WHERE i.item_id = lost.item_id "
            "RETURNING i.item_id, to_char(lost.sync_wanted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
            static_cast<std::int64_t>(after.count()));
        for (const auto& row : r) {
            found.push_back({row[0].as<std::string>(), row[1].as<std::string>()});
            box.enqueue(w, sync_message({found.back().item_id, "recovery", std::nullopt}, "recovery-" + ids::uuid_v4()));
        }
    });
    for (const auto& l : found) {
        log::warn("a sync was wanted but never started (its job was lost): queued it again",
                  {{"item_id", l.item_id}, {"wanted_at", l.wanted_at}, {"reason", "sync_job_lost"}});
    }
    if (!found.empty()) {
        metrics::global()
            .get_counter("txp_plaid_recovered_total", "Sync jobs queued again by the recovery (lost messages)", {{"kind", "sync_job_lost"}})
            .inc(found.size());
    }
    return found.size();
}

void service::schedule(const std::function<bool()>& stop) {
    // Check often (cheap), act once per interval; the recovery looks at least twice per
    // recovery_after.
    auto tick = std::min<std::chrono::milliseconds>({opts_.sync_interval / 4, opts_.recovery_after / 2, std::chrono::seconds(30)});
    if (tick < std::chrono::milliseconds(100)) tick = std::chrono::milliseconds(100);
    while (!stop()) {
        try {
            if (auto n = schedule_syncs(pool_, outbox_, opts_.sync_interval)) {
                log::info("scheduled a sync of every active item", {{"items", n}});
            }
        } catch (const std::exception& e) {
            log::warn("scheduler step failed", {{"error", e.what()}});
        }
        try {
            recover_lost_syncs(pool_, outbox_, opts_.recovery_after);
        } catch (const std::exception& e) {
            log::warn("sync recovery step failed", {{"error", e.what()}});
        }
        auto until = std::chrono::steady_clock::now() + tick;
        while (!stop() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

}  // namespace txp::plaid_sync
