// Shared helpers of the txp::amqp integration tests: connection options for this run's
// vhost, throwaway queues, and finding this test's connections in the management API.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "txp/amqp/amqp.hpp"
#include "txp/testing/env.hpp"

namespace amqp_test {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

inline txp::amqp::connection_options options(const std::string& name) {
    txp::amqp::connection_options o;
    o.set_endpoints(txp::testing::amqp_url());
    o.connection_name = name;
    o.heartbeat = std::chrono::seconds(10);
    o.backoff_initial = 50ms;
    o.backoff_max = 1000ms;
    return o;
}

// A durable work queue of its own, bound to txp.commands with a unique routing key (plus
// its retry and error queues when `with_retry`), deleted again at the end of the test.
struct scratch_queue {
    std::string name;
    std::string routing_key;
    txp::amqp::topology topo;
    std::vector<std::string> all_queues;

    explicit scratch_queue(const std::string& what, bool with_retry = false) {
        std::string suffix = txp::testing::unique_suffix();
        name = "amqp_test." + what + "." + suffix;
        routing_key = "amqp_test." + what + "." + suffix;
        topo = txp::amqp::txp_topology();
        topo.queues.clear();
        topo.bindings.clear();
        if (with_retry) {
            txp::amqp::add_work_queue(topo, name, txp::amqp::commands_exchange, {routing_key});
        } else {
            topo.queues.push_back(txp::amqp::queue_decl{.name = name});
            topo.bindings.push_back({txp::amqp::commands_exchange, name, routing_key});
        }
        for (const auto& q : topo.queues) all_queues.push_back(q.name);
        txp::amqp::admin(options("amqp_test.setup")).declare(topo);
    }
    ~scratch_queue() {
        try {
            txp::amqp::admin a(options("amqp_test.cleanup"));
            for (const auto& q : all_queues) a.delete_queue(q);
        } catch (const std::exception&) {
            // Leaves a queue behind in the test vhost; never hide the test's own failure.
        }
    }

    txp::amqp::outgoing message(const std::string& id, const std::string& body) const {
        txp::amqp::outgoing m;
        m.exchange = txp::amqp::commands_exchange;
        m.routing_key = routing_key;
        m.body = body;
        m.props.message_id = id;
        return m;
    }
};

// Polls `pred` until it holds or `limit` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit, std::chrono::milliseconds step = 50ms) {
    const auto deadline = clock::now() + limit;
    while (true) {
        if (pred()) return true;
        if (clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

std::string url_encode(const std::string& s);

// Names (as the management API knows them) of this vhost's connections whose
// connection_name starts with `prefix`.
std::vector<std::string> connections_named(const std::string& prefix);

// Closes them through the management API; returns how many were closed.
int close_connections_named(const std::string& prefix);

}  // namespace amqp_test
