// Webhook subscription management (see subscriptions.hpp).
#include "subscriptions.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/db/db.hpp"

#include <regex>

namespace txp::notifier {

namespace {

constexpr const char* iso = "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"";

std::vector<std::string> parse_text_array(const pqxx::field& f) {
    std::vector<std::string> out;
    auto parser = f.as_array();
    for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next()) {
        if (item.first == pqxx::array_parser::string_value) out.push_back(item.second);
    }
    return out;
}

}  // namespace

std::string subscription::to_json() const {
    json::writer w;
    w.start_object();
    w.kv("id", id).kv("user_id", user_id).kv("url", url);
    w.key("event_types").start_array();
    for (const auto& t : event_types) w.str(t);
    w.end_array();
    w.kv("active", active).kv("failure_count", failure_count);
    w.kv_opt("last_failure_at", last_failure_at).kv_opt("last_failure_reason", last_failure_reason);
    w.kv("created_at", created_at);
    w.end_object();
    return w.str();
}

bool valid_event_types(const std::vector<std::string>& types) {
    static const std::regex re(R"(^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$)");
    if (types.empty() || types.size() > 32) return false;
    for (const auto& t : types) {
        if (t.size() > 100 || !std::regex_match(t, re)) return false;
    }
    return true;
}

create_outcome create_subscription(pqxx::transaction_base& t, const secret_key& key, const webhook_url_policy& policy,
                                   std::int64_t user_id, const std::string& url, const std::vector<std::string>& event_types) {
    create_outcome out;
    auto check = check_webhook_url(url, policy);
    if (!check.ok) {
        out.reason = check.reason;
        out.detail = check.detail;
        return out;
    }
    if (!valid_event_types(event_types)) {
        out.reason = "invalid_event_types";
        out.detail = "event_types must be 1 to 32 filters such as \"tx.completed\", \"tx.*\" or \"*\"";
        return out;
    }
    std::string id = ids::uuid_v4();
    std::string secret = new_webhook_secret();
    auto r = t.exec_params("SELECT notify.create_subscription($1::uuid, $2, $3, $4::text[], $5), "
                           "to_char(now() AT TIME ZONE 'UTC', '" + std::string(iso) + "')",
                           id, user_id, url, db::array_literal(event_types), seal_secret(key, secret, id));
    if (!r[0][0].as<bool>()) {
        out.reason = "too_many_subscriptions";
        out.detail = "a user may have at most 20 active webhook subscriptions";
        return out;
    }
    out.ok = true;
    out.secret = std::move(secret);
    out.created = {id, user_id, url, event_types, true, 0, std::nullopt, std::nullopt, r[0][1].as<std::string>()};
    return out;
}

bool delete_subscription(pqxx::transaction_base& t, std::int64_t user_id, const std::string& subscription_id) {
    if (!ids::is_uuid(subscription_id)) return false;
    return t.exec_params("SELECT notify.delete_subscription($1, $2::uuid)", user_id, subscription_id)[0][0].as<bool>();
}

std::vector<subscription> list_subscriptions(pqxx::transaction_base& t, std::int64_t user_id, bool include_deleted) {
    auto rows = t.exec_params(
        "SELECT id::text, user_id, url, event_types, active, failure_count,"
        " to_char(last_failure_at AT TIME ZONE 'UTC', '" + std::string(iso) + "'), last_failure_reason,"
        " to_char(created_at AT TIME ZONE 'UTC', '" + std::string(iso) + "')"
        " FROM notify.webhook_subscriptions WHERE user_id = $1 AND (active OR $2) ORDER BY created_at DESC, id",
        user_id, include_deleted);
    std::vector<subscription> out;
    for (const auto& r : rows) {
        subscription s;
        s.id = r[0].as<std::string>();
        s.user_id = r[1].as<std::int64_t>();
        s.url = r[2].as<std::string>();
        s.event_types = parse_text_array(r[3]);
        s.active = r[4].as<bool>();
        s.failure_count = r[5].as<std::int64_t>();
        if (!r[6].is_null()) s.last_failure_at = r[6].as<std::string>();
        if (!r[7].is_null()) s.last_failure_reason = r[7].as<std::string>();
        s.created_at = r[8].as<std::string>();
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace txp::notifier
