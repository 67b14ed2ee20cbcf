// Event parsing and the batch recorder (see recorder.hpp).
#include "recorder.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/schema.hpp"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

namespace txp::notifier {

namespace {

bool is_timestamp(const std::string& s) {
    static const std::regex re(R"(^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$)");
    return s.size() <= 40 && std::regex_match(s, re);
}

std::optional<std::int64_t> opt_int(const rapidjson::Value& v, const char* k) {
    auto it = v.FindMember(k);
    if (it == v.MemberEnd() || !it->value.IsInt64()) return std::nullopt;
    return it->value.GetInt64();
}

std::optional<std::string> opt_str(const rapidjson::Value& v, const char* k, std::size_t max = 200) {
    auto it = v.FindMember(k);
    if (it == v.MemberEnd() || !it->value.IsString()) return std::nullopt;
    return std::string(it->value.GetString(), std::min<std::size_t>(it->value.GetStringLength(), max));
}

// The fields every event shares; false (and `why`) when its timestamp is not one.
bool common_fields(const rapidjson::Value& ev, event_leg& base, invalid_event& why) {
    auto occurred = opt_str(ev, "occurred_at", 64);
    if (occurred && !is_timestamp(*occurred)) {
        why = {"invalid_timestamp", "occurred_at is not an ISO-8601 timestamp: " + occurred->substr(0, 40)};
        return false;
    }
    base.occurred_at = occurred.value_or(ids::iso8601_now());
    base.status = opt_str(ev, "status");
    base.reason = opt_str(ev, "reason");
    base.transaction_id = opt_str(ev, "transaction_id");
    if (base.transaction_id && !ids::is_uuid(*base.transaction_id)) base.transaction_id.reset();
    base.amount = opt_int(ev, "amount");
    base.currency = opt_str(ev, "currency", 3);
    if (base.currency && base.currency->size() != 3) base.currency.reset();
    base.wallet_id = opt_int(ev, "wallet_id");
    return true;
}

// A transaction's outcome (a tx.event.v1, alone or an element of tx.events.v1): leg 0 for
// the wallet's owner and, for a completed transfer, leg 1 for the destination's owner.
bool tx_legs(const rapidjson::Value& ev, event_leg base, std::vector<event_leg>& legs, invalid_event& why) {
    if (!common_fields(ev, base, why)) return false;
    base.message_type = tx_event_type;
    base.event_type = "tx." + *base.status;
    base.transaction_type = opt_str(ev, "type");
    auto owner = opt_int(ev, "owner_id");
    if (!owner) {
        why = {"no_recipient", "the event has no owner_id, so there is no user to notify"};
        return false;
    }
    const auto& tt = *base.transaction_type;
    event_leg source = base;
    source.user_id = *owner;
    source.balance_after = opt_int(ev, "balance_after");
    source.counterparty_wallet_id = opt_int(ev, "to_wallet_id");
    if (tt == "deposit") source.direction = "credit";
    else if (tt == "withdrawal" || tt == "payment" || tt == "transfer") source.direction = "debit";
    legs.push_back(source);
    // The recipient of a transfer hears of money that arrived, not of attempts that failed.
    auto to_owner = opt_int(ev, "to_owner_id");
    auto to_wallet = opt_int(ev, "to_wallet_id");
    if (tt == "transfer" && *base.status == "completed" && to_owner && to_wallet) {
        event_leg dest = base;
        dest.leg = 1;
        dest.user_id = *to_owner;
        dest.wallet_id = to_wallet;
        dest.counterparty_wallet_id = base.wallet_id;
        dest.balance_after = opt_int(ev, "to_balance_after");
        dest.direction = "credit";
        legs.push_back(dest);
    }
    return true;
}

}  // namespace

std::optional<std::vector<event_leg>> parse_event(const amqp::delivery& d, invalid_event& why) {
    const std::string& type = d.props.type;
    if (type.empty() || type.rfind("notify.", 0) == 0 || !schema::global().knows(type)) {
        why = {"unknown_message_type",
               "AMQP type \"" + type.substr(0, 64) + "\" is not an event type the notifier knows (no schema in proto/)"};
        return std::nullopt;
    }
    rapidjson::Document doc;
    try {
        doc = json::parse(d.body);
    } catch (const json::parse_error& e) {
        why = {"malformed_json", e.what()};
        return std::nullopt;
    }
    if (auto err = schema::global().validate(type, doc)) {
        why = {"schema_invalid", *err};
        return std::nullopt;
    }
    std::vector<event_leg> legs;
    if (type == tx_events_type) {
        // Each element is an event of its own, with its own id and payload.
        for (const auto& ev : doc["events"].GetArray()) {
            event_leg base;
            base.event_id = ev["event_id"].GetString();
            base.payload = json::to_string(ev);
            if (!tx_legs(ev, std::move(base), legs, why)) return std::nullopt;
        }
        return legs;
    }
    event_leg base;
    base.event_id = d.props.message_id.empty() ? opt_str(doc, "event_id").value_or("") : d.props.message_id;
    if (base.event_id.empty() || base.event_id.size() > 200) {
        why = {"missing_event_id", "the message has no message_id (nor a body event_id) of 1 to 200 characters"};
        return std::nullopt;
    }
    base.payload = d.body;
    if (type == tx_event_type) {
        if (!tx_legs(doc, std::move(base), legs, why)) return std::nullopt;
        return legs;
    }
    if (!common_fields(doc, base, why)) return std::nullopt;
    base.message_type = type;
    // Another event type with a schema (plaid.* later): one leg for its user.
    auto user = opt_int(doc, "user_id");
    if (!user) user = opt_int(doc, "owner_id");
    if (!user) {
        why = {"no_recipient", "the event has neither user_id nor owner_id, so there is no user to notify"};
        return std::nullopt;
    }
    base.user_id = *user;
    // The event's name: a body field when it has one (plaid.event.v1's "event"), else the
    // routing key (not when an operator moved it back through the default exchange).
    auto et = opt_str(doc, "event_type", 100);
    if (!et) et = opt_str(doc, "event", 100);
    if (et && et->find('.') == std::string::npos) et.reset();
    if (!et && d.routing_key.find('.') != std::string::npos && d.routing_key != "notifier.events") et = d.routing_key.substr(0, 100);
    base.event_type = et.value_or(type);
    base.balance_after = opt_int(doc, "balance_after");
    legs.push_back(base);
    return legs;
}

record_result record(db::pool& pool, std::span<const event_leg> input) {
    // The same (event, leg) twice in one batch is recorded once.
    std::vector<const event_leg*> legs;
    {
        std::set<std::pair<std::string, int>> seen;
        for (const auto& l : input) {
            if (seen.emplace(l.event_id, l.leg).second) legs.push_back(&l);
        }
    }
    record_result out;
    if (legs.empty()) return out;
    std::vector<std::string> all_ids;
    std::vector<std::int64_t> all_legs;
    for (const auto* l : legs) {
        all_ids.push_back(l->event_id);
        all_legs.push_back(l->leg);
    }
    const auto id_array = db::array_literal(all_ids);
    const auto leg_array = db::array_literal(all_legs);

    db::with_transaction(pool, [&](pqxx::work& w) {
        out = {};
        std::set<std::pair<std::string, int>> recorded;
        for (const auto& r : w.exec_params("SELECT n.event_id, n.leg FROM notify.notifications n "
                                           "JOIN unnest($1::text[], $2::smallint[]) AS k(e, l) ON n.event_id = k.e AND n.leg = k.l",
                                           id_array, leg_array)) {
            recorded.emplace(r[0].as<std::string>(), r[1].as<int>());
        }
        // Take a block of sequence numbers per user from its feed head, locking the heads in
        // user order (no deadlocks between replicas). The lock is held to the commit, so each
        // user's sequence numbers are commit-ordered: safe as the SSE resume cursor. (A
        // replica that records the same event at the same moment loses the insert below to
        // ON CONFLICT and leaves a gap in the numbers, which resuming does not mind.)
        std::map<std::int64_t, std::int64_t> wanted;
        for (const auto* l : legs) {
            if (!recorded.count({l->event_id, l->leg})) ++wanted[l->user_id];
        }
        std::map<std::int64_t, std::int64_t> head;  // the last number before this batch's block
        if (!wanted.empty()) {
            std::vector<std::int64_t> wu, wn;
            for (const auto& [u, n] : wanted) {
                wu.push_back(u);
                wn.push_back(n);
            }
            for (const auto& r : w.exec_params(
                     "INSERT INTO notify.feed_heads AS h (user_id, last_seq)"
                     " SELECT u, n FROM unnest($1::bigint[], $2::bigint[]) AS v(u, n) ORDER BY u"
                     " ON CONFLICT (user_id) DO UPDATE SET last_seq = h.last_seq + EXCLUDED.last_seq"
                     " RETURNING user_id, last_seq",
                     db::array_literal(wu), db::array_literal(wn))) {
                auto u = r[0].as<std::int64_t>();
                head[u] = r[1].as<std::int64_t>() - wanted[u];
            }
        }
        std::vector<std::string> ev, etype, mtype, occurred, payload;
        std::vector<std::int64_t> leg, user, seq;
        std::vector<std::optional<std::int64_t>> wallet, counter, amount, balance;
        std::vector<std::optional<std::string>> txid, txtype, dir, currency, status, reason;
        for (const auto* l : legs) {
            if (recorded.count({l->event_id, l->leg})) continue;
            ev.push_back(l->event_id);
            leg.push_back(l->leg);
            user.push_back(l->user_id);
            seq.push_back(++head[l->user_id]);
            etype.push_back(l->event_type);
            mtype.push_back(l->message_type);
            wallet.push_back(l->wallet_id);
            counter.push_back(l->counterparty_wallet_id);
            txid.push_back(l->transaction_id);
            txtype.push_back(l->transaction_type);
            dir.push_back(l->direction);
            amount.push_back(l->amount);
            currency.push_back(l->currency);
            balance.push_back(l->balance_after);
            status.push_back(l->status);
            reason.push_back(l->reason);
            occurred.push_back(l->occurred_at);
            payload.push_back(l->payload);
        }
        if (!ev.empty()) {
            auto r = w.exec_params(
                "WITH ins AS ("
                " INSERT INTO notify.notifications (event_id, leg, user_id, user_seq, event_type, message_type, wallet_id,"
                "  counterparty_wallet_id, transaction_id, transaction_type, direction, amount, currency, balance_after,"
                "  status, reason, occurred_at, payload)"
                " SELECT e, l, u, s, et, mt, wa, cw, tx, tt, di, am, cu, ba, st, re, oc, pl::jsonb"
                " FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],"
                "  $8::bigint[], $9::uuid[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::bigint[],"
                "  $15::text[], $16::text[], $17::timestamptz[], $18::text[])"
                "  AS v(e, l, u, s, et, mt, wa, cw, tx, tt, di, am, cu, ba, st, re, oc, pl)"
                " ON CONFLICT (event_id, leg) DO NOTHING"
                " RETURNING " + feed_columns() + "),"
                " d AS ("
                " INSERT INTO notify.deliveries (notification_id, subscription_id, user_id, event_id)"
                " SELECT ins.id, s.id, ins.user_id, ins.event_id FROM ins"
                " JOIN notify.webhook_subscriptions s ON s.user_id = ins.user_id AND s.active"
                "  AND notify.type_matches(s.event_types, ins.event_type)"
                " RETURNING 1)"
                " SELECT ins.*, (SELECT count(*) FROM d) FROM ins",
                db::array_literal(ev), db::array_literal(leg), db::array_literal(user), db::array_literal(seq),
                db::array_literal(etype), db::array_literal(mtype), db::array_literal(wallet), db::array_literal(counter),
                db::array_literal(txid), db::array_literal(txtype), db::array_literal(dir), db::array_literal(amount),
                db::array_literal(currency), db::array_literal(balance), db::array_literal(status), db::array_literal(reason),
                db::array_literal(occurred), db::array_literal(payload));
            out.new_entries = r.size();
            for (const auto& row : r) out.entries.push_back(feed_entry_from_row(row));
            if (!r.empty()) out.new_deliveries = r[0][17].as<std::size_t>();
        }
        if (recorded.empty()) return;
        std::vector<std::string> old_ids;
        std::vector<std::int64_t> old_legs;
        for (const auto& [e, l] : recorded) {
            old_ids.push_back(e);
            old_legs.push_back(l);
        }
        for (const auto& r : w.exec_params("SELECT " + feed_columns("n.") +
                                               " FROM notify.notifications n"
                                               " JOIN unnest($1::text[], $2::smallint[]) AS k(e, l) ON n.event_id = k.e AND n.leg = k.l"
                                               " ORDER BY n.user_id, n.user_seq",
                                           db::array_literal(old_ids), db::array_literal(old_legs))) {
            out.entries.push_back(feed_entry_from_row(r));
        }
    });
    return out;
}

std::vector<amqp::outgoing> created_messages(const std::vector<feed_entry>& entries, const std::string& correlation_id) {
    constexpr std::size_t per_message = 500;
    std::vector<amqp::outgoing> out;
    for (std::size_t k = 0; k < entries.size(); k += per_message) {
        json::writer w;
        w.start_object();
        w.key("entries").start_array();
        for (auto i = k; i < std::min(entries.size(), k + per_message); ++i) {
            auto entry = entries[i].to_json();
            w.w().RawValue(entry.data(), entry.size(), rapidjson::kObjectType);
        }
        w.end_array();
        w.end_object();
        amqp::outgoing o;
        o.exchange = amqp::events_exchange;
        o.routing_key = "notify.created";
        o.body = w.str();
        o.props.message_id = ids::uuid_v4();
        o.props.correlation_id = correlation_id;
        o.props.type = created_type;
        o.props.app_id = "notifier";
        o.props.timestamp = ids::unix_seconds();
        out.push_back(std::move(o));
    }
    return out;
}

std::size_t reschedule_deliveries(db::pool& pool, const std::vector<std::string>& delivery_ids) {
    if (delivery_ids.empty()) return 0;
    std::size_t n = 0;
    db::with_transaction(pool, [&](pqxx::work& w) {
        auto r = w.exec_params(
            "UPDATE notify.deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),"
            " last_error = 'rescheduled from the error queue'"
            " FROM notify.webhook_subscriptions s"
            " WHERE d.id = ANY($1::uuid[]) AND d.status IN ('parked', 'failed') AND s.id = d.subscription_id AND s.active",
            db::array_literal(delivery_ids));
        n = r.affected_rows();
    });
    return n;
}

}  // namespace txp::notifier
