// See message_tap.hpp.
#include "message_tap.hpp"

#include "txp/amqp/admin.hpp"
#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <thread>

namespace txp::testing {

namespace {

amqp::connection_options tap_options() {
    amqp::connection_options o;
    o.set_endpoints(amqp_url());
    o.connection_name = "test message tap";
    return o;
}

}  // namespace

message_tap::message_tap(const std::string& exchange, const std::string& routing_key)
    : queue_("test.tap." + unique_suffix()) {
    amqp::topology t;
    t.queues.push_back(amqp::queue_decl{.name = queue_, .durable = false});
    t.bindings.push_back({exchange, queue_, routing_key});
    amqp::admin(tap_options()).declare(t);
}

message_tap::~message_tap() {
    try {
        amqp::admin(tap_options()).delete_queue(queue_);
    } catch (const std::exception&) {
    }
}

void message_tap::settle(std::chrono::milliseconds quiet) {
    amqp::admin a(tap_options());
    auto last = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - last < quiet) {
        if (auto d = a.get(queue_)) {
            a.ack(d->delivery_tag);
            received_.push_back(std::move(*d));
            last = std::chrono::steady_clock::now();
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
}

std::int64_t message_tap::count(const std::string& field, const std::string& value, const std::string& app_id) const {
    std::int64_t n = 0;
    for (const auto& d : received_) {
        if (!app_id.empty() && d.props.app_id != app_id) continue;
        try {
            auto doc = json::parse(d.body);
            if (doc.IsObject() && doc.HasMember(field.c_str()) && doc[field.c_str()].IsString() &&
                value == doc[field.c_str()].GetString()) {
                ++n;
            }
        } catch (const std::exception&) {
        }
    }
    return n;
}

}  // namespace txp::testing
