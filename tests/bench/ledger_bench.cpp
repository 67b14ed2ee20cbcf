// ledger_bench: preloads accepted transactions into ledger.transactions, then measures how
// fast ledger-worker replicas drain them (a program for scripts/bench, not a ctest test).
//   ledger_bench --messages 200000 --wallets 10000 --replicas 1 [--hot]
// Uses the TXP_TEST_* environment that scripts/bench sets up (like scripts/test).
#include "ledger_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/testing/env.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

using namespace txp;
using clock_type = std::chrono::steady_clock;

namespace {

long peak_rss_kb(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return -1;
}

}  // namespace

int main(int argc, char** argv) {
    long messages = 200000, wallets = 10000, replicas = 1, batch = 200, prefetch = 0;
    bool hot = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::atol(argv[++i]) : 0L; };
        if (a == "--messages") messages = next();
        else if (a == "--wallets") wallets = next();
        else if (a == "--replicas") replicas = next();
        else if (a == "--batch") batch = next();
        else if (a == "--prefetch") prefetch = next();
        else if (a == "--hot") hot = true;
        else {
            std::fprintf(stderr, "usage: ledger_bench [--messages N] [--wallets W] [--replicas R] [--batch B] [--prefetch P] [--hot]\n");
            return 2;
        }
    }
    if (hot) wallets = 5;
    log::init("ledger_bench", "bench", log::level::warn, log::format::text);
    testing::ledger_fixture f;
    f.purge_queues();
    const std::string scope = "bench-" + testing::unique_suffix();
    std::printf("ledger_bench: %ld messages over %ld wallets, %ld replica(s), batch %ld\n", messages, wallets, replicas, batch);

    // Wallets with an opening balance large enough that most spending succeeds.
    auto t0 = clock_type::now();
    std::int64_t first = 0;
    db::with_transaction(f.gateway_pool(), [&](pqxx::work& w) {
        auto r = w.exec_params("SELECT min(id) FROM (SELECT ledger.open_wallet(6000000000 + g, 'USD', 0) AS id "
                               "FROM generate_series(1, $1) g) x",
                               wallets);
        first = r[0][0].as<std::int64_t>();
    });
    {
        std::vector<ledger::batch_item> funding;
        ledger::processor p(f.ledger_pool(), "bench");
        for (long k = 0; k < wallets; ++k) {
            auto m = f.accept("deposit", first + k, std::nullopt, 10'000'000);
            funding.push_back({"fund:" + m.transaction_id, m});
            if (funding.size() == 500 || k + 1 == wallets) {
                p.apply(funding);
                funding.clear();
            }
        }
    }
    // Accept the load set-based through the acceptance function, in chunks.
    std::vector<amqp::outgoing> msgs;
    msgs.reserve(static_cast<std::size_t>(messages));
    const long chunk = 20000;
    for (long done = 0; done < messages; done += chunk) {
        long n = std::min(chunk, messages - done);
        db::with_transaction(f.gateway_pool(), [&](pqxx::work& w) {
            auto r = w.exec_params(
                "SELECT a.transaction_id::text, a.sequence, a.to_sequence, x.type, x.wallet, x.to_wallet, x.amount "
                "FROM (SELECT g, (ARRAY['deposit','withdrawal','payment','transfer'])[1 + (g % 4)] AS type, "
                "             $2::bigint + (g * 7919) % $3 AS wallet, "
                "             CASE WHEN g % 4 = 3 THEN $2::bigint + (g * 7919 + 1 + g % 3) % $3 END AS to_wallet, "
                "             1 + (g * 31) % 5000 AS amount "
                "        FROM generate_series($4::bigint, $5::bigint) g) x, "
                "LATERAL ledger.accept_transaction($1, 'k' || x.g, x.type, x.wallet, x.to_wallet, x.amount, 'USD', "
                "                                  NULL, NULL, NULL, 'bench') a ORDER BY x.g",
                scope, first, wallets, done, done + n - 1);
            for (const auto& row : r) {
                ledger::tx_message m;
                m.transaction_id = row[0].as<std::string>();
                m.sequence = row[1].as<std::int64_t>();
                if (!row[2].is_null()) m.to_sequence = row[2].as<std::int64_t>();
                m.type = row[3].as<std::string>();
                m.wallet_id = row[4].as<std::int64_t>();
                if (!row[5].is_null()) m.to_wallet_id = row[5].as<std::int64_t>();
                m.amount = row[6].as<std::int64_t>();
                m.currency = "USD";
                m.origin = "bench";
                m.accepted_at = ids::iso8601_now();
                msgs.push_back(f.message_for(m));
            }
        });
    }
    auto t1 = clock_type::now();
    for (std::size_t k = 0; k < msgs.size(); k += 5000) {
        std::vector<amqp::outgoing> part(msgs.begin() + static_cast<long>(k),
                                         msgs.begin() + static_cast<long>(std::min(msgs.size(), k + 5000)));
        f.publish(part);
    }
    auto t2 = clock_type::now();
    std::printf("  preload: accepted in %.1f s, published in %.1f s\n", std::chrono::duration<double>(t1 - t0).count(),
                std::chrono::duration<double>(t2 - t1).count());

    std::vector<std::unique_ptr<testing::child_process>> workers;
    // The drain is timed on the database's clock, from just before the workers start to the
    // last transaction's finished_at, so the progress poll below can be slow and cheap.
    std::string db_start;
    {
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        db_start = r.exec("SELECT clock_timestamp()::text")[0][0].as<std::string>();
    }
    auto start = clock_type::now();
    for (long r = 0; r < replicas; ++r) {
        workers.push_back(f.start_worker("bench-" + std::to_string(r),
                                         {{"TXP_LOG_LEVEL", std::getenv("BENCH_LOG_LEVEL") ? std::getenv("BENCH_LOG_LEVEL") : "warn"}, {"TXP_BATCH_SIZE", std::to_string(batch)},
                                          {"TXP_PREFETCH", std::to_string(prefetch > 0 ? prefetch : batch * 3)}}));
    }
    long peak = 0;
    std::size_t queued = 1;
    while (queued > 0) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        auto l = f.ledger_pool().acquire();
        pqxx::read_transaction r(*l);
        // The sequences accepted minus those applied, over the bench's wallets (10,000 rows,
        // not 200,000; still some milliseconds of the database's time, hence once a second).
        queued = r.exec_params("SELECT (SELECT sum(next_seq) FROM ledger.wallet_sequences WHERE wallet_id BETWEEN $1 AND $2) - "
                               "(SELECT sum(next_apply_seq) FROM ledger.wallets WHERE id BETWEEN $1 AND $2)",
                               first, first + wallets - 1)[0][0]
                     .as<std::size_t>();
        for (auto& w : workers) peak = std::max(peak, peak_rss_kb(w->pid()));
        if (clock_type::now() - start > std::chrono::minutes(10)) {
            std::printf("  gave up after 10 minutes with %zu still queued\n", queued);
            break;
        }
    }
    for (auto& w : workers) peak = std::max(peak, peak_rss_kb(w->pid()));
    for (auto& w : workers) w->terminate();
    auto l = f.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    auto secs = r.exec_params("SELECT extract(epoch FROM max(finished_at) - $2::timestamptz)::float8 FROM ledger.transactions "
                              "WHERE idempotency_scope = $1",
                              scope, db_start)[0][0]
                    .as<double>();
    auto counts = r.exec_params("SELECT status, count(*) FROM ledger.transactions WHERE idempotency_scope = $1 GROUP BY status "
                                "ORDER BY status",
                                scope);
    std::string by_status;
    for (const auto& row : counts) by_status += " " + row[0].as<std::string>() + "=" + row[1].as<std::string>();
    std::printf("  drained %ld transactions in %.2f s: %.0f transactions/s (%s )\n", messages, secs,
                static_cast<double>(messages) / secs, by_status.c_str());
    std::printf("  peak RSS of a worker: %.1f MB\n", static_cast<double>(peak) / 1024.0);
    auto problems = f.reconcile();
    std::printf("  reconcile: %zu problem(s)\n", problems.size());
    return (queued == 0 && problems.empty()) ? 0 : 1;
}
