// The ledger's posting rules as a pure function: what one transaction does to the wallets it
// touches (authorization and double-entry postings), with no database in sight, so that every
// rule is unit-tested (posting_rules.test.cpp). The processor loads and locks the wallets,
// calls apply_rules for each transaction in wallet order, and writes what it returns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace txp::ledger {

// A wallet as the rules see it. apply_rules updates balance and overdrawn in place.
struct wallet_balance {
    std::int64_t id = 0;
    std::string currency;
    bool active = true;
    std::int64_t balance = 0;
    std::int64_t limit = 0;  // overdraft: the balance may go down to -limit
    bool overdrawn = false;
};

// The transaction a reversal reverses (only its type and status decide).
struct reversed_transaction {
    std::string type;
    std::string status;
};

struct rule_input {
    std::string type;  // deposit, withdrawal, payment, transfer, reversal
    std::int64_t amount = 0;
    std::string currency;
};

// One double-entry leg: a wallet or a system account (external:bank, external:merchant).
// amount > 0 credits the account, < 0 debits it; the legs of a transaction sum to zero.
struct leg {
    std::optional<std::int64_t> wallet_id;
    std::optional<std::string> system_account;
    std::int64_t amount = 0;
};

struct rule_result {
    std::optional<std::string> rejected;  // the reason: a business outcome, nothing posted
    std::vector<leg> legs;                // empty when rejected
};

// Applies one transaction's rules: `from` is its wallet, `to` the destination of a transfer
// (or the other wallet of a reversed transfer), `reversed` the transaction a reversal reverses
// (nullopt: not found). On success the wallets' balances are updated and the legs returned;
// on rejection nothing changes. Either way each wallet's overdrawn flag is set afresh from
// its balance and limit.
// Rejections: wallet_closed, currency_mismatch, insufficient_funds, wallet_overdrawn,
// balance_overflow, not_reversible.
rule_result apply_rules(const rule_input& t, wallet_balance& from, wallet_balance* to,
                        const std::optional<reversed_transaction>& reversed);

}  // namespace txp::ledger
