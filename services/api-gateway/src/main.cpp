// api-gateway: the HTTP API in front of the ledger.
//   api-gateway              serve (the default)
//   api-gateway migrate      apply the gateway schema's migrations and exit
//   api-gateway seed-demo    demo users demo1..demo5 (ids 1-5) and admin (id 6)
#include "gateway.hpp"

#include "credentials.hpp"
#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/common/shutdown.hpp"

#include <cstdio>
#include <string>

using namespace txp;

namespace {

std::unique_ptr<db::pool> small_pool() {
    db::pool_options o;
    o.url = config::require_url("TXP_DATABASE_URL", "postgresql,postgres");
    o.size = 1;
    o.application_name = "api-gateway";
    return std::make_unique<db::pool>(o);
}

}  // namespace

int main(int argc, char** argv) {
    std::string cmd = argc > 1 ? argv[1] : "run";
    try {
        log::init_from_env("api-gateway");
        if (cmd == "run") {
            auto opts = gateway::options::from_env();
            shutdown::install();
            gateway::service svc(opts);
            svc.start();
            shutdown::wait();
            log::info("api-gateway stopping");
            svc.stop();
            return 0;
        }
        if (cmd == "migrate") {
            auto pool = small_pool();
            std::printf("gateway migrations applied: %d\n", gateway::migrate(*pool));
            return 0;
        }
        if (cmd == "seed-demo") {
            gateway::init_crypto();
            auto pool = small_pool();
            gateway::migrate(*pool);
            gateway::seed_demo(*pool, config::get_string("TXP_DEMO_PASSWORD", "txp-demo-password"),
                               config::get_string("TXP_DEMO_ADMIN_PASSWORD", "txp-admin-password"));
            std::printf("demo users demo1..demo5 (ids 1-5) and admin (id 6) ready\n");
            return 0;
        }
        std::fprintf(stderr, "usage: api-gateway [run|migrate|seed-demo]\n");
        return 2;
    } catch (const config::config_error& e) {
        std::fprintf(stderr, "api-gateway: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        log::error("api-gateway failed", {{"error", e.what()}});
        return 1;
    }
}
