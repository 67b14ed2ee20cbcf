// Settings and shared state of the notifier's routes in the gateway (notify_routes.cpp):
// POST/GET/DELETE /v1/webhooks, GET /v1/notifications and the GET /v1/events stream.
#pragma once

#include "event_streams.hpp"
#include "gateway.hpp"

#include "webhook_crypto.hpp"
#include "webhook_url_policy.hpp"

#include <optional>

namespace txp::gateway {

struct notify_config {
    // The notifier's TXP_WEBHOOK_SECRET_KEY (secrets are sealed with it); nullopt: webhook
    // routes answer 503 webhooks-not-configured.
    std::optional<notifier::secret_key> webhook_key;
    notifier::webhook_url_policy webhook_policy;  // TXP_WEBHOOK_ALLOW, as the notifier reads it
    event_streams::limits sse;
};

class outcome_waiters;

class notify_gateway {
public:
    // Registers the stream registry for notify.created with the waiters' events thread.
    notify_gateway(std::shared_ptr<const notify_config> config, outcome_waiters* waiters);
    ~notify_gateway();  // unregisters (waiting for a dispatch in progress), then closes the streams
    notify_gateway(const notify_gateway&) = delete;
    notify_gateway& operator=(const notify_gateway&) = delete;

    const notify_config& config() const { return *config_; }
    event_streams& streams() { return streams_; }

private:
    std::shared_ptr<const notify_config> config_;
    outcome_waiters* waiters_;
    event_streams streams_;
};

}  // namespace txp::gateway
