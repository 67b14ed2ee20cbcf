// The notifier's routes: webhook subscriptions (POST/GET/DELETE /v1/webhooks), the user's
// accounting feed (GET /v1/notifications), its live Server-Sent Events stream
// (GET /v1/events, with Last-Event-ID resume from the feed) and the web console at /.
#include "notify_routes.hpp"

#include "api_internal.hpp"

#include "feed.hpp"
#include "subscriptions.hpp"

#include "txp/common/config.hpp"
#include "txp/common/log.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace txp::gateway {

std::shared_ptr<const notify_config> notify_config_from_env() {
    auto c = std::make_shared<notify_config>();
    // Empty counts as unset (compose files often pass the variable through empty).
    if (auto key = config::get("TXP_WEBHOOK_SECRET_KEY"); key && !key->empty()) {
        c->webhook_key = notifier::secret_key::from_env();  // config_error naming it when malformed
    }
    try {
        c->webhook_policy = notifier::webhook_url_policy::parse(config::get_string("TXP_WEBHOOK_ALLOW", ""));
    } catch (const std::invalid_argument& e) {
        throw config::config_error(std::string("TXP_WEBHOOK_ALLOW is malformed: ") + e.what());
    }
    c->sse.per_user = static_cast<std::size_t>(config::get_int("TXP_SSE_MAX_PER_USER", 5, 1, 1000));
    c->sse.total = static_cast<std::size_t>(config::get_int("TXP_SSE_MAX_STREAMS", 2000, 1, 1000000));
    c->sse.heartbeat = config::get_duration("TXP_SSE_HEARTBEAT", std::chrono::seconds(15));
    if (c->sse.heartbeat.count() <= 0) throw config::config_error("TXP_SSE_HEARTBEAT: must be a positive duration such as 15s");
    return c;
}

notify_gateway::notify_gateway(std::shared_ptr<const notify_config> config, outcome_waiters* waiters)
    : config_(config ? std::move(config) : std::make_shared<notify_config>()), waiters_(waiters), streams_(config_->sse) {
    if (waiters_) waiters_->on_notify_created([this](const std::string& body) { streams_.dispatch(body); });
}

notify_gateway::~notify_gateway() {
    if (waiters_) waiters_->on_notify_created({});
}

std::shared_ptr<notify_gateway> make_notify_gateway(const options& opts, outcome_waiters* waiters) {
    return std::make_shared<notify_gateway>(opts.notify, waiters);
}

void close_streams_of_token(notify_gateway& n, const std::string& token_hash) {
    if (auto closed = n.streams().close_token(token_hash); closed > 0) {
        log::info("event streams of a logged-out token closed", {{"streams", closed}});
    }
}

namespace {

const notifier::secret_key& require_webhooks(const notify_gateway& n) {
    if (!n.config().webhook_key) {
        fail(503, "webhooks-not-configured", "Webhooks not configured",
             "Webhooks are not configured on this server (TXP_WEBHOOK_SECRET_KEY is not set).");
    }
    return *n.config().webhook_key;
}

bool looks_like_uuid(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char ch = s[i];
        if (dash ? ch != '-' : !std::isxdigit(static_cast<unsigned char>(ch))) return false;
    }
    return true;
}

// "tx.completed", "tx.*", "plaid.item.error": lower-case dotted words, an optional ".*" at the end.
bool valid_type_filter(std::string_view t) {
    if (t.empty() || t.size() > 100) return false;
    return std::all_of(t.begin(), t.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '*';
    });
}

}  // namespace

std::optional<http::response> api::impl::create_webhook(context& c) {
    const auto& key = require_webhooks(*notify);
    auto doc = json_body(c.req, {"url", "event_types"});
    auto url = json::require_string(doc, "url", 4096);
    std::vector<std::string> types{"*"};
    if (doc.HasMember("event_types")) {
        const auto& v = doc["event_types"];
        if (!v.IsArray()) fail_field("event_types", "event_types must be an array of strings such as [\"tx.completed\"].");
        types.clear();
        for (const auto& t : v.GetArray()) {
            if (!t.IsString()) fail_field("event_types", "event_types must be an array of strings such as [\"tx.completed\"].");
            types.emplace_back(t.GetString(), t.GetStringLength());
        }
    }
    auto out = in_transaction(pool, [&](pqxx::work& w) {
        return notifier::create_subscription(w, key, notify->config().webhook_policy, c.me().id, url, types);
    });
    if (!out.ok) {
        if (out.reason == "invalid_event_types") fail_field("event_types", out.detail + ".", 422);
        if (out.reason == "too_many_subscriptions") fail(409, "too-many-webhooks", "Too many webhooks", out.detail + ".");
        json::writer reason;
        reason.str(out.reason);
        log::info("webhook url refused", {{"user_id", c.me().id}, {"reason", out.reason}});
        fail(422, "webhook-url-not-allowed", "Webhook URL not allowed", out.detail,
             {{"field", "\"url\""}, {"reason", reason.str()}});
    }
    log::info("webhook subscription created", {{"user_id", c.me().id}, {"subscription_id", out.created.id}});
    // The subscription as GET /v1/webhooks shows it, plus the secret: the only time it is shown.
    auto body = out.created.to_json();
    json::writer secret;
    secret.str(out.secret);
    body.pop_back();
    body += ",\"secret\":" + secret.str() + "}";
    return json_response(201, std::move(body));
}

std::optional<http::response> api::impl::list_webhooks(context& c) {
    require_webhooks(*notify);
    auto subs = in_transaction(pool, [&](pqxx::work& w) { return notifier::list_subscriptions(w, c.me().id); });
    std::string body = "{\"webhooks\":[";
    for (std::size_t i = 0; i < subs.size(); ++i) {
        if (i) body += ',';
        body += subs[i].to_json();
    }
    body += "]}";
    return json_response(200, std::move(body));
}

std::optional<http::response> api::impl::delete_webhook(context& c) {
    require_webhooks(*notify);
    const auto& id = c.params.at("id");
    // Someone else's subscription is "not found" too: its existence is not revealed.
    if (!looks_like_uuid(id)) fail_not_found("The webhook");
    bool deleted = in_transaction(pool, [&](pqxx::work& w) { return notifier::delete_subscription(w, c.me().id, id); });
    if (!deleted) fail_not_found("The webhook");
    log::info("webhook subscription deleted", {{"user_id", c.me().id}, {"subscription_id", id}});
    http::response r;
    r.status = 204;
    r.content_type.clear();
    return r;
}

std::optional<http::response> api::impl::list_notifications(context& c) {
    notifier::feed_query q;
    q.user_id = c.me().id;
    q.limit = static_cast<int>(int_query(c.req, "limit", 1, 100).value_or(50));
    q.wallet_id = int_query(c.req, "wallet_id", 1, std::numeric_limits<std::int64_t>::max());
    if (auto t = c.req.query_param("type")) {
        if (!valid_type_filter(*t)) fail_field("type", "type must be an event type such as tx.completed, or a prefix such as tx.*.");
        q.event_type = *t;
    }
    // The cursor is the seq of the last entry of the previous page (opaque to clients).
    if (auto cur = c.req.query_param("cursor")) {
        if (cur->empty() || cur->size() > 18 ||
            !std::all_of(cur->begin(), cur->end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
            fail_field("cursor", "cursor is not a cursor this API returned.");
        }
        q.before_seq = std::stoll(*cur);
    }
    auto page = q.limit;
    q.limit = page + 1;  // one more: is there a next page?
    auto entries = in_transaction(pool, [&](pqxx::work& w) { return notifier::read_feed(w, q); });
    std::string body = "{\"notifications\":[";
    std::size_t n = std::min(entries.size(), static_cast<std::size_t>(page));
    for (std::size_t i = 0; i < n; ++i) {
        if (i) body += ',';
        body += entries[i].to_json();
    }
    body += "],\"next_cursor\":";
    if (entries.size() > n) {
        body += '"';
        body += std::to_string(entries[n - 1].seq);
        body += '"';
    } else {
        body += "null";
    }
    body += '}';
    return json_response(200, std::move(body));
}

std::optional<http::response> api::impl::open_event_stream(context& c) {
    // EventSource cannot send an Authorization header: here, and only here, the token may come
    // as ?access_token= (the server never logs query strings).
    if (!c.req.header_value("Authorization")) {
        if (auto t = c.req.query_param("access_token")) {
            http::request with_header = c.req;
            with_header.headers.push_back({"Authorization", "Bearer " + *t});
            c.user = authenticate(with_header);
        }
    }
    if (!c.user) c.user = authenticate(c.req);
    if (int wait_s = per_token.take(c.me().token_hash); wait_s > 0) {
        auto resp = http::problem(429, "rate-limited", "Too Many Requests",
                                  "This token sends requests faster than the limit allows.", c.req.request_id);
        resp.headers.push_back({"Retry-After", std::to_string(wait_s)});
        return resp;
    }
    std::optional<std::int64_t> last;
    if (auto h = c.req.header_value("Last-Event-ID")) {
        std::string v(*h);
        if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
            fail(400, "validation-error", "Invalid request", "Last-Event-ID must be an event id this stream sent.",
                 {{"field", "\"Last-Event-ID\""}});
        }
        last = std::stoll(v);
    } else {
        last = int_query(c.req, "last_event_id", 0, std::numeric_limits<std::int64_t>::max());
    }

    // Registered before the feed is read, so that what is announced meanwhile is buffered.
    auto [stream, refusal] = notify->streams().open(c.me().id, c.writer, c.me().token_hash, c.me().token_expires_at);
    if (refusal == event_streams::refusal::user_limit) {
        auto resp = http::problem(429, "too-many-streams", "Too many event streams",
                                  "This user has the most event streams open that the server allows; close one first.",
                                  c.req.request_id);
        resp.headers.push_back({"Retry-After", "5"});
        return resp;
    }
    if (refusal == event_streams::refusal::total_limit) {
        auto resp = http::problem(503, "streams-unavailable", "Event streams unavailable",
                                  "This server has as many event streams open as it allows; retry shortly.", c.req.request_id);
        resp.headers.push_back({"Retry-After", "5"});
        return resp;
    }

    constexpr int page = 500;
    auto read_page = [&](std::int64_t after) {
        notifier::feed_query q;
        q.user_id = c.me().id;
        q.limit = last ? page : 1;
        if (last) {
            q.after_seq = after;
            q.oldest_first = true;
        }
        return in_transaction(pool, [&](pqxx::work& w) { return notifier::read_feed(w, q); });
    };
    // The first read before the header, so that a database failure is still a problem answer.
    std::vector<notifier::feed_entry> entries;
    try {
        entries = read_page(last.value_or(0));
    } catch (...) {
        stream->close(false);
        throw;
    }
    c.writer->start_stream(200, {{"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}}, "text/event-stream");
    try {
        std::int64_t resume = 0;
        if (last) {
            // Resume: every entry after the client's last one, oldest first, then live.
            resume = *last;
            for (;;) {
                for (const auto& e : entries) {
                    if (!stream->replay(e.seq, e.event_type, e.to_json())) return std::nullopt;
                    resume = e.seq;
                }
                if (entries.size() < static_cast<std::size_t>(page)) break;
                entries = read_page(resume);
            }
        } else if (!entries.empty()) {
            resume = entries.front().seq;  // no resume: live from the newest entry on
        }
        stream->go_live(resume);
        log::info("event stream opened", {{"user_id", c.me().id}, {"resume_from", resume}});
    } catch (const std::exception& e) {
        log::warn("event stream replay failed; closing it", {{"user_id", c.me().id}, {"error", e.what()}});
        stream->close();
    }
    return std::nullopt;
}

std::optional<http::response> api::impl::console(context&) {
    http::response r;
    r.body = std::string(console_html());
    r.content_type = "text/html; charset=utf-8";
    r.headers.push_back({"Cache-Control", "no-cache"});
    r.headers.push_back({"Content-Security-Policy",
                         "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
                         "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"});
    r.headers.push_back({"X-Frame-Options", "DENY"});
    return r;
}

}  // namespace txp::gateway
