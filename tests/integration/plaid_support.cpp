// See plaid_support.hpp.
#include "plaid_support.hpp"

#include "txp/common/ids.hpp"
#include "txp/db/migrations.hpp"
#include "txp/plaid/crypto.hpp"
#include "txp/testing/env.hpp"

#include <rapidjson/document.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace txp::testing {

std::string test_token_key() { return plaid::base64_encode(std::string(32, '\x2a')); }

plaid_emulator_process& plaid_emulator_process::shared() {
    static plaid_emulator_process p;
    return p;
}

plaid_emulator_process::plaid_emulator_process() {
    std::string log = std::string(TXP_TEST_LOG_DIR) + "/plaid-emulator-" + unique_suffix() + ".log";
    proc_ = std::make_unique<child_process>(TXP_PLAID_EMULATOR_BIN,
                                            std::vector<std::string>{"--port", "0", "--client-id", test_client_id, "--secret", test_secret},
                                            std::map<std::string, std::string>{{"TXP_LOG_FORMAT", "text"}}, log);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    const std::string marker = "plaid-emulator listening on 127.0.0.1:";
    while (std::chrono::steady_clock::now() < until) {
        std::ifstream in(log);
        std::stringstream ss;
        ss << in.rdbuf();
        auto text = ss.str();
        auto pos = text.find(marker);
        if (pos != std::string::npos && text.find('\n', pos) != std::string::npos) {
            port_ = static_cast<std::uint16_t>(std::stoi(text.substr(pos + marker.size())));
            return;
        }
        if (!proc_->running()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the plaid emulator did not start; see " + log);
}

std::string plaid_emulator_process::control(const std::string& method, const std::string& path, const std::string& body) {
    http::client_request req;
    req.method = method;
    req.url = base_url() + path;
    req.body = body;
    auto resp = http::fetch(req);
    if (resp.status != 200) throw std::runtime_error("emulator " + path + ": " + std::to_string(resp.status) + " " + resp.body);
    return resp.body;
}

plaid_fixture::plaid_fixture() : cipher_(plaid::token_cipher::from_base64(test_token_key())) {
    db::pool_options po;
    po.url = database_url("plaid");
    po.size = 4;
    plaid_ = std::make_unique<db::pool>(po);
    static std::once_flag migrated;
    std::call_once(migrated, [&] {
        auto l = plaid_->acquire();
        db::migrate(*l, "plaid", db::load_migrations(db::default_migrations_dir(), "plaid"));
    });
    // Leftovers of earlier tests must not be synced or published by this test's processes.
    db::with_transaction(*plaid_, [](pqxx::work& w) {
        w.exec("UPDATE plaid.items SET status = 'revoked' WHERE status <> 'revoked'");
        w.exec("UPDATE plaid.outbox SET sent_at = now() WHERE sent_at IS NULL");
        w.exec("INSERT INTO plaid.scheduler_state (name, last_run_at) VALUES ('sync', now()) "
               "ON CONFLICT (name) DO UPDATE SET last_run_at = now()");
    });
    plaid::client_options co;
    co.base_url = emulator().base_url();
    co.client_id = test_client_id;
    co.secret = test_secret;
    co.timeout = std::chrono::seconds(20);
    client_ = std::make_unique<plaid::client>(co);
    outbox_ = std::make_unique<outbox::outbox>("plaid.outbox", "plaid_outbox");
    ctx_ = std::make_unique<plaid_sync::api_context>(
        plaid_sync::api_context{*plaid_, *client_, cipher_, plaid_sync::enqueue_into(*outbox_), std::nullopt});
    emulator().control("DELETE", "/emulator/faults");
    emulator().control("POST", "/emulator/config", R"({"webhook_url":""})");
    ledger_.purge_queues();
    purge_plaid_queues();
}

plaid_fixture::~plaid_fixture() {
    try {
        emulator().control("DELETE", "/emulator/faults");
    } catch (...) {
    }
}

void plaid_fixture::purge_plaid_queues() {
    amqp::admin a(ledger_.amqp_options());
    a.declare(amqp::txp_topology());
    for (const std::string q : {"plaid.sync", "plaid.sync.retry.1s", "plaid.sync.retry.10s", "plaid.sync.retry.60s", "plaid.sync.error"}) {
        a.purge(q);
    }
}

plaid_sync::item_view plaid_fixture::link(std::int64_t owner, const std::string& username) {
    plaid::sandbox_link_request r;
    r.override_username = username;
    return plaid_sync::sandbox_link(*ctx_, owner, r, "test-link-" + unique_suffix());
}

std::string plaid_fixture::access_token(const std::string& item_id) {
    auto l = plaid_->acquire();
    pqxx::read_transaction r(*l);
    auto res = r.exec_params("SELECT access_token_enc FROM plaid.items WHERE item_id = $1", item_id);
    return cipher_.open(pqxx::binarystring(res.at(0)[0]).str(), item_id);
}

std::unique_ptr<child_process> plaid_fixture::start_sync(const std::string& replica, std::map<std::string, std::string> extra) {
    std::map<std::string, std::string> env{
        {"TXP_DATABASE_URL", database_url("plaid")},
        {"TXP_AMQP_URL", amqp_url()},
        {"TXP_HTTP_PORT", "0"},
        {"TXP_REPLICA_ID", replica},
        {"TXP_LOG_LEVEL", "info"},
        {"TXP_LOG_FORMAT", "text"},
        {"TXP_PLAID_BASE_URL", emulator().base_url()},
        {"TXP_PLAID_CLIENT_ID", test_client_id},
        {"TXP_PLAID_SECRET", test_secret},
        {"TXP_PLAID_TOKEN_KEY", test_token_key()},
        {"TXP_PLAID_SYNC_INTERVAL", "60m"},
    };
    for (auto& [k, v] : extra) env[k] = v;
    return std::make_unique<child_process>(TXP_PLAID_SYNC_BIN, std::vector<std::string>{}, env,
                                           std::string(TXP_TEST_LOG_DIR) + "/plaid-sync-" + replica + ".log");
}

bool plaid_fixture::eventually(const std::function<bool()>& fn, std::chrono::seconds deadline) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
        if (fn()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return fn();
}

std::map<std::string, bool> plaid_fixture::emulator_transactions(const std::string& item_id) {
    auto body = emulator().control("GET", "/emulator/items/" + item_id);
    rapidjson::Document d;
    d.Parse(body.c_str());
    std::map<std::string, bool> out;
    for (const auto& t : d["transactions"].GetArray()) out[t["transaction_id"].GetString()] = t["pending"].GetBool();
    return out;
}

std::map<std::string, bool> plaid_fixture::db_transactions(const std::string& item_id) {
    auto l = plaid_->acquire();
    pqxx::read_transaction r(*l);
    std::map<std::string, bool> out;
    for (const auto& row : r.exec_params("SELECT transaction_id, pending FROM plaid.transactions WHERE item_id = $1", item_id)) {
        out[row[0].as<std::string>()] = row[1].as<bool>();
    }
    return out;
}

std::string plaid_fixture::db_scalar(const std::string& sql, const std::string& param) {
    auto l = plaid_->acquire();
    pqxx::read_transaction r(*l);
    auto res = r.exec_params(sql, param);
    if (res.empty() || res[0][0].is_null()) return "";
    return res[0][0].as<std::string>();
}

std::int64_t plaid_fixture::requests(const std::string& endpoint, unsigned status) {
    auto body = emulator().control("GET", "/emulator/stats");
    rapidjson::Document d;
    d.Parse(body.c_str());
    auto& req = d["requests"];
    if (!req.HasMember(endpoint.c_str())) return 0;
    auto& by = req[endpoint.c_str()];
    auto k = std::to_string(status);
    if (!by.HasMember(k.c_str())) return 0;
    return by[k.c_str()].GetInt64();
}

}  // namespace txp::testing
