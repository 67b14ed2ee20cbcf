// The webhook dispatcher and its sender threads (see webhook_dispatcher.hpp).
#include "webhook_dispatcher.hpp"

#include "feed.hpp"
#include "recorder.hpp"

#include "txp/amqp/failure_routing.hpp"
#include "txp/amqp/publisher.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/config.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/http/client.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace txp::notifier {

namespace {

constexpr const char* service_name = "notifier";
constexpr std::size_t candidate_limit = 200;

metrics::counter& attempt_counter(const char* outcome) {
    return metrics::global().get_counter("txp_notifier_webhook_attempts_total", "Webhook delivery attempts by outcome",
                                         {{"outcome", outcome}});
}

struct job {
    std::string delivery_id;
    std::string subscription_id;
    std::string url;
    std::string endpoint;
    std::string secret_sealed;
    int attempt = 0;
    feed_entry entry;
};

struct result {
    job j;
    std::string body;
    bool delivered = false;
    bool final = false;       // no more attempts: park
    unsigned http_status = 0;
    std::string reason;       // webhook_failed, url_forbidden, secret_unreadable
    std::string detail;
};

std::string webhook_body(const job& j) {
    json::writer w;
    w.start_object();
    w.kv("delivery_id", j.delivery_id).kv("event_id", j.entry.event_id).kv("type", j.entry.event_type);
    w.kv("user_id", j.entry.user_id).kv("created_at", j.entry.created_at);
    w.raw("data", j.entry.to_json());
    w.end_object();
    return w.str();
}

}  // namespace

std::vector<std::chrono::milliseconds> parse_backoff(std::string_view text) {
    std::vector<std::chrono::milliseconds> out;
    std::size_t start = 0;
    std::string s(text);
    while (start <= s.size()) {
        auto comma = s.find(',', start);
        auto item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? s.size() + 1 : comma + 1;
        while (!item.empty() && item.front() == ' ') item.erase(0, 1);
        while (!item.empty() && item.back() == ' ') item.pop_back();
        if (item.empty()) throw std::invalid_argument("empty delay in backoff list");
        auto d = config::parse_duration(item);
        if (d.count() <= 0) throw std::invalid_argument("backoff delays must be positive");
        out.push_back(d);
    }
    if (out.size() > 20) throw std::invalid_argument("at most 20 retries");
    return out;
}

struct webhook_dispatcher::impl {
    dispatcher_options opts;
    db::pool& pool;
    int max_attempts;

    std::mutex mu;
    std::condition_variable dispatch_cv;
    std::condition_variable jobs_cv;
    std::deque<job> jobs;
    std::vector<result> results;
    bool woken = false;
    bool stopping = false;
    bool senders_exit = false;

    // Dispatcher thread only.
    std::map<std::string, std::size_t> in_flight_by_endpoint;
    std::size_t in_flight = 0;
    std::unique_ptr<amqp::publisher> publisher;
    std::chrono::steady_clock::time_point next_retry = std::chrono::steady_clock::time_point::max();

    std::thread dispatcher;
    std::vector<std::thread> senders;

    impl(dispatcher_options o, db::pool& p)
        : opts(std::move(o)), pool(p), max_attempts(static_cast<int>(opts.backoff.size()) + 1) {}

    void dispatch_loop() {
        for (;;) {
            std::vector<result> done;
            bool stop_now = false;
            {
                std::unique_lock lk(mu);
                auto until = std::min(std::chrono::steady_clock::now() + opts.poll, next_retry);
                dispatch_cv.wait_until(lk, until, [&] { return woken || !results.empty() || (stopping && in_flight == 0); });
                woken = false;
                done.swap(results);
                stop_now = stopping;
            }
            if (!done.empty()) settle(done);
            if (publisher) publisher->keep_alive();
            if (stop_now) {
                if (in_flight == 0) break;
                continue;
            }
            if (std::chrono::steady_clock::now() >= next_retry) next_retry = std::chrono::steady_clock::time_point::max();
            try {
                claim();
            } catch (const std::exception& e) {
                log::warn("could not claim webhook deliveries; trying again shortly", {{"error", e.what()}});
            }
        }
        {
            std::lock_guard lk(mu);
            senders_exit = true;
        }
        jobs_cv.notify_all();
    }

    void claim() {
        std::size_t free = opts.concurrency - in_flight;
        if (free == 0) return;
        std::vector<std::string> busy;
        for (const auto& [ep, n] : in_flight_by_endpoint) {
            if (n >= opts.per_endpoint) busy.push_back(ep);
        }
        auto lease = opts.timeout * 2 + std::chrono::seconds(30);
        std::vector<job> claimed;
        db::with_transaction(pool, [&](pqxx::work& w) {
            claimed.clear();
            auto cand = w.exec_params(
                "SELECT d.id::text, s.endpoint FROM notify.deliveries d"
                " JOIN notify.webhook_subscriptions s ON s.id = d.subscription_id"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.active"
                " AND NOT (s.endpoint = ANY($1::text[]))"
                " ORDER BY d.next_attempt_at LIMIT $2",
                db::array_literal(busy), static_cast<std::int64_t>(candidate_limit));
            std::map<std::string, std::size_t> taken;
            std::vector<std::string> ids;
            for (const auto& r : cand) {
                if (ids.size() >= free) break;
                auto ep = r[1].as<std::string>();
                auto have = in_flight_by_endpoint.count(ep) ? in_flight_by_endpoint[ep] : 0;
                if (have + taken[ep] >= opts.per_endpoint) continue;
                ++taken[ep];
                ids.push_back(r[0].as<std::string>());
            }
            if (ids.empty()) return;
            auto rows = w.exec_params(
                "WITH c AS (SELECT id FROM notify.deliveries WHERE id = ANY($1::uuid[]) AND status = 'pending'"
                "  AND next_attempt_at <= now() FOR UPDATE SKIP LOCKED)"
                " UPDATE notify.deliveries d SET attempts = d.attempts + 1,"
                "  next_attempt_at = now() + $2::bigint * interval '1 millisecond', updated_at = now()"
                " FROM c, notify.webhook_subscriptions s, notify.notifications n"
                " WHERE d.id = c.id AND s.id = d.subscription_id AND n.id = d.notification_id"
                " RETURNING d.id::text, d.attempts, s.id::text, s.url, s.endpoint, s.secret_sealed, " +
                    feed_columns("n."),
                db::array_literal(ids), static_cast<std::int64_t>(lease.count()));
            for (const auto& r : rows) {
                job j;
                j.delivery_id = r[0].as<std::string>();
                j.attempt = r[1].as<int>();
                j.subscription_id = r[2].as<std::string>();
                j.url = r[3].as<std::string>();
                j.endpoint = r[4].as<std::string>();
                j.secret_sealed = r[5].as<std::string>();
                j.entry = feed_entry_from_row(r, 6);
                claimed.push_back(std::move(j));
            }
        });
        if (claimed.empty()) return;
        for (const auto& j : claimed) {
            ++in_flight_by_endpoint[j.endpoint];
            ++in_flight;
        }
        {
            std::lock_guard lk(mu);
            for (auto& j : claimed) jobs.push_back(std::move(j));
        }
        jobs_cv.notify_all();
    }

    void sender_loop() {
        for (;;) {
            job j;
            {
                std::unique_lock lk(mu);
                jobs_cv.wait(lk, [&] { return !jobs.empty() || senders_exit; });
                if (jobs.empty()) return;
                j = std::move(jobs.front());
                jobs.pop_front();
            }
            result r = attempt(std::move(j));
            {
                std::lock_guard lk(mu);
                results.push_back(std::move(r));
            }
            dispatch_cv.notify_one();
        }
    }

    result attempt(job j) {
        result r;
        r.body = webhook_body(j);
        auto start = std::chrono::steady_clock::now();
        // Checked again at every attempt: the name may resolve elsewhere than at creation.
        auto check = check_webhook_url(j.url, opts.policy);
        if (!check.ok) {
            r.reason = "url_forbidden";
            r.detail = check.reason + ": " + check.detail;
            r.final = true;
        } else {
            std::string secret;
            try {
                secret = open_secret(opts.key, j.secret_sealed, j.subscription_id);
            } catch (const std::exception& e) {
                r.reason = "secret_unreadable";
                r.detail = e.what();
                r.final = true;
            }
            if (r.reason.empty()) {
                http::client_request req;
                req.method = "POST";
                req.url = j.url;
                req.body = r.body;
                req.timeout = opts.timeout;
                req.headers = {{"Txp-Signature", signature_header(secret, ids::unix_seconds(), r.body)},
                               {"Txp-Event-Id", j.entry.event_id},
                               {"Txp-Delivery-Id", j.delivery_id},
                               {"Txp-Attempt", std::to_string(j.attempt)}};
                try {
                    auto res = http::fetch(req);
                    r.http_status = res.status;
                    r.delivered = res.status >= 200 && res.status < 300;
                    if (!r.delivered) {
                        r.reason = "webhook_failed";
                        r.detail = "HTTP " + std::to_string(res.status);
                    }
                } catch (const http::client_error& e) {
                    r.reason = "webhook_failed";
                    r.detail = std::string(http::to_string(e.k)) + ": " + e.what();
                } catch (const std::exception& e) {
                    r.reason = "webhook_failed";
                    r.detail = e.what();
                }
                if (!r.delivered && j.attempt >= max_attempts) r.final = true;
            }
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
        const char* outcome = r.delivered ? "delivered" : (r.final ? "parked" : "retry");
        attempt_counter(outcome).inc();
        log::scope s(j.entry.event_id, j.delivery_id);
        log::write(r.delivered ? log::level::info : log::level::warn, "webhook attempt",
                   {{"event_id", j.entry.event_id}, {"user_id", j.entry.user_id}, {"destination", j.endpoint},
                    {"delivery_id", j.delivery_id}, {"outcome", outcome}, {"attempt", j.attempt},
                    {"max_attempts", max_attempts}, {"http_status", static_cast<std::int64_t>(r.http_status)},
                    {"error", r.detail}, {"ms", static_cast<std::int64_t>(ms)}});
        r.j = std::move(j);
        return r;
    }

    amqp::outgoing parked_message(const result& r) {
        amqp::delivery d;
        d.body = r.body;
        d.props.message_id = r.j.delivery_id;
        d.props.correlation_id = r.j.entry.event_id;
        d.props.type = webhook_type;
        d.props.app_id = service_name;
        d.props.timestamp = ids::unix_seconds();
        d.props.headers[amqp::header_attempts] = static_cast<std::int64_t>(r.j.attempt - 1);
        d.props.headers["x-delivery-id"] = r.j.delivery_id;
        d.props.headers["x-subscription-id"] = r.j.subscription_id;
        d.props.headers["x-event-id"] = r.j.entry.event_id;
        d.props.headers["x-user-id"] = r.j.entry.user_id;
        d.props.headers["x-destination"] = r.j.endpoint;
        return amqp::route_failure(d, "notifier.events", {amqp::failure_kind::permanent, r.reason, r.detail}, service_name,
                                   {});
    }

    void settle(std::vector<result>& done) {
        for (const auto& r : done) {
            if (--in_flight_by_endpoint[r.j.endpoint] == 0) in_flight_by_endpoint.erase(r.j.endpoint);
            --in_flight;
        }
        // Parked deliveries reach the error queue first; one that is not confirmed stays
        // leased and is attempted again when the lease runs out.
        std::vector<amqp::outgoing> parked;
        std::vector<std::size_t> parked_idx;
        for (std::size_t i = 0; i < done.size(); ++i) {
            if (done[i].final && !done[i].delivered) {
                parked.push_back(parked_message(done[i]));
                parked_idx.push_back(i);
            }
        }
        std::vector<bool> skip(done.size(), false);
        if (!parked.empty()) {
            if (!publisher) publisher = std::make_unique<amqp::publisher>(opts.amqp, amqp::txp_topology());
            auto res = publisher->publish(parked, std::chrono::seconds(15));
            for (std::size_t k = 0; k < res.size(); ++k) {
                if (res[k].status == amqp::publish_status::confirmed) continue;
                skip[parked_idx[k]] = true;
                log::error("parking a webhook delivery was not confirmed; it will be attempted again after its lease",
                           {{"delivery_id", done[parked_idx[k]].j.delivery_id}, {"detail", res[k].detail}});
            }
        }
        try {
            db::with_transaction(pool, [&](pqxx::work& w) {
                for (std::size_t i = 0; i < done.size(); ++i) {
                    if (skip[i]) continue;
                    const auto& r = done[i];
                    std::optional<std::int64_t> status;
                    if (r.http_status) status = r.http_status;
                    if (r.delivered) {
                        w.exec_params("UPDATE notify.deliveries SET status = 'delivered', delivered_at = now(), last_status = $2,"
                                      " last_error = NULL, updated_at = now() WHERE id = $1::uuid AND status = 'pending'",
                                      r.j.delivery_id, status);
                    } else if (r.final) {
                        auto u = w.exec_params("UPDATE notify.deliveries SET status = 'parked', last_status = $2, last_error = $3,"
                                               " updated_at = now() WHERE id = $1::uuid AND status = 'pending'",
                                               r.j.delivery_id, status, r.detail.substr(0, 500));
                        if (u.affected_rows() > 0) {
                            w.exec_params("UPDATE notify.webhook_subscriptions SET failure_count = failure_count + 1,"
                                          " last_failure_at = now(), last_failure_reason = $2 WHERE id = $1::uuid",
                                          r.j.subscription_id, r.detail.substr(0, 500));
                        }
                    } else {
                        auto delay = opts.backoff[static_cast<std::size_t>(std::max(1, r.j.attempt)) - 1];
                        w.exec_params("UPDATE notify.deliveries SET next_attempt_at = now() + $2::bigint * interval '1 millisecond',"
                                      " last_status = $3, last_error = $4, updated_at = now()"
                                      " WHERE id = $1::uuid AND status = 'pending'",
                                      r.j.delivery_id, static_cast<std::int64_t>(delay.count()), status,
                                      r.detail.substr(0, 500));
                        next_retry = std::min(next_retry, std::chrono::steady_clock::now() + delay);
                    }
                }
            });
        } catch (const std::exception& e) {
            log::error("could not record webhook outcomes; those deliveries are attempted again after their lease",
                       {{"error", e.what()}, {"outcomes", done.size()}});
        }
    }
};

webhook_dispatcher::webhook_dispatcher(dispatcher_options opts, db::pool& pool)
    : impl_(std::make_unique<impl>(std::move(opts), pool)) {}

webhook_dispatcher::~webhook_dispatcher() { stop(); }

void webhook_dispatcher::start() {
    for (std::size_t i = 0; i < impl_->opts.concurrency; ++i) impl_->senders.emplace_back([this] { impl_->sender_loop(); });
    impl_->dispatcher = std::thread([this] { impl_->dispatch_loop(); });
    log::info("webhook dispatcher started",
              {{"concurrency", impl_->opts.concurrency}, {"per_endpoint", impl_->opts.per_endpoint},
               {"timeout_ms", static_cast<std::int64_t>(impl_->opts.timeout.count())}, {"max_attempts", impl_->max_attempts}});
}

void webhook_dispatcher::wake() {
    {
        std::lock_guard lk(impl_->mu);
        impl_->woken = true;
    }
    impl_->dispatch_cv.notify_one();
}

void webhook_dispatcher::stop() {
    if (!impl_->dispatcher.joinable()) return;
    {
        std::lock_guard lk(impl_->mu);
        impl_->stopping = true;
    }
    impl_->dispatch_cv.notify_one();
    impl_->dispatcher.join();
    for (auto& t : impl_->senders) t.join();
    impl_->senders.clear();
    log::info("webhook dispatcher stopped");
}

}  // namespace txp::notifier
