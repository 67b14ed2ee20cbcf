// Operational endpoints every service exposes: /healthz, /readyz and /metrics, either as
// a small server of their own or folded into another router (the gateway's).
#pragma once

#include "txp/http/message.hpp"
#include "txp/http/server.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace txp::http {

// Named checks, e.g. {{"database", true}, {"broker", false}}; ready when all are true.
using readiness_check = std::function<std::vector<std::pair<std::string, bool>>()>;

// GET (or HEAD) /healthz: 200 {"status":"ok"}. /readyz: 200 or 503 with
// {"status":"ready"|"not_ready","checks":{...}}; a throwing check means not ready.
// /metrics: Prometheus text from txp::metrics::global(). Other methods on these paths get
// 405. Returns nullopt for every other path.
std::optional<response> handle_ops(const request& req, const readiness_check& check);

class ops_server {
public:
    ops_server(std::string address, std::uint16_t port, readiness_check check);
    ~ops_server();
    void start();
    std::uint16_t port() const;
    void stop();

private:
    std::unique_ptr<server> server_;
};

}  // namespace txp::http
