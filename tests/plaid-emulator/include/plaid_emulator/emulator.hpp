// The Plaid emulator: a real HTTP server (txp::http::server) speaking Plaid's wire format
// for every endpoint PLAID.md lists, in memory. Sandbox users: user_good (a generated
// history of `transactions_per_item` transactions), user_transactions_dynamic (about 50;
// each /transactions/refresh posts pending ones, adds new ones and changes an amount),
// user_bulk_<N> (an emulator extension: N transactions), and error_<CODE> passwords.
// Control endpoints under /emulator/ inject faults and edit data (see README.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace txp::plaid_emulator {

struct options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 8090;  // 0: the kernel picks one
    std::uint64_t seed = 42;    // the generated histories (amounts, dates, names) depend only on it
    int transactions_per_item = 200;
    // When set, requests must carry these credentials; otherwise any non-empty pair passes.
    std::string client_id, secret;
    // When set, every webhook goes here instead of the item's own webhook URL.
    std::string webhook_url;
    // Transaction and item ids are random unless this is set (then they follow the seed too).
    bool deterministic_ids = false;
    int threads = 8;
};

class emulator {
public:
    explicit emulator(options o);
    ~emulator();
    emulator(const emulator&) = delete;
    emulator& operator=(const emulator&) = delete;

    void start();
    std::uint16_t port() const;
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace txp::plaid_emulator
