// See outcome_waiters.hpp.
#include "outcome_waiters.hpp"

#include "txp/amqp/consumer.hpp"
#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"

#include <vector>

namespace txp::gateway {

outcome_waiters::outcome_waiters() = default;

outcome_waiters::~outcome_waiters() { stop(); }

void outcome_waiters::start(amqp::connection_options opts, std::string replica) {
    std::string queue = "gateway.events." + replica + "." + ids::random_hex(4);
    thread_ = std::thread([this, opts = std::move(opts), queue = std::move(queue)]() mutable { run(std::move(opts), queue); });
}

void outcome_waiters::stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    {
        std::lock_guard lock(mu_);
        closed_ = true;  // from now on park() answers at once
    }
    expire(std::chrono::steady_clock::time_point::max());
}

void outcome_waiters::park(const std::string& transaction_id, std::shared_ptr<http::response_writer> writer,
                           std::string request_id, std::chrono::steady_clock::time_point deadline, responder respond) {
    waiter w{transaction_id, std::move(writer), std::move(request_id), deadline, std::move(respond)};
    {
        std::lock_guard lock(mu_);
        if (!closed_) {
            auto id = next_id_++;
            by_tx_.emplace(transaction_id, id);
            waiters_.emplace(id, std::move(w));
            return;
        }
    }
    answer(w, std::nullopt);  // shutting down: no events will come; answer "still queued"
}

void outcome_waiters::answer(waiter& w, const std::optional<tx_outcome>& outcome) {
    log::scope tag("", w.request_id);
    try {
        w.writer->send(w.respond(outcome));
    } catch (const std::exception& e) {
        log::error("answering a waiting request failed", {{"error", e.what()}});
        w.writer->send(http::problem(500, "internal", "Internal Server Error", "The server could not complete the request.",
                                     w.request_id));
    }
}

void outcome_waiters::complete(const std::string& transaction_id, const tx_outcome& outcome) {
    std::vector<waiter> done;
    {
        std::lock_guard lock(mu_);
        auto [b, e] = by_tx_.equal_range(transaction_id);
        for (auto it = b; it != e; ++it) {
            auto w = waiters_.find(it->second);
            if (w != waiters_.end()) {
                done.push_back(std::move(w->second));
                waiters_.erase(w);
            }
        }
        by_tx_.erase(b, e);
    }
    for (auto& w : done) answer(w, outcome);
}

void outcome_waiters::expire(std::chrono::steady_clock::time_point now) {
    std::vector<waiter> done;
    {
        std::lock_guard lock(mu_);
        for (auto it = waiters_.begin(); it != waiters_.end();) {
            if (it->second.deadline <= now || it->second.writer->client_gone()) {
                auto [b, e] = by_tx_.equal_range(it->second.transaction_id);
                for (auto t = b; t != e; ++t) {
                    if (t->second == it->first) {
                        by_tx_.erase(t);
                        break;
                    }
                }
                done.push_back(std::move(it->second));
                it = waiters_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& w : done) answer(w, std::nullopt);
}

void outcome_waiters::on_notify_created(std::function<void(const std::string& body)> listener) {
    std::lock_guard lk(listener_mu_);
    notify_listener_ = std::move(listener);
}

void outcome_waiters::on_outcome(std::function<void(const std::string& transaction_id)> listener) {
    std::lock_guard lk(listener_mu_);
    outcome_listener_ = std::move(listener);
}

void outcome_waiters::on_token_revoked(std::function<void(const std::string& token_hash)> listener) {
    std::lock_guard lk(listener_mu_);
    revoked_listener_ = std::move(listener);
}

std::size_t outcome_waiters::parked() const {
    std::lock_guard lock(mu_);
    return waiters_.size();
}

std::vector<std::pair<std::string, tx_outcome>> outcome_waiters::parse_events(const std::string& body) {
    std::vector<std::pair<std::string, tx_outcome>> out;
    auto one = [&](const rapidjson::Value& ev) {
        try {
            auto id = json::require_string(ev, "transaction_id", 64);
            tx_outcome o;
            o.status = json::require_string(ev, "status", 32);
            o.reason = json::optional_string(ev, "reason", 200);
            if (o.status == "completed" || o.status == "rejected" || o.status == "failed") out.emplace_back(std::move(id), std::move(o));
        } catch (const std::exception&) {
        }
    };
    try {
        auto doc = json::parse(body);
        if (!doc.IsObject()) return out;
        auto events = doc.FindMember("events");
        if (events == doc.MemberEnd()) {
            one(doc);
        } else if (events->value.IsArray()) {
            for (const auto& ev : events->value.GetArray()) {
                if (ev.IsObject()) one(ev);
            }
        }
    } catch (const std::exception&) {
    }
    return out;
}

std::optional<std::string> outcome_waiters::parse_token_revoked(const std::string& body) {
    try {
        auto doc = json::parse(body);
        auto hash = json::require_string(doc, "token_hash", 64);
        if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
        return hash;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string outcome_waiters::token_revoked_body(const std::string& token_hash) {
    json::writer w;
    w.start_object().kv("token_hash", token_hash).end_object();
    return w.str();
}

void outcome_waiters::run(amqp::connection_options opts, std::string queue) {
    log::scope tag("", "outcome-events");
    amqp::topology t;
    t.exchanges.push_back({amqp::events_exchange, "topic", true});
    amqp::queue_decl q;
    q.name = queue;
    q.durable = false;
    q.exclusive = true;
    q.auto_delete = true;
    t.queues.push_back(q);
    t.bindings.push_back({amqp::events_exchange, queue, "tx.*"});
    t.bindings.push_back({amqp::events_exchange, queue, "notify.created"});
    t.bindings.push_back({amqp::events_exchange, queue, std::string(token_revoked_key)});
    opts.connection_name = "api-gateway events " + queue;
    amqp::consumer c(opts, t, queue, 500);
    log::info("listening for transaction outcomes", {{"queue", queue}});
    while (!stopping_) {
        auto batch = c.next_batch(500, std::chrono::milliseconds(100), std::chrono::milliseconds(0));
        connected_ = c.generation() > 0;
        for (const auto& d : batch) {
            if (d.routing_key == "notify.created") {
                std::lock_guard lk(listener_mu_);
                if (notify_listener_) notify_listener_(d.body);
                continue;
            }
            if (d.routing_key == token_revoked_key) {
                if (auto hash = parse_token_revoked(d.body)) {
                    std::lock_guard lk(listener_mu_);
                    if (revoked_listener_) revoked_listener_(*hash);
                } else {
                    log::warn("auth.token_revoked message without a valid token_hash; dropped");
                }
                continue;
            }
            for (auto& [id, outcome] : parse_events(d.body)) {
                complete(id, outcome);
                std::lock_guard lk(listener_mu_);
                if (outcome_listener_) outcome_listener_(id);
            }
        }
        if (!batch.empty()) c.ack_up_to(batch.back());
        expire(std::chrono::steady_clock::now());
    }
    c.close();
}

}  // namespace txp::gateway
