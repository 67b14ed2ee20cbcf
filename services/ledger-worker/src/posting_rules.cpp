// See posting_rules.hpp.
#include "posting_rules.hpp"

#include "txp/common/money.hpp"

#include <stdexcept>

namespace txp::ledger {

namespace {

constexpr const char* bank = "external:bank";
constexpr const char* merchant = "external:merchant";

// Money leaving `from`: refused while it is overdrawn, or when the balance would go below its limit.
std::optional<std::string> outgoing_refusal(const wallet_balance& from, std::int64_t amount) {
    if (from.overdrawn) return "wallet_overdrawn";
    std::int64_t after = 0;
    if (__builtin_sub_overflow(from.balance, amount, &after) || after < -from.limit) return "insufficient_funds";
    return std::nullopt;
}

rule_result decide(const rule_input& t, wallet_balance& w, wallet_balance* to,
                   const std::optional<reversed_transaction>& reversed) {
    const std::int64_t a = t.amount;
    if (t.type == "deposit") {
        if (!w.active) return {"wallet_closed", {}};
        if (w.currency != t.currency) return {"currency_mismatch", {}};
        auto after = money::checked_add(w.balance, a);
        if (!after) return {"balance_overflow", {}};
        w.balance = *after;
        return {std::nullopt, {{w.id, std::nullopt, a}, {std::nullopt, bank, -a}}};
    }
    if (t.type == "withdrawal" || t.type == "payment") {
        if (!w.active) return {"wallet_closed", {}};
        if (w.currency != t.currency) return {"currency_mismatch", {}};
        if (auto why = outgoing_refusal(w, a)) return {why, {}};
        w.balance -= a;
        return {std::nullopt, {{w.id, std::nullopt, -a}, {std::nullopt, t.type == "payment" ? merchant : bank, a}}};
    }
    if (t.type == "transfer") {
        if (!to) throw std::invalid_argument("a transfer needs its destination wallet");
        if (!w.active || !to->active) return {"wallet_closed", {}};
        if (w.currency != t.currency || to->currency != t.currency) return {"currency_mismatch", {}};
        if (auto why = outgoing_refusal(w, a)) return {why, {}};
        auto credited = money::checked_add(to->balance, a);
        if (!credited) return {"balance_overflow", {}};
        w.balance -= a;
        to->balance = *credited;
        return {std::nullopt, {{w.id, std::nullopt, -a}, {to->id, std::nullopt, a}}};
    }
    if (t.type == "reversal") {
        // A reversal records a fact (the bank took the money back): it applies even below the
        // limit, and the wallet is then marked overdrawn.
        if (!reversed || reversed->status != "completed" || reversed->type == "reversal") return {"not_reversible", {}};
        if (reversed->type == "transfer") {
            if (!to) return {"not_reversible", {}};
            auto back = money::checked_add(w.balance, a);
            auto out = money::checked_add(to->balance, -a);
            if (!back || !out) return {"balance_overflow", {}};
            w.balance = *back;
            to->balance = *out;
            return {std::nullopt, {{w.id, std::nullopt, a}, {to->id, std::nullopt, -a}}};
        }
        const std::int64_t delta = reversed->type == "deposit" ? -a : a;  // a deposit reversed: money leaves
        auto after = money::checked_add(w.balance, delta);
        if (!after) return {"balance_overflow", {}};
        w.balance = *after;
        return {std::nullopt,
                {{w.id, std::nullopt, delta}, {std::nullopt, reversed->type == "payment" ? merchant : bank, -delta}}};
    }
    throw std::invalid_argument("unknown transaction type " + t.type);
}

}  // namespace

rule_result apply_rules(const rule_input& t, wallet_balance& from, wallet_balance* to,
                        const std::optional<reversed_transaction>& reversed) {
    auto r = decide(t, from, to, reversed);
    for (auto* ws : {&from, to}) {
        if (ws) ws->overdrawn = ws->balance < -ws->limit;
    }
    return r;
}

}  // namespace txp::ledger
