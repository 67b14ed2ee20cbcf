// Webhook subscriptions as the gateway manages them (POST/GET/DELETE /v1/webhooks), through
// the notify schema's SECURITY DEFINER functions with the gateway's own connection: the URL
// is checked against the outbound policy, a fresh secret is sealed before it reaches the
// database, and the clear secret is returned once, to be shown to the user once.
#pragma once

#include "webhook_crypto.hpp"
#include "webhook_url_policy.hpp"

#include <pqxx/pqxx>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace txp::notifier {

struct subscription {
    std::string id;
    std::int64_t user_id = 0;
    std::string url;
    std::vector<std::string> event_types;
    bool active = true;
    std::int64_t failure_count = 0;
    std::optional<std::string> last_failure_at;
    std::optional<std::string> last_failure_reason;
    std::string created_at;

    // Never includes the secret.
    std::string to_json() const;
};

struct create_outcome {
    bool ok = false;
    // When refused: a url_check reason (malformed_url, scheme_not_allowed, ...),
    // invalid_event_types or too_many_subscriptions; detail is one sentence for the user.
    std::string reason;
    std::string detail;
    subscription created;
    std::string secret;  // in clear, only here: show it once
};

// Event type filters: "*", "tx.completed", "tx.*" (lower-case dotted words); 1 to 32 of them.
bool valid_event_types(const std::vector<std::string>& types);

create_outcome create_subscription(pqxx::transaction_base& t, const secret_key& key, const webhook_url_policy& policy,
                                   std::int64_t user_id, const std::string& url, const std::vector<std::string>& event_types);

// False when the user has no such active subscription (someone else's is "not found" too).
bool delete_subscription(pqxx::transaction_base& t, std::int64_t user_id, const std::string& subscription_id);

// The user's subscriptions, newest first (deleted ones too when include_deleted).
std::vector<subscription> list_subscriptions(pqxx::transaction_base& t, std::int64_t user_id, bool include_deleted = false);

}  // namespace txp::notifier
