// See wallet_reader.hpp.
#include "wallet_reader.hpp"

#include "api_internal.hpp"

#include "txp/common/log.hpp"

#include <algorithm>
#include <unordered_map>

namespace txp::gateway {

namespace {
constexpr const char* wallets_statement = "txp_gateway_wallets_by_id";
}

wallet_reader::wallet_reader(std::string database_url, int readers, std::size_t max_batch)
    : readers_(std::max(1, readers)), max_batch_(std::max<std::size_t>(1, max_batch)), pool_([&] {
          db::pool_options po;
          po.url = std::move(database_url);
          po.size = static_cast<std::size_t>(readers_);
          po.application_name = "api-gateway-reads";
          po.on_connect = [](pqxx::connection& c) {
              c.prepare(wallets_statement,
                        "SELECT " + std::string(wallet_columns) + " FROM ledger.wallets w WHERE w.id = ANY($1::bigint[])");
          };
          return po;
      }()) {}

wallet_reader::~wallet_reader() { stop(); }

void wallet_reader::start() {
    for (int i = 0; i < readers_; ++i) threads_.emplace_back([this] { run(); });
}

void wallet_reader::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::deque<item> left;
    {
        std::lock_guard lk(mu_);
        left.swap(queue_);
    }
    auto err = std::make_exception_ptr(db::db_error(db::failure_kind::transient, "the gateway is stopping"));
    for (auto& it : left) it.done(nullptr, err);
}

void wallet_reader::read(std::int64_t wallet_id, completion done) {
    {
        std::unique_lock lk(mu_);
        if (!stopping_) {
            queue_.push_back({wallet_id, std::move(done)});
            lk.unlock();
            cv_.notify_one();
            return;
        }
    }
    done(nullptr, std::make_exception_ptr(db::db_error(db::failure_kind::transient, "the gateway is stopping")));
}

void wallet_reader::run() {
    log::scope tag("", "wallet-reader");
    std::vector<item> batch;
    for (;;) {
        batch.clear();
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return !queue_.empty() || stopping_; });
            if (queue_.empty()) return;
            while (!queue_.empty() && batch.size() < max_batch_) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        answer(batch);
    }
}

void wallet_reader::answer(std::vector<item>& batch) {
    std::vector<std::int64_t> ids;
    ids.reserve(batch.size());
    for (const auto& it : batch) ids.push_back(it.wallet_id);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    pqxx::result rows;
    std::exception_ptr error;
    for (int attempt = 1;; ++attempt) {
        try {
            rows = pool_.acquire().use([&](pqxx::connection& c) {
                pqxx::nontransaction n(c);
                return n.exec_prepared(wallets_statement, db::array_literal(ids));
            });
            break;
        } catch (const std::exception& e) {
            auto kind = db::classify(e);
            if (kind == db::failure_kind::permanent || attempt >= 3) {
                error = std::make_exception_ptr(db::db_error(kind, e.what(), db::sqlstate_of(e)));
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10 * attempt));
        }
    }
    std::unordered_map<std::int64_t, const pqxx::row*> by_id;
    std::vector<pqxx::row> kept(rows.begin(), rows.end());
    for (const auto& r : kept) by_id.emplace(r[0].as<std::int64_t>(), &r);
    for (auto& it : batch) {
        auto found = by_id.find(it.wallet_id);
        try {
            it.done(error ? nullptr : (found == by_id.end() ? nullptr : found->second), error);
        } catch (const std::exception& e) {
            log::error("wallet read completion threw", {{"error", e.what()}});
        }
    }
}

}  // namespace txp::gateway
