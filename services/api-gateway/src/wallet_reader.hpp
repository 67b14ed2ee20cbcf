// Reads of single wallets (GET /v1/wallets/{id}, the hottest read) grouped into one query:
// requests queue here without holding an io thread, and a reader thread answers everything
// queued with one `WHERE id = ANY(...)` round trip. Every read starts after its request
// arrived, so an answer is as fresh as a query of its own would be.
#pragma once

#include "txp/db/db.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace txp::gateway {

class wallet_reader {
public:
    // The wallet's row (columns of wallet_columns) or nullopt when there is none; or, when
    // the read failed, `error` (a db::db_error saying whether a retry may succeed).
    using completion = std::function<void(const pqxx::row* row, std::exception_ptr error)>;

    // `readers` threads, each with its own connection; up to max_batch requests per query.
    wallet_reader(std::string database_url, int readers, std::size_t max_batch);
    ~wallet_reader();  // stops
    wallet_reader(const wallet_reader&) = delete;
    wallet_reader& operator=(const wallet_reader&) = delete;

    void start();
    // Answers everything still queued, then joins. Later reads fail at once (transient).
    void stop();

    // `done` runs exactly once on a reader thread; the row is valid only during the call.
    void read(std::int64_t wallet_id, completion done);

private:
    struct item {
        std::int64_t wallet_id;
        completion done;
    };
    void run();
    void answer(std::vector<item>& batch);

    int readers_;
    std::size_t max_batch_;
    db::pool pool_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<item> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace txp::gateway
