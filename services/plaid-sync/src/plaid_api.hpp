// What the gateway's /v1/plaid/* routes call: each function does the whole job (Plaid call,
// DB write through plaid's SECURITY DEFINER functions, outbox rows) so that a route only maps
// HTTP to it. Errors are request_error with an HTTP status and a stable problem type.
//
// The gateway passes its own pool (role txp_gateway: SELECT on plaid's tables, EXECUTE on
// its functions), its Plaid client, the token cipher (TXP_PLAID_TOKEN_KEY) and an enqueue
// function writing into its own outbox in the same DB transaction.
#pragma once

#include "plaid_sync.hpp"

#include "txp/plaid/webhook.hpp"

#include <optional>
#include <string>
#include <vector>

namespace txp::plaid_sync {

class request_error : public std::runtime_error {
public:
    request_error(unsigned status, std::string type, const std::string& detail)
        : std::runtime_error(detail), status_(status), type_(std::move(type)) {}
    unsigned status() const { return status_; }
    const std::string& type() const { return type_; }  // not_found, invalid_request, conflict, bank_unavailable, ...

private:
    unsigned status_;
    std::string type_;
};

struct api_context {
    db::pool& pool;
    plaid::client& client;
    const plaid::token_cipher& cipher;
    enqueue_fn enqueue;
    std::optional<std::string> webhook_url;  // given to Plaid for new items (the gateway's /v1/plaid/webhook)
};

struct account_view {
    std::string account_id, item_id, name;
    std::optional<std::string> official_name, mask, subtype;
    std::string type;
    std::optional<std::int64_t> available, current, limit;  // minor units
    std::optional<std::string> currency;
    std::optional<std::int64_t> wallet_id;
    std::optional<std::string> balances_updated_at;
    std::string to_json() const;
};

struct item_view {
    std::string item_id;
    std::optional<std::string> institution_id, institution_name;
    std::string status;
    std::optional<std::string> error_code;
    std::optional<std::string> last_sync_at, last_sync_status;
    std::string created_at;
    std::vector<account_view> accounts;
    std::string to_json() const;
};

struct transaction_view {
    std::string transaction_id, account_id, item_id;
    std::optional<std::int64_t> amount;  // minor units, Plaid's sign (positive = money out)
    std::string amount_text;
    std::optional<std::string> currency;
    std::string date;
    std::optional<std::string> authorized_date;
    std::string name;
    std::optional<std::string> merchant_name, category_primary, category_detailed, pending_transaction_id;
    bool pending = false;
    std::optional<std::string> ledger_transaction_id;  // the active mirror, if mirrored
    std::string to_json() const;
};

struct transaction_filter {
    std::optional<std::string> account_id, item_id;
    std::optional<std::string> start_date, end_date;       // YYYY-MM-DD, inclusive
    std::optional<std::int64_t> min_amount, max_amount;     // minor units, Plaid's sign
    std::optional<std::string> category;                    // primary or detailed
    std::optional<bool> pending;
    int limit = 100;                                        // 1..500
    std::optional<std::string> after;                       // cursor: the last transaction_id of the previous page
};

struct transactions_page {
    std::vector<transaction_view> transactions;
    std::optional<std::string> next;  // pass as `after` for the next page
    std::string to_json() const;
};

// POST /v1/plaid/link/token
plaid::link_token create_link_token(api_context& ctx, std::int64_t owner_id);
// POST /v1/plaid/link/exchange: the item and its accounts saved (token sealed), plaid.item_linked
// announced and the first sync queued, in one DB transaction.
item_view exchange_public_token(api_context& ctx, std::int64_t owner_id, const std::string& public_token,
                                const std::string& correlation_id);
// POST /v1/plaid/sandbox/link: a sandbox public token for (institution, user), then exchanged.
item_view sandbox_link(api_context& ctx, std::int64_t owner_id, const plaid::sandbox_link_request& req,
                       const std::string& correlation_id);
// GET /v1/plaid/items, GET /v1/plaid/accounts
std::vector<item_view> list_items(db::pool& pool, std::int64_t owner_id);
std::vector<account_view> list_accounts(db::pool& pool, std::int64_t owner_id, const std::optional<std::string>& item_id = {});
// GET /v1/plaid/transactions
transactions_page list_transactions(db::pool& pool, std::int64_t owner_id, const transaction_filter& f);
// POST /v1/plaid/items/{id}/sync
void request_sync(api_context& ctx, std::int64_t owner_id, const std::string& item_id, const std::string& correlation_id);
// POST /v1/plaid/accounts/{id}/refresh-balance: /accounts/balance/get, saved, returned.
account_view refresh_balance(api_context& ctx, std::int64_t owner_id, const std::string& account_id);
// DELETE /v1/plaid/items/{id}: removed at Plaid, then locally (mirrors stay in the ledger).
void remove_item(api_context& ctx, std::int64_t owner_id, const std::string& item_id, const std::string& correlation_id);
// PUT /v1/plaid/accounts/{id}/wallet: nullopt unlinks.
account_view link_account_to_wallet(api_context& ctx, std::int64_t owner_id, const std::string& account_id,
                                    std::optional<std::int64_t> wallet_id);

// POST /v1/plaid/webhook, after verification (webhook_verifier::verify == ok; otherwise
// answer 401 and call nothing): queues a sync or updates the item's state and announces it.
// Unknown items and codes are acknowledged and ignored (Plaid must not retry them).
struct webhook_outcome {
    std::string action;  // sync_queued, status_changed, ignored
    std::optional<std::string> item_id;
};
webhook_outcome handle_webhook(api_context& ctx, std::string_view raw_body, const std::string& correlation_id);

}  // namespace txp::plaid_sync
