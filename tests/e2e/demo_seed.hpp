// The demo wallets 101-105 and their users demo1..demo5, as `seed-demo` makes them, for the
// end-to-end tests that drive gen_transactions (whose defaults are those users).
#pragma once

#include "ledger_fixture.hpp"
#include "process.hpp"

#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

namespace txp::testing {

inline void seed_demo_users(ledger_fixture& f) {
    f.purge_queues();
    ledger::seed_demo(f.ledger_pool(), 100'000);
    child_process seed(TXP_API_GATEWAY_BIN, {"seed-demo"},
                       {{"TXP_DATABASE_URL", database_url("gateway")}, {"TXP_AMQP_URL", amqp_url()}},
                       std::string(TXP_TEST_LOG_DIR) + "/gateway-seed.log");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (seed.running() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(seed.terminate() == 0);
}

}  // namespace txp::testing
