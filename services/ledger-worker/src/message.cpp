// ledger.transaction.v1 and tx.event.v1: parsing, validation and serialisation.
#include "ledger.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/schema.hpp"

namespace txp::ledger {

std::optional<tx_message> parse_message(std::string_view body, std::string_view amqp_type, invalid_message& why) {
    if (!amqp_type.empty() && amqp_type != message_type) {
        why = {"unknown_message_type", "AMQP type \"" + std::string(amqp_type.substr(0, 64)) + "\" is not " + message_type};
        return std::nullopt;
    }
    rapidjson::Document doc;
    try {
        doc = json::parse(body);
    } catch (const json::parse_error& e) {
        why = {"malformed_json", e.what()};
        return std::nullopt;
    }
    if (auto err = schema::global().validate(message_type, doc)) {
        why = {"schema_invalid", *err};
        return std::nullopt;
    }
    tx_message m;
    m.transaction_id = json::require_string(doc, "transaction_id");
    m.type = json::require_string(doc, "type");
    m.wallet_id = json::require_int(doc, "wallet_id");
    m.to_wallet_id = json::optional_int(doc, "to_wallet_id");
    m.amount = json::require_int(doc, "amount");
    m.currency = json::require_string(doc, "currency");
    m.sequence = json::require_int(doc, "sequence");
    m.to_sequence = json::optional_int(doc, "to_sequence");
    m.reverses_transaction_id = json::optional_string(doc, "reverses_transaction_id");
    m.reference = json::optional_string(doc, "reference");
    m.origin = json::optional_string(doc, "origin").value_or("api");
    m.accepted_at = json::require_string(doc, "accepted_at");
    if (m.to_wallet_id.has_value() != m.to_sequence.has_value()) {
        why = {"schema_invalid", "to_wallet_id and to_sequence come together"};
        return std::nullopt;
    }
    if (m.type == "transfer" && !m.to_wallet_id) {
        why = {"schema_invalid", "a transfer needs to_wallet_id"};
        return std::nullopt;
    }
    if ((m.type == "reversal") != m.reverses_transaction_id.has_value()) {
        why = {"schema_invalid", "reverses_transaction_id belongs to reversals only"};
        return std::nullopt;
    }
    return m;
}

std::string tx_message::to_json() const {
    json::writer w;
    w.start_object();
    w.kv("transaction_id", transaction_id).kv("type", type).kv("wallet_id", wallet_id);
    if (to_wallet_id) w.kv("to_wallet_id", *to_wallet_id);
    w.kv("amount", amount).kv("currency", currency).kv("sequence", sequence);
    if (to_sequence) w.kv("to_sequence", *to_sequence);
    if (reverses_transaction_id) w.kv("reverses_transaction_id", *reverses_transaction_id);
    if (reference) w.kv("reference", *reference);
    w.kv("origin", origin).kv("accepted_at", accepted_at);
    w.end_object();
    return w.str();
}

std::string tx_event::to_json() const {
    json::writer w;
    w.start_object();
    w.kv("event_id", event_id()).kv("transaction_id", transaction_id).kv("status", status);
    w.kv_opt("reason", reason);
    w.kv("type", type).kv("wallet_id", wallet_id);
    w.kv_opt("to_wallet_id", to_wallet_id);
    w.kv_opt("owner_id", owner_id);
    w.kv_opt("to_owner_id", to_owner_id);
    w.kv("amount", amount).kv("currency", currency);
    w.kv_opt("balance_after", balance_after);
    w.kv_opt("to_balance_after", to_balance_after);
    w.kv_opt("reference", reference);
    w.kv("occurred_at", occurred_at);
    w.end_object();
    return w.str();
}

announcement_messages announce(const std::vector<const tx_event*>& events, const std::vector<std::string>& correlation_ids) {
    announcement_messages out;
    for (std::size_t k = 0; k < events.size();) {
        std::size_t end = k + 1;
        while (end < events.size() && end - k < max_events_per_message && events[end]->status == events[k]->status) ++end;
        json::writer w;
        w.start_object();
        w.key("events").start_array();
        std::vector<std::size_t> from;
        for (auto j = k; j < end; ++j) {
            auto e = events[j]->to_json();
            w.w().RawValue(e.data(), e.size(), rapidjson::kObjectType);
            from.push_back(j);
        }
        w.end_array();
        w.end_object();
        amqp::outgoing o;
        o.exchange = amqp::events_exchange;
        o.routing_key = events[k]->routing_key();
        o.body = w.str();
        o.props.message_id = ids::uuid_v4();
        // A single outcome keeps its request's correlation id; a run has many.
        if (end - k == 1 && k < correlation_ids.size()) o.props.correlation_id = correlation_ids[k];
        o.props.type = events_type;
        o.props.app_id = "ledger-worker";
        o.props.timestamp = ids::unix_seconds();
        out.msgs.push_back(std::move(o));
        out.from.push_back(std::move(from));
        k = end;
    }
    return out;
}

}  // namespace txp::ledger
