// gen_transactions N [options]: posts N random transactions through the gateway.
#include "generator.hpp"

#include "txp/common/log.hpp"

#include <csignal>
#include <cstdio>

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    auto opts = txp::gen::parse_args(argc, argv);
    txp::log::init("gen_transactions", "cli", txp::log::level::warn, txp::log::format::text);
    try {
        auto s = txp::gen::run(opts);
        if (opts.json) std::printf("%s\n", s.to_json().c_str());
        else std::printf("%s", s.to_text().c_str());
        return (opts.wait && s.still_queued > 0) ? 1 : 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gen_transactions: %s\n", e.what());
        return 2;
    }
}
