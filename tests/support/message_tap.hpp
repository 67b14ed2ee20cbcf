// A tap on the broker: a queue of the test's own, bound to an exchange and routing key
// before the test acts, that receives a copy of every message published there. It proves
// what was really published (and how often), where counting rows in a service's outbox
// would not: the gateway deletes its outbox rows once the broker confirmed them.
#pragma once

#include "txp/amqp/message.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace txp::testing {

class message_tap {
public:
    message_tap(const std::string& exchange, const std::string& routing_key);
    ~message_tap();  // deletes the queue
    message_tap(const message_tap&) = delete;
    message_tap& operator=(const message_tap&) = delete;

    // Takes in what arrives until nothing more came for `quiet`.
    void settle(std::chrono::milliseconds quiet = std::chrono::milliseconds(500));

    // Of what was taken in so far: how many messages have a JSON body whose string field
    // `field` is `value` (and, when given, the AMQP app_id `app_id`).
    std::int64_t count(const std::string& field, const std::string& value, const std::string& app_id = "") const;

private:
    std::string queue_;
    std::vector<amqp::delivery> received_;
};

}  // namespace txp::testing
