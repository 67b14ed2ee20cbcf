// notifier.events consume loop (see event_consumer.hpp).
#include "event_consumer.hpp"

#include "recorder.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/common/schema.hpp"

#include <algorithm>
#include <map>

namespace txp::notifier {

namespace {

constexpr const char* service_name = "notifier";

metrics::counter& event_counter(const char* outcome) {
    return metrics::global().get_counter("txp_notifier_events_total", "Events handled by outcome", {{"outcome", outcome}});
}

// A parked webhook delivery moved back to notifier.events by an operator.
std::optional<std::string> rescheduled_delivery_id(const amqp::delivery& d) {
    try {
        auto doc = json::parse(d.body);
        if (schema::global().validate(webhook_type, doc)) return std::nullopt;
        return json::require_string(doc, "delivery_id");
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

event_consumer::event_consumer(consumer_options opts, db::pool& pool, std::function<void()> on_new_deliveries)
    : opts_(std::move(opts)),
      pool_(pool),
      on_new_deliveries_(std::move(on_new_deliveries)),
      consumer_(opts_.amqp, amqp::txp_topology(), opts_.queue, opts_.prefetch),
      publisher_(opts_.amqp, amqp::txp_topology()) {}

event_consumer::~event_consumer() = default;

void event_consumer::run(const std::function<bool()>& stop) {
    log::info("consuming", {{"queue", opts_.queue}, {"batch_size", opts_.batch_size}, {"prefetch", opts_.prefetch}});
    while (!stop()) {
        auto batch = consumer_.next_batch(opts_.batch_size, std::chrono::milliseconds(200), opts_.linger);
        if (!batch.empty()) handle(std::move(batch));
        else publisher_.keep_alive();
    }
    consumer_.cancel();
    log::info("stopped consuming", {{"recorded", recorded_.load()}});
}

void event_consumer::handle(std::vector<amqp::delivery> batch) {
    struct pending_publish {
        std::size_t delivery;
        amqp::outgoing msg;
    };
    std::vector<pending_publish> out;
    std::vector<event_leg> legs;
    std::vector<std::size_t> leg_of;  // legs[k] came from batch[leg_of[k]]
    std::vector<std::string> reschedule;
    std::vector<bool> settled(batch.size(), false);  // nacked for redelivery already

    auto route = [&](std::size_t i, amqp::failure_kind kind, const std::string& reason, const std::string& detail) {
        auto o = amqp::route_failure(batch[i], opts_.queue, {kind, reason, detail}, service_name);
        bool parked = amqp::is_parked(o);
        log::scope s(batch[i].props.message_id, batch[i].props.correlation_id);
        log::write(parked ? log::level::error : log::level::warn, parked ? "event parked in the error queue" : "event sent to retry",
                   {{"reason", reason}, {"detail", detail}, {"routing_key", o.routing_key}, {"type", batch[i].props.type}});
        event_counter(parked ? "parked" : "retried").inc();
        out.push_back({i, std::move(o)});
    };

    for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& d = batch[i];
        if (d.props.type == webhook_type) {
            if (auto id = rescheduled_delivery_id(d)) {
                reschedule.push_back(*id);
                continue;
            }
        }
        // Our own announcements come back through the notify.* binding: nothing to do.
        if (d.props.type == created_type || d.routing_key.rfind("notify.", 0) == 0) {
            event_counter("own_event").inc();
            continue;
        }
        invalid_event why;
        auto parsed = parse_event(d, why);
        if (!parsed) {
            route(i, amqp::failure_kind::permanent, why.reason, why.detail);
            continue;
        }
        for (auto& l : *parsed) {
            legs.push_back(std::move(l));
            leg_of.push_back(i);
        }
    }

    std::vector<feed_entry> entries;
    auto record_group = [&](std::span<const event_leg> group) {
        auto start = std::chrono::steady_clock::now();
        auto r = record(pool_, group);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
        metrics::global().get_histogram("txp_notifier_batch_seconds", "Time to record one batch in the database")
            .observe_us(static_cast<std::uint64_t>(us));
        event_counter("recorded").inc(r.new_entries);
        recorded_ += r.new_entries;
        if (r.new_deliveries > 0 && on_new_deliveries_) on_new_deliveries_();
        for (auto& e : r.entries) entries.push_back(std::move(e));
        log::debug("batch recorded", {{"legs", group.size()}, {"new_entries", r.new_entries},
                                      {"new_deliveries", r.new_deliveries}, {"us", static_cast<std::int64_t>(us)}});
    };

    // The legs of deliveries [from, to) of `legs` in one DB transaction; when it fails, each
    // delivery's legs are routed (or, for a permanent failure, recorded one delivery at a time).
    auto record_chunk = [&](std::size_t from, std::size_t to) {
        try {
            record_group(std::span<const event_leg>(legs).subspan(from, to - from));
        } catch (const db::db_error& e) {
            std::vector<bool> routed(batch.size(), false);
            auto route_once = [&](std::size_t i, amqp::failure_kind k, const std::string& reason, const std::string& detail) {
                if (routed[i]) return;
                routed[i] = true;
                route(i, k, reason, detail);
            };
            if (e.kind() == db::failure_kind::transient) {
                for (std::size_t k = from; k < to; ++k) route_once(leg_of[k], amqp::failure_kind::transient, "database_unavailable", e.what());
            } else {
                // Find the event that fails: record the chunk one delivery at a time.
                log::warn("batch failed permanently; recording its events one by one", {{"error", e.what()}});
                std::map<std::size_t, std::vector<event_leg>> by_delivery;
                for (std::size_t k = from; k < to; ++k) by_delivery[leg_of[k]].push_back(legs[k]);
                for (auto& [i, group] : by_delivery) {
                    try {
                        record_group(group);
                    } catch (const db::db_error& e1) {
                        bool transient = e1.kind() == db::failure_kind::transient;
                        route_once(i, transient ? amqp::failure_kind::transient : amqp::failure_kind::permanent,
                                   transient ? "database_unavailable" : "record_failed", e1.what());
                    }
                }
            }
        }
    };
    // Chunks of whole deliveries (legs of one delivery are adjacent), each within the cap
    // unless one delivery alone exceeds it.
    for (std::size_t from = 0; from < legs.size();) {
        std::size_t to = from;
        while (to < legs.size()) {
            std::size_t next = to;
            while (next < legs.size() && leg_of[next] == leg_of[to]) ++next;
            if (to > from && next - from > opts_.max_legs_per_transaction) break;
            to = next;
        }
        record_chunk(from, to);
        from = to;
    }
    if (!reschedule.empty()) {
        try {
            auto n = reschedule_deliveries(pool_, reschedule);
            log::info("parked deliveries scheduled again", {{"requested", reschedule.size()}, {"rescheduled", n}});
            if (n > 0 && on_new_deliveries_) on_new_deliveries_();
        } catch (const db::db_error& e) {
            log::error("could not reschedule deliveries; their messages go back to the queue", {{"error", e.what()}});
            for (std::size_t i = 0; i < batch.size(); ++i) {
                if (batch[i].props.type == webhook_type) settled[i] = true;
            }
        }
    }

    std::vector<amqp::outgoing> msgs;
    std::vector<std::size_t> msg_delivery;
    for (auto& p : out) {
        msgs.push_back(std::move(p.msg));
        msg_delivery.push_back(p.delivery);
    }
    std::size_t failures = msgs.size();
    if (opts_.announce && !entries.empty()) {
        // notify.created for every entry of the batch (also those recorded before: a
        // redelivered event is announced again; SSE senders skip seqs they have sent). If it
        // is not confirmed, every event of the batch is redelivered and announced again.
        for (auto& m : created_messages(entries, batch[leg_of.front()].props.correlation_id)) {
            msgs.push_back(std::move(m));
            msg_delivery.push_back(batch.size());  // the whole batch
        }
    }
    std::vector<bool> ok(batch.size(), true);
    if (!msgs.empty()) {
        auto results = publisher_.publish(msgs, opts_.publish_timeout);
        for (std::size_t k = 0; k < results.size(); ++k) {
            if (results[k].status == amqp::publish_status::confirmed) continue;
            // A failure route that was not confirmed must not be acked; an announcement that
            // was not confirmed is retried by redelivery (the event is recorded already).
            if (msg_delivery[k] < batch.size()) {
                ok[msg_delivery[k]] = false;
            } else {
                for (auto i : leg_of) ok[i] = false;
            }
            log::error(k < failures ? "failure routing not confirmed; the event will be redelivered"
                                    : "notify.created not confirmed; the event will be redelivered and announced again",
                       {{"routing_key", msgs[k].routing_key}, {"status", amqp::to_string(results[k].status)},
                        {"detail", results[k].detail}});
        }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (ok[i] && !settled[i]) consumer_.ack(batch[i]);
        else consumer_.nack(batch[i], true);
    }
}

}  // namespace txp::notifier
