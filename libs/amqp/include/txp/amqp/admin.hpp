// Small synchronous helpers over their own short-lived connection, for tools and tests.
// Errors throw std::runtime_error; a failed call leaves the object usable.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "txp/amqp/message.hpp"
#include "txp/amqp/topology.hpp"

namespace txp::amqp {

class admin {
public:
    explicit admin(connection_options opts);
    ~admin();
    admin(const admin&) = delete;
    admin& operator=(const admin&) = delete;

    void declare(const topology& t);
    std::uint32_t queue_depth(const std::string& queue);  // ready messages (passive declare)
    void purge(const std::string& queue);
    void delete_queue(const std::string& queue);

    // basic.get without auto-ack: settle it with ack() or reject().
    std::optional<delivery> get(const std::string& queue);
    void ack(std::uint64_t delivery_tag);
    void reject(std::uint64_t delivery_tag, bool requeue);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// For /readyz: true when a fresh connection can log in and see `queue` (never throws).
bool broker_reachable(const connection_options& opts, const std::string& queue);

}  // namespace txp::amqp
