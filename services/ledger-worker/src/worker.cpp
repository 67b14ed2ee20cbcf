// ledger-worker consume loop (see worker.hpp).
#include "worker.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <algorithm>

namespace txp::ledger {

namespace {

constexpr const char* service_name = "ledger-worker";

metrics::counter& outcome_counter(const char* outcome) {
    return metrics::global().get_counter("txp_ledger_messages_total", "Messages handled by outcome",
                                         {{"outcome", outcome}});
}

std::string message_id_of(const amqp::delivery& d, const tx_message& m) {
    return d.props.message_id.empty() ? "tx:" + m.transaction_id : d.props.message_id;
}

}  // namespace

worker::worker(worker_options opts, db::pool& pool, std::string replica)
    : opts_(std::move(opts)),
      replica_(std::move(replica)),
      processor_(pool, replica_),
      consumer_(opts_.amqp, amqp::txp_topology(), opts_.queue, opts_.prefetch),
      publisher_(opts_.amqp, amqp::txp_topology()) {
    publisher_thread_ = std::thread([this] { publisher_loop(); });
}

worker::~worker() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (publisher_thread_.joinable()) publisher_thread_.join();
}

void worker::publisher_loop() {
    for (;;) {
        outbound job;
        {
            std::unique_lock lk(mu_);
            if (!cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_ || !to_publish_.empty(); })) {
                lk.unlock();
                publisher_.keep_alive();
                continue;
            }
            if (to_publish_.empty()) return;
            job = std::move(to_publish_.front());
            to_publish_.pop_front();
        }
        auto t0 = std::chrono::steady_clock::now();
        job.ok.assign(job.deliveries.size(), true);
        job.all_confirmed = true;
        if (!job.msgs.empty()) {
            auto results = publisher_.publish(job.msgs, opts_.publish_timeout);
            for (std::size_t k = 0; k < results.size(); ++k) {
                if (results[k].status == amqp::publish_status::confirmed) continue;
                job.all_confirmed = false;
                for (auto d : job.msg_deliveries[k]) job.ok[d] = false;
                log::error("publish not confirmed; the message will be redelivered",
                           {{"routing_key", job.msgs[k].routing_key}, {"status", amqp::to_string(results[k].status)},
                            {"detail", results[k].detail}});
            }
        }
        job.publish_us =
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
        {
            std::lock_guard lk(mu_);
            published_.push_back(std::move(job));
        }
        cv_.notify_all();
    }
}

// Acks (or, when a publish was not confirmed, requeues) batches the publisher finished.
// With wait_all, waits until nothing is in flight; otherwise waits only while two batches
// are already in flight (a bounded pipeline).
void worker::settle(bool wait_all) {
    std::deque<outbound> done;
    {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return wait_all ? in_flight_ == published_.size() : in_flight_ - published_.size() < 2; });
        done.swap(published_);
        in_flight_ -= done.size();
    }
    for (auto& job : done) {
        auto t0 = std::chrono::steady_clock::now();
        std::vector<amqp::delivery> acks;
        for (std::size_t i = 0; i < job.deliveries.size(); ++i) {
            if (job.ok[i]) acks.push_back(job.deliveries[i]);
            else consumer_.nack(job.deliveries[i], true);
        }
        // Announced: the rows listing what was to be announced go (with the next batch's DB
        // transaction). A row whose announcements were not all confirmed stays, and the
        // recovery loop announces it again.
        if (job.all_confirmed) announced_.insert(announced_.end(), job.journal.begin(), job.journal.end());
        consumer_.ack_all(acks);  // one "multiple" ack where it can
        processed_ += acks.size();
        if (log::enabled(log::level::debug)) {
            log::debug("batch settled", {{"size", job.deliveries.size()}, {"apply_us", job.apply_us},
                                         {"publish_us", job.publish_us},
                                         {"ack_us", std::chrono::duration_cast<std::chrono::microseconds>(
                                                        std::chrono::steady_clock::now() - t0)
                                                        .count()}});
        }
    }
}

void worker::run(const std::function<bool()>& stop) {
    log::info("consuming", {{"queue", opts_.queue}, {"batch_size", opts_.batch_size}, {"prefetch", opts_.prefetch}});
    while (!stop()) {
        // With messages held for their predecessors, look again soon, but not in a tight loop:
        // every look is a DB transaction on the hottest wallets.
        auto first_wait = held_.empty() ? std::chrono::milliseconds(200) : std::chrono::milliseconds(50);
        auto fresh = consumer_.next_batch(opts_.batch_size, first_wait, opts_.linger);
        std::vector<held_delivery> batch;
        // Held deliveries of a lost connection will be redelivered: drop them here.
        auto gen = consumer_.generation();
        auto now = std::chrono::steady_clock::now();
        bool wait_for_wallets = false;
        for (auto& h : held_) {
            if (h.d.generation != gen) continue;
            if (h.busy_since && now - *h.busy_since >= opts_.busy_patience) wait_for_wallets = true;
            batch.push_back(std::move(h));
        }
        held_.clear();
        for (auto& d : fresh) batch.push_back({std::move(d), now, std::nullopt});
        settle(false);
        if (batch.empty()) {
            forget_announced();  // idle: no batch to carry the deletes
            continue;
        }
        handle(std::move(batch), wait_for_wallets);
    }
    // Graceful stop: no new deliveries; finish and ack what is in flight; what is held
    // goes back to the broker.
    consumer_.cancel();
    settle(true);
    forget_announced();
    for (auto& h : held_) consumer_.nack(h.d, true);
    held_.clear();
    log::info("stopped consuming", {{"processed", processed_.load()}});
}

void worker::forget_announced() {
    if (announced_.empty()) return;
    try {
        processor_.forget(announced_);
        announced_.clear();
    } catch (const std::exception& e) {
        // Kept for the next batch; if this replica dies first, recovery announces them again.
        log::warn("could not delete announced outcomes' journal rows", {{"error", e.what()}});
    }
}

void worker::handle(std::vector<held_delivery> batch, bool wait_for_wallets) {
    auto t_start = std::chrono::steady_clock::now();
    auto us_since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t).count();
    };
    struct pending_publish {
        std::size_t delivery;
        amqp::outgoing msg;
        std::optional<tx_message> fail_on_park;  // a parked valid transaction is ended as failed
    };
    std::vector<pending_publish> out;  // failure routes and early hops
    struct announcement {
        std::size_t delivery;  // no_delivery: applied from the database (chaining)
        tx_event event;
    };
    constexpr std::size_t no_delivery = static_cast<std::size_t>(-1);
    std::vector<std::int64_t> journal;  // ledger.unannounced rows this batch wrote
    std::vector<announcement> announced;  // outcomes, in the order they are to reach the feed
    std::vector<std::optional<tx_message>> parsed(batch.size());
    std::vector<bool> keep(batch.size(), false);
    std::vector<batch_item> items;
    std::vector<std::size_t> item_of;

    auto route = [&](std::size_t i, amqp::failure_kind kind, const std::string& reason, const std::string& detail) {
        auto o = amqp::route_failure(batch[i].d, opts_.queue, {kind, reason, detail}, service_name);
        bool parked = amqp::is_parked(o);
        log::write(parked ? log::level::error : log::level::warn, parked ? "message parked in the error queue" : "message sent to retry",
                   {{"reason", reason}, {"detail", detail}, {"routing_key", o.routing_key},
                    {"transaction_id", parsed[i] ? parsed[i]->transaction_id : std::string()}});
        outcome_counter(parked ? "parked" : "retried").inc();
        out.push_back({i, std::move(o), parked ? parsed[i] : std::nullopt});
    };

    for (std::size_t i = 0; i < batch.size(); ++i) {
        invalid_message why;
        parsed[i] = parse_message(batch[i].d.body, batch[i].d.props.type, why);
        if (!parsed[i]) {
            route(i, amqp::failure_kind::permanent, why.reason, why.detail);
            continue;
        }
        items.push_back({message_id_of(batch[i].d, *parsed[i]), *parsed[i]});
        item_of.push_back(i);
    }

    auto apply_group = [&](const std::vector<batch_item>& group, const std::vector<std::size_t>& idx, bool allow_chain) {
        auto start = std::chrono::steady_clock::now();
        // The journal rows of announcements confirmed since the last batch are deleted in
        // this batch's DB transaction (kept for the next one if it fails).
        apply_options ao{allow_chain, wait_for_wallets, std::move(announced_)};
        announced_.clear();
        apply_result res;
        try {
            res = processor_.run(group, ao);
        } catch (...) {
            announced_ = std::move(ao.announced);
            throw;
        }
        auto& outcomes = res.outcomes;
        auto& chained = res.chained;
        if (res.journal) journal.push_back(res.journal);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
        metrics::global().get_histogram("txp_ledger_batch_seconds", "Time to apply one batch in the database")
            .observe_us(static_cast<std::uint64_t>(us));
        // What the batch applied is announced in the order it applied it (not the order the
        // messages came in), so that a wallet's outcomes reach the feed in its sequence order.
        // That includes transactions applied from the database ahead of their messages
        // (chaining): their messages, when they come, find them final and are acknowledged
        // without a second announcement (unless redelivered: the worker that applied them may
        // have died before announcing). The batch's row of ledger.unannounced guarantees the
        // announcement: a crash before the broker confirmed it leaves the row, and the
        // recovery loop announces it; a lost message of a chained transaction loses nothing.
        std::vector<std::pair<std::uint64_t, announcement>> announce;
        auto announce_item = [&](std::size_t i, const tx_event& e) { announce.push_back({e.applied_rank, {i, e}}); };
        for (const auto& e : chained) {
            log::info(e.status == "completed" ? "transaction completed" : "transaction rejected",
                      {{"transaction_id", e.transaction_id}, {"type", e.type}, {"wallet_id", e.wallet_id},
                       {"amount", e.amount}, {"currency", e.currency}, {"reason", e.reason.value_or("")},
                       {"balance_after", e.balance_after.value_or(0)}, {"chained", true}});
            outcome_counter(e.status == "completed" ? "completed" : "rejected").inc();
            announce_item(no_delivery, e);
        }
        for (std::size_t k = 0; k < outcomes.size(); ++k) {
            auto i = idx[k];
            auto& o = outcomes[k];
            const auto& m = group[k].msg;
            log::scope s(batch[i].d.props.message_id, batch[i].d.props.correlation_id);
            switch (o.kind) {
                case outcome_kind::completed:
                case outcome_kind::rejected:
                    if (o.kind == outcome_kind::completed) {
                        log::info("transaction completed",
                                  {{"transaction_id", m.transaction_id}, {"type", m.type}, {"wallet_id", m.wallet_id},
                                   {"amount", m.amount}, {"currency", m.currency}, {"sequence", m.sequence},
                                   {"balance_after", o.event->balance_after.value_or(0)}});
                    } else {
                        log::info("transaction rejected",
                                  {{"transaction_id", m.transaction_id}, {"type", m.type}, {"wallet_id", m.wallet_id},
                                   {"amount", m.amount}, {"currency", m.currency}, {"sequence", m.sequence},
                                   {"reason", o.reason}, {"balance", o.event->balance_after.value_or(0)}});
                    }
                    outcome_counter(o.kind == outcome_kind::completed ? "completed" : "rejected").inc();
                    announce_item(i, *o.event);
                    break;
                case outcome_kind::duplicate:
                    // Applied before: by this message's earlier delivery, or by a batch that
                    // chained it, which announced it (or left it to recovery). A redelivered
                    // message may come from a worker that died between its commit and its
                    // announcement: announce the recorded outcome again, at once, rather than
                    // after the recovery threshold (consumers deduplicate by event id).
                    if (log::enabled(log::level::debug)) {
                        log::debug("already applied: acknowledged",
                                   {{"transaction_id", m.transaction_id}, {"redelivered", batch[i].d.redelivered},
                                    {"status", o.event ? o.event->status : std::string("queued")}});
                    }
                    outcome_counter("duplicate").inc();
                    if (o.event && batch[i].d.redelivered) announce_item(i, *o.event);
                    break;
                case outcome_kind::busy:
                    // Another replica's batch holds one of its wallets: next batch, unnoticed
                    // by anyone downstream (it was not applied, nothing was recorded).
                    keep[i] = true;
                    if (!batch[i].busy_since) batch[i].busy_since = std::chrono::steady_clock::now();
                    outcome_counter("deferred_busy").inc();
                    if (log::enabled(log::level::debug)) {
                        log::debug("wallet busy in another batch; held for the next",
                                   {{"transaction_id", m.transaction_id}, {"detail", o.detail}});
                    }
                    break;
                case outcome_kind::early: {
                    if (std::chrono::steady_clock::now() - batch[i].first_seen < opts_.hold_early) {
                        keep[i] = true;  // its predecessor may be in the next batch
                        batch[i].busy_since.reset();  // no longer waiting for a busy wallet
                        break;
                    }
                    // Not a failure: back through the shortest tier without counting an attempt.
                    amqp::outgoing hop;
                    hop.exchange = amqp::retry_exchange;
                    hop.routing_key = amqp::retry_queue_name(opts_.queue, amqp::default_retry_tiers().front());
                    hop.body = batch[i].d.body;
                    hop.props = batch[i].d.props;
                    auto& hops = hop.props.headers["x-early-hops"];
                    std::int64_t n = std::holds_alternative<std::int64_t>(hops) ? std::get<std::int64_t>(hops) : 0;
                    hops = n + 1;
                    log::info("waiting for predecessor", {{"transaction_id", m.transaction_id}, {"wallet_id", m.wallet_id},
                                                          {"sequence", m.sequence}, {"detail", o.detail}});
                    outcome_counter("early").inc();
                    out.push_back({i, std::move(hop), std::nullopt});
                    break;
                }
                case outcome_kind::invalid:
                    route(i, amqp::failure_kind::permanent, o.reason, o.detail);
                    break;
            }
        }
        // Re-announcements (rank 0: applied before) first, then in the order of application.
        std::stable_sort(announce.begin(), announce.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& a : announce) announced.push_back(std::move(a.second));
    };

    if (!items.empty()) {
        try {
            apply_group(items, item_of, true);
        } catch (const db::db_error& e) {
            if (e.kind() == db::failure_kind::transient) {
                for (auto i : item_of) route(i, amqp::failure_kind::transient, "database_unavailable", e.what());
            } else if (items.size() == 1) {
                route(item_of[0], amqp::failure_kind::permanent, "apply_failed", e.what());
            } else {
                // Find the one that fails: apply the batch one message at a time, without
                // chaining, so that a bad transaction further down a wallet's order is blamed
                // on its own message only (the others wait for it to be parked).
                log::warn("batch failed permanently; applying its messages one by one", {{"error", e.what()}});
                for (std::size_t k = 0; k < items.size(); ++k) {
                    try {
                        apply_group({items[k]}, {item_of[k]}, false);
                    } catch (const db::db_error& e1) {
                        route(item_of[k],
                              e1.kind() == db::failure_kind::transient ? amqp::failure_kind::transient
                                                                        : amqp::failure_kind::permanent,
                              e1.kind() == db::failure_kind::transient ? "database_unavailable" : "apply_failed",
                              e1.what());
                    }
                }
            }
        }
    }

    // A valid transaction that ends in the error queue ends as failed, so its wallet moves on.
    for (auto& p : out) {
        if (!p.fail_on_park) continue;
        try {
            std::int64_t j = 0;
            if (auto ev = processor_.mark_failed(*p.fail_on_park,
                                                 amqp::header_text(p.msg.props.headers, amqp::header_error_reason), &j)) {
                announced.push_back({p.delivery, std::move(*ev)});
            }
            if (j) journal.push_back(j);
        } catch (const std::exception& e) {
            log::error("could not mark a parked transaction failed (reconcile will show it queued)",
                       {{"transaction_id", p.fail_on_park->transaction_id}, {"error", e.what()}});
        }
    }

    outbound job;
    job.apply_us = us_since(t_start);
    std::vector<std::size_t> job_index(batch.size(), 0);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (keep[i]) continue;
        job_index[i] = job.deliveries.size();
        job.deliveries.push_back(batch[i].d);
    }
    for (auto& p : out) {
        job.msg_deliveries.push_back({job_index[p.delivery]});
        job.msgs.push_back(std::move(p.msg));
    }
    // Outcomes go out as tx.events.v1 messages, one per run of the same status, of at most
    // max_events_per_message: a few messages per batch instead of one per transaction. Each
    // was routed to the notifier and to every gateway; measured end to end, the broker's CPU
    // per transaction fell by about 30 %. A message's deliveries are acked only once it was
    // confirmed.
    std::vector<const tx_event*> events;
    std::vector<std::string> correlation;
    for (const auto& a : announced) {
        events.push_back(&a.event);
        correlation.push_back(a.delivery == no_delivery ? std::string() : batch[a.delivery].d.props.correlation_id);
    }
    auto am = announce(events, correlation);
    for (std::size_t k = 0; k < am.msgs.size(); ++k) {
        std::vector<std::size_t> from;
        for (auto j : am.from[k]) {
            if (announced[j].delivery != no_delivery) from.push_back(job_index[announced[j].delivery]);
        }
        job.msgs.push_back(std::move(am.msgs[k]));
        job.msg_deliveries.push_back(std::move(from));
    }
    job.journal = std::move(journal);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (keep[i]) held_.push_back(std::move(batch[i]));
    }
    {
        std::lock_guard lk(mu_);
        to_publish_.push_back(std::move(job));
        ++in_flight_;
    }
    cv_.notify_all();
}

}  // namespace txp::ledger
