// plaid-emulator: a local stand-in for Plaid's API (see ../README.md).
//   plaid-emulator [--port N] [--seed N] [--transactions N] [--webhook-url URL]
//                  [--client-id ID --secret S] [--deterministic-ids]
// Environment: PLAID_EMULATOR_PORT (default 8090), PLAID_EMULATOR_SEED,
// PLAID_EMULATOR_TRANSACTIONS, PLAID_EMULATOR_WEBHOOK_URL. --port 0 picks a free port; the
// line "plaid-emulator listening on 127.0.0.1:<port>" on stdout says which.
#include "plaid_emulator/emulator.hpp"

#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/common/shutdown.hpp"

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    using namespace txp;
    try {
        log::init_from_env("plaid-emulator");
        plaid_emulator::options o;
        o.port = static_cast<std::uint16_t>(config::get_int("PLAID_EMULATOR_PORT", 8090, 0, 65535));
        o.seed = static_cast<std::uint64_t>(config::get_int("PLAID_EMULATOR_SEED", 42, 0, INT64_MAX));
        o.transactions_per_item = static_cast<int>(config::get_int("PLAID_EMULATOR_TRANSACTIONS", 200, 0, 100000));
        o.webhook_url = config::get_string("PLAID_EMULATOR_WEBHOOK_URL", "");
        o.address = config::get_string("PLAID_EMULATOR_ADDRESS", "127.0.0.1");
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw config::config_error(a + " needs a value");
                return argv[++i];
            };
            if (a == "--port") o.port = static_cast<std::uint16_t>(std::stoi(value()));
            else if (a == "--seed") o.seed = std::stoull(value());
            else if (a == "--transactions") o.transactions_per_item = std::stoi(value());
            else if (a == "--webhook-url") o.webhook_url = value();
            else if (a == "--client-id") o.client_id = value();
            else if (a == "--secret") o.secret = value();
            else if (a == "--address") o.address = value();
            else if (a == "--deterministic-ids") o.deterministic_ids = true;
            else throw config::config_error("unknown argument " + a);
        }
        shutdown::install();
        plaid_emulator::emulator e(o);
        e.start();
        std::printf("plaid-emulator listening on %s:%u\n", o.address.c_str(), static_cast<unsigned>(e.port()));
        std::fflush(stdout);
        shutdown::wait();
        e.stop();
        return 0;
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "plaid-emulator: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "plaid-emulator: %s\n", e.what());
        return 1;
    }
}
