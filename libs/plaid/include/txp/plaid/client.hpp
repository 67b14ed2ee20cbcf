// A Plaid API client: every call is a POST with a JSON body, credentials in the
// PLAID-CLIENT-ID / PLAID-SECRET headers, Plaid-Version 2020-09-14, a timeout, and https
// with certificate and host name verification (plain http only for a local emulator).
// Failures are one typed error, classified once here for every caller. Amounts keep the
// exact decimal text Plaid sent; nothing passes through a double. Access tokens and the
// secret never appear in an error message or a log line.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace txp::plaid {

inline constexpr const char* api_version = "2020-09-14";

struct client_options {
    std::string base_url = "https://sandbox.plaid.com";
    std::string client_id;
    std::string secret;
    std::chrono::milliseconds timeout{30000};
    // Also send client_id/secret in the body (older integrations); headers are always sent.
    bool credentials_in_body = false;

    // TXP_PLAID_BASE_URL (or TXP_PLAID_ENV = sandbox | production), TXP_PLAID_CLIENT_ID,
    // TXP_PLAID_SECRET, TXP_PLAID_TIMEOUT. http:// is refused unless the host is loopback.
    static client_options from_env();
};

// How a caller must react to a failure (PLAID.md's table).
enum class error_class {
    item_login_required,         // mark the item, announce, stop syncing until repaired
    invalid_access_token,        // permanent for the item
    product_not_ready,           // retry later
    mutation_during_pagination,  // restart the sync loop from the saved cursor
    invalid_cursor,              // reset the cursor and resync
    rate_limited,                // back off (retry tiers)
    server_error,                // Plaid 5xx, planned maintenance, institution down: retry
    transport,                   // connect, TLS, timeout: retry
    invalid_response,            // a 200 that does not parse: retry
    permanent,                   // anything else: a caller or data problem
};
const char* to_string(error_class c);

class api_error : public std::runtime_error {
public:
    api_error(std::string endpoint, unsigned http_status, std::string error_type, std::string error_code,
              std::string error_message, std::optional<std::string> display_message, std::string request_id);

    const std::string& endpoint() const { return endpoint_; }
    unsigned http_status() const { return http_status_; }  // 0 for transport failures
    const std::string& error_type() const { return error_type_; }
    const std::string& error_code() const { return error_code_; }
    const std::string& error_message() const { return error_message_; }
    const std::optional<std::string>& display_message() const { return display_message_; }
    const std::string& request_id() const { return request_id_; }
    error_class classification() const { return class_; }
    bool retryable() const;

private:
    std::string endpoint_;
    unsigned http_status_;
    std::string error_type_, error_code_, error_message_;
    std::optional<std::string> display_message_;
    std::string request_id_;
    error_class class_;
};

error_class classify(unsigned http_status, std::string_view error_type, std::string_view error_code,
                     std::string_view error_message);

struct balances {
    // Decimal text exactly as Plaid sent it; nullopt for JSON null.
    std::optional<std::string> available, current, limit;
    std::optional<std::string> iso_currency_code, unofficial_currency_code;
};

struct account {
    std::string account_id;
    std::string name;
    std::optional<std::string> official_name, mask;
    std::string type;
    std::optional<std::string> subtype;
    plaid::balances balances;
};

struct transaction {
    std::string transaction_id;
    std::string account_id;
    std::string amount;  // decimal text, positive = money out of the account
    std::optional<std::string> iso_currency_code, unofficial_currency_code;
    std::string date;
    std::optional<std::string> authorized_date;
    std::string name;
    std::optional<std::string> merchant_name;
    bool pending = false;
    std::optional<std::string> pending_transaction_id;
    std::string payment_channel;
    std::optional<std::string> category_primary, category_detailed;
};

struct removed_transaction {
    std::string transaction_id;
    std::string account_id;
};

struct sync_page {
    std::vector<transaction> added, modified;
    std::vector<removed_transaction> removed;
    std::vector<account> accounts;
    std::string next_cursor;
    bool has_more = false;
    std::string update_status;  // NOT_READY, INITIAL_UPDATE_COMPLETE, HISTORICAL_UPDATE_COMPLETE, ...
    std::string request_id;
};

struct item_info {
    std::string item_id;
    std::optional<std::string> institution_id, institution_name, webhook;
    std::optional<std::string> error_code;  // item.error.error_code when the item is in error
    std::string update_type;
};

struct accounts_result {
    std::vector<account> accounts;
    item_info item;
};

struct link_token_request {
    std::string client_name = "txp";
    std::string language = "en";
    std::vector<std::string> country_codes{"US"};
    std::string client_user_id;
    std::vector<std::string> products{"transactions"};
    std::optional<std::string> webhook;
    int days_requested = 730;
    std::optional<std::string> access_token;  // update mode (re-authentication)
};

struct link_token {
    std::string link_token;
    std::string expiration;
};

struct exchange_result {
    std::string access_token;
    std::string item_id;
};

struct sandbox_link_request {
    std::string institution_id = "ins_109508";
    std::vector<std::string> initial_products{"transactions"};
    std::optional<std::string> webhook;
    std::optional<std::string> override_username, override_password;
};

struct jwk {
    std::string alg, kid, kty, crv, x, y, use;
    std::int64_t created_at = 0;
    std::optional<std::int64_t> expired_at;
};

class client {
public:
    explicit client(client_options opts);

    link_token link_token_create(const link_token_request& r);
    std::string sandbox_public_token_create(const sandbox_link_request& r);
    exchange_result item_public_token_exchange(const std::string& public_token);
    item_info item_get(const std::string& access_token);
    void item_remove(const std::string& access_token);
    accounts_result accounts_get(const std::string& access_token);
    accounts_result accounts_balance_get(const std::string& access_token, const std::vector<std::string>& account_ids = {});
    // count: 1..500; an empty cursor asks for the whole history.
    sync_page transactions_sync(const std::string& access_token, const std::string& cursor, int count = 500);
    void transactions_refresh(const std::string& access_token);
    bool sandbox_item_fire_webhook(const std::string& access_token, const std::string& webhook_code,
                                   const std::string& webhook_type = "");
    bool sandbox_item_reset_login(const std::string& access_token);
    // nullopt when Plaid does not know the key id.
    std::optional<jwk> webhook_verification_key_get(const std::string& key_id);

    // Any endpoint: `body_json` is an object without credentials; returns the response body
    // of a 200. Throws api_error otherwise.
    std::string post(std::string_view endpoint, std::string_view body_json);

    const client_options& options() const { return opts_; }

private:
    client_options opts_;
};

// Parsers of Plaid's response bodies (exposed for tests and the emulator's own checks).
// The text is parsed with numbers kept as their exact text. Throw api_error
// (invalid_response) when a required field is missing or of the wrong type.
sync_page parse_sync_page(std::string_view body);
accounts_result parse_accounts(std::string_view body);

}  // namespace txp::plaid
