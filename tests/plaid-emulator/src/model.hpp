// The emulator's in-memory model: items, accounts, transactions and the change log that
// /transactions/sync cursors point into. Internal to the emulator.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace txp::plaid_emulator {

struct account_state {
    std::string account_id;
    std::string name, official_name, mask, type, subtype;
    std::optional<std::int64_t> available, current, limit;  // cents
};

struct transaction_state {
    std::string transaction_id;
    std::string account_id;
    std::int64_t cents = 0;  // Plaid's sign: positive = money out
    std::string date;        // posted date (or transaction date while pending)
    std::optional<std::string> authorized_date;
    std::string name;
    std::optional<std::string> merchant_name;
    std::string payment_channel;  // online, in store, other
    std::string transaction_type; // digital, place, special
    std::string pfc_primary, pfc_detailed;
    bool pending = false;
    std::optional<std::string> pending_transaction_id;
    std::optional<std::string> city, region;  // in-store purchases carry a location
};

enum class change_kind { added, modified, removed };

struct change {
    std::int64_t seq;
    change_kind kind;
    std::string transaction_id;
};

struct item_error {
    unsigned status;
    std::string type, code, message;
    std::optional<std::string> display_message;
};

struct item_state {
    std::string item_id;
    std::string access_token;
    std::string institution_id, institution_name;
    std::string webhook;
    std::string username;
    bool dynamic = false;
    std::string created_at;
    std::int64_t ordinal = 0;
    std::mt19937_64 rng;     // data (amounts, names, dates): follows the seed
    std::mt19937_64 id_rng;  // ids: random unless deterministic_ids
    std::vector<account_state> accounts;
    std::map<std::string, transaction_state> transactions;  // current versions
    std::map<std::string, std::string> removed_accounts;     // removed transaction id -> account id
    std::vector<change> log;
    std::int64_t head = 0;
    bool sync_called = false;
    std::int64_t ready_at_ms = 0;  // steady-clock ms; before it, /transactions/sync says NOT_READY
    std::optional<item_error> error;
    std::optional<std::string> last_successful_update;
    int refreshes = 0;
    std::optional<std::string> last_webhook_code, last_webhook_at;
    bool ready_webhook_scheduled = false;

    void record(change_kind k, const std::string& id) { log.push_back({++head, k, id}); }
};

// Deterministic data generation.
std::string random_id(std::mt19937_64& rng, std::size_t len = 37);  // Plaid-like base62 ids
std::string cents_text(std::int64_t cents);                         // 1250 -> "12.5", -5 -> "-0.05"
std::string date_days_ago(int days);                                 // YYYY-MM-DD, UTC
std::vector<account_state> sandbox_accounts(std::mt19937_64& id_rng);
// A history of n transactions over the last two years (oldest first), a few recent ones pending.
void generate_history(item_state& item, std::mt19937_64& data_rng, std::mt19937_64& id_rng, int n);
// One new transaction on a checking or credit account, today (pending or posted).
transaction_state new_transaction(item_state& item, std::mt19937_64& rng, std::mt19937_64& id_rng, bool pending);

}  // namespace txp::plaid_emulator
