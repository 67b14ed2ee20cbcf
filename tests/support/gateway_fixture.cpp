// See gateway_fixture.hpp.
#include "gateway_fixture.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"


#include <stdexcept>
#include <thread>

namespace txp::testing {

gateway_process start_gateway(const std::string& name, std::map<std::string, std::string> extra) {
    gateway_process g;
    // A given TXP_HTTP_PORT (a gateway started again where clients expect it), else a free one.
    auto given = extra.find("TXP_HTTP_PORT");
    g.port = static_cast<std::uint16_t>(given != extra.end() ? std::stoi(given->second) : free_port());
    g.base = "http://127.0.0.1:" + std::to_string(g.port);
    std::map<std::string, std::string> env{
        {"TXP_DATABASE_URL", database_url("gateway")},
        {"TXP_AMQP_URL", amqp_url()},
        {"TXP_HTTP_PORT", std::to_string(g.port)},
        {"TXP_REPLICA_ID", "gw-" + name},
        {"TXP_LOG_LEVEL", "info"},
        {"TXP_LOG_FORMAT", "text"},
        {"TXP_RATE_LIMIT_RPS", "0"},
        {"TXP_LOGIN_RATE_PER_MIN", "1000"},
    };
    for (auto& [k, v] : extra) env[k] = v;
    g.proc = std::make_unique<child_process>(TXP_API_GATEWAY_BIN, std::vector<std::string>{}, env,
                                             std::string(TXP_TEST_LOG_DIR) + "/api-gateway-" + name + ".log");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
        if (!g.proc->running()) throw std::runtime_error("api-gateway " + name + " exited at start:\n" + g.proc->log());
        try {
            http::client_request r;
            r.url = g.base + "/healthz";
            r.timeout = std::chrono::milliseconds(1000);
            if (http::fetch(r).status == 200) return g;
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("api-gateway " + name + " did not answer /healthz within 30 s:\n" + g.proc->log());
}

gateway_fixture& gateway_fixture::shared() {
    static gateway_fixture f;
    return f;
}

gateway_fixture::gateway_fixture() {
    // The ledger schema exists (ledger_fixture migrated it); the gateway migrates its own.
    worker_ = ledger_.start_worker("gw-tests");
}

const std::string& gateway_fixture::base() {
    if (!gateway_ || !gateway_->proc->running()) gateway_ = start_gateway("shared");
    return gateway_->base;
}

void gateway_fixture::stop_gateway() {
    if (gateway_) {
        gateway_->proc->terminate();
        gateway_.reset();
    }
}

http::client_response gateway_fixture::call(const std::string& method, const std::string& path, const std::string& body,
                                            const std::string& token, std::vector<http::header> headers,
                                            const std::string& base_url) {
    http::client_request r;
    r.method = method;
    r.url = (base_url.empty() ? base() : base_url) + path;
    r.body = body;
    r.headers = std::move(headers);
    if (!token.empty()) r.headers.push_back({"Authorization", "Bearer " + token});
    r.timeout = std::chrono::seconds(40);
    return http::fetch(r);
}

api_user gateway_fixture::new_user(const std::string& prefix, const std::string& base_url) {
    api_user u;
    u.username = (prefix + "_" + unique_suffix()).substr(0, 32);
    u.password = "pw-" + unique_suffix();
    auto reg = call("POST", "/v1/auth/register",
                    R"({"username":")" + u.username + R"(","email":")" + u.username + R"(@example.com","password":")" +
                        u.password + R"(","password_confirm":")" + u.password + R"("})",
                    "", {}, base_url);
    if (reg.status != 201) throw std::runtime_error("register failed: " + std::to_string(reg.status) + " " + reg.body);
    auto doc = json::parse(reg.body);
    u.id = doc["id"].GetInt64();
    u.wallet_id = doc["wallet"]["id"].GetInt64();
    auto login = call("POST", "/v1/auth/login", R"({"username":")" + u.username + R"(","password":")" + u.password + R"("})",
                      "", {}, base_url);
    if (login.status != 200) throw std::runtime_error("login failed: " + login.body);
    u.token = json_string(login.body, "token");
    return u;
}

void gateway_fixture::fund(const api_user& u, std::int64_t amount) {
    auto r = call("POST", "/v1/wallets/me/deposit", R"({"amount":)" + std::to_string(amount) + "}", u.token,
                  {{"Idempotency-Key", "fund-" + ids::uuid_v4()}, {"Prefer", "wait=20"}});
    if (r.status != 200 || json_string(r.body, "status") != "completed") {
        throw std::runtime_error("funding failed: " + std::to_string(r.status) + " " + r.body);
    }
}

std::int64_t gateway_fixture::transaction_count() {
    auto l = ledger_.ledger_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec("SELECT count(*) FROM ledger.transactions")[0][0].as<std::int64_t>();
}

std::int64_t gateway_fixture::outbox_pending() {
    auto l = ledger_.gateway_pool().acquire();
    pqxx::read_transaction r(*l);
    return r.exec("SELECT count(*) FROM gateway.outbox WHERE sent_at IS NULL")[0][0].as<std::int64_t>();
}

std::string json_string(const std::string& body, const char* field) {
    auto doc = json::parse(body);
    if (!doc.IsObject() || !doc.HasMember(field) || !doc[field].IsString()) {
        throw std::runtime_error(std::string("no string field ") + field + " in " + body);
    }
    return doc[field].GetString();
}

std::int64_t json_int(const std::string& body, const char* field) {
    auto doc = json::parse(body);
    if (!doc.IsObject() || !doc.HasMember(field) || !doc[field].IsInt64()) {
        throw std::runtime_error(std::string("no integer field ") + field + " in " + body);
    }
    return doc[field].GetInt64();
}

bool is_problem(const http::client_response& r, unsigned status, const std::string& type) {
    if (r.status != status) return false;
    auto ct = r.header_value("Content-Type");
    if (!ct || ct->find("application/problem+json") == std::string_view::npos) return false;
    try {
        auto doc = json::parse(r.body);
        return doc.IsObject() && doc.HasMember("type") && doc["type"].IsString() &&
               std::string(doc["type"].GetString()) == "https://txp.dev/problems/" + type && doc.HasMember("request_id") &&
               doc.HasMember("detail");
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace txp::testing
