// ledger.transaction.v1 and tx.event.v1: parsing, validation and serialisation.
#include "ledger.hpp"

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

}  // namespace txp::ledger
