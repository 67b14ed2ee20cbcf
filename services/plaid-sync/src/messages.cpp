// plaid.sync.v1 jobs, plaid.event.v1 events, and small helpers shared by the syncer and
// the gateway-facing API.
#include "plaid_sync.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/money.hpp"
#include "txp/common/schema.hpp"

namespace txp::plaid_sync {

std::string sync_job::to_json() const {
    json::writer w;
    w.start_object().kv("item_id", item_id).kv("reason", reason);
    if (webhook_code) w.kv("webhook_code", *webhook_code);
    w.kv("requested_at", ids::iso8601_now()).end_object();
    return w.str();
}

std::optional<sync_job> parse_sync_job(std::string_view body, std::string_view amqp_type, amqp::failure& why) {
    if (!amqp_type.empty() && amqp_type != sync_type) {
        why = {amqp::failure_kind::permanent, "unknown_message_type",
               "AMQP type \"" + std::string(amqp_type.substr(0, 64)) + "\" is not " + sync_type};
        return std::nullopt;
    }
    rapidjson::Document doc;
    try {
        doc = json::parse(body);
    } catch (const json::parse_error& e) {
        why = {amqp::failure_kind::permanent, "malformed_json", e.what()};
        return std::nullopt;
    }
    if (auto err = schema::global().validate(sync_type, doc)) {
        why = {amqp::failure_kind::permanent, "schema_invalid", *err};
        return std::nullopt;
    }
    sync_job j;
    j.item_id = json::require_string(doc, "item_id");
    j.reason = json::require_string(doc, "reason");
    j.webhook_code = json::optional_string(doc, "webhook_code");
    return j;
}

amqp::outgoing sync_message(const sync_job& job, const std::string& correlation_id) {
    amqp::outgoing o;
    o.exchange = amqp::commands_exchange;
    o.routing_key = "plaid.sync";
    o.body = job.to_json();
    o.props.message_id = ids::uuid_v4();
    o.props.correlation_id = correlation_id;
    o.props.type = sync_type;
    o.props.app_id = service_name;
    o.props.timestamp = ids::unix_seconds();
    return o;
}

std::string plaid_event::to_json(const std::string& event_id) const {
    json::writer w;
    w.start_object().kv("event_id", event_id).kv("event", event).kv("item_id", item_id).kv("owner_id", owner_id);
    w.kv("occurred_at", ids::iso8601_now());
    if (institution_id) w.kv("institution_id", *institution_id);
    if (institution_name) w.kv("institution_name", *institution_name);
    auto num = [&](const char* k, const std::optional<std::int64_t>& v) {
        if (v) w.kv(k, *v);
    };
    num("accounts", accounts);
    num("added", added);
    num("modified", modified);
    num("removed", removed);
    num("mirrored", mirrored);
    num("reversed", reversed);
    if (reason) w.kv("reason", *reason);
    if (status) w.kv("status", *status);
    if (error_type) w.kv("error_type", *error_type);
    if (error_code) w.kv("error_code", *error_code);
    if (display_message) w.kv("display_message", *display_message);
    w.end_object();
    return w.str();
}

amqp::outgoing event_message(const plaid_event& e, const std::string& correlation_id) {
    amqp::outgoing o;
    o.exchange = amqp::events_exchange;
    o.routing_key = e.event;
    o.props.message_id = ids::uuid_v4();
    o.body = e.to_json(o.props.message_id);
    o.props.correlation_id = correlation_id;
    o.props.type = event_type;
    o.props.app_id = service_name;
    o.props.timestamp = ids::unix_seconds();
    return o;
}

enqueue_fn enqueue_into(const outbox::outbox& box) {
    return [&box](pqxx::work& w, const amqp::outgoing& m) { box.enqueue(w, m); };
}

void queue_sync(pqxx::work& w, const enqueue_fn& enqueue, const sync_job& job, const std::string& correlation_id) {
    w.exec_params("SELECT plaid.want_sync($1)", job.item_id);
    enqueue(w, sync_message(job, correlation_id));
}

bool set_item_status(pqxx::work& w, const enqueue_fn& enqueue, const std::string& item_id, const std::string& status,
                     const std::optional<std::string>& error_code, const std::string& event,
                     const std::optional<std::string>& error_type, const std::optional<std::string>& display_message,
                     const std::string& correlation_id) {
    auto r = w.exec_params("SELECT owner_id, previous_status FROM plaid.set_item_status($1, $2, $3)", item_id, status, error_code);
    if (r.empty()) return false;
    if (r[0][1].as<std::string>() != status) {
        plaid_event e;
        e.event = event;
        e.item_id = item_id;
        e.owner_id = r[0][0].as<std::int64_t>();
        e.status = status;
        e.error_code = error_code;
        e.error_type = error_type;
        e.display_message = display_message;
        enqueue(w, event_message(e, correlation_id));
    }
    return true;
}

std::optional<std::int64_t> minor_units(const std::string& decimal, const std::optional<std::string>& currency) {
    auto exp = money::minor_unit_exponent(currency.value_or("USD"));
    if (!exp) return std::nullopt;
    return money::parse_decimal(decimal, *exp);
}

std::string accounts_json(const std::vector<plaid::account>& accounts) {
    json::writer w;
    w.start_array();
    for (const auto& a : accounts) {
        auto money_field = [&](const char* k, const std::optional<std::string>& v) {
            w.key(k);
            std::optional<std::int64_t> m;
            if (v) m = minor_units(*v, a.balances.iso_currency_code);
            if (m) w.i64(*m);
            else w.null();
        };
        w.start_object().kv("account_id", a.account_id).kv("name", a.name).kv_opt("official_name", a.official_name);
        w.kv_opt("mask", a.mask).kv("type", a.type).kv_opt("subtype", a.subtype);
        money_field("available", a.balances.available);
        money_field("current", a.balances.current);
        money_field("limit", a.balances.limit);
        w.kv_opt("iso_currency_code", a.balances.iso_currency_code);
        w.kv_opt("unofficial_currency_code", a.balances.unofficial_currency_code);
        w.end_object();
    }
    w.end_array();
    return w.str();
}

bool syncable(const std::string& status) {
    return status == "active" || status == "pending_expiration" || status == "pending_disconnect";
}

const char* to_string(sync_status s) {
    switch (s) {
        case sync_status::synced: return "synced";
        case sync_status::not_ready: return "not_ready";
        case sync_status::deferred: return "deferred";
        case sync_status::skipped: return "skipped";
        case sync_status::login_required: return "login_required";
    }
    return "?";
}

}  // namespace txp::plaid_sync
