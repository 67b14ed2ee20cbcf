// /healthz, /readyz and /metrics: what orchestrators and Prometheus ask every service.
#include "txp/http/ops.hpp"

#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

namespace txp::http {

namespace {

response method_not_allowed(const request& req) {
    auto r = problem(405, "method-not-allowed", "Method Not Allowed", "Only GET and HEAD are served here.", req.request_id);
    r.headers.push_back({"Allow", "GET, HEAD"});
    return r;
}

response readiness(const readiness_check& check) {
    std::vector<std::pair<std::string, bool>> results;
    bool ready = true;
    try {
        if (check) results = check();
    } catch (const std::exception& e) {
        log::warn("readiness check threw", {{"error", e.what()}});
        ready = false;
    }
    for (const auto& [name, ok] : results) ready = ready && ok;
    json::writer w;
    w.start_object().kv("status", ready ? "ready" : "not_ready").key("checks").start_object();
    for (const auto& [name, ok] : results) w.kv(name, ok);
    w.end_object().end_object();
    response r;
    r.status = ready ? 200 : 503;
    r.body = w.str();
    return r;
}

}  // namespace

std::optional<response> handle_ops(const request& req, const readiness_check& check) {
    bool readable = req.method == "GET" || req.method == "HEAD";
    if (req.path == "/healthz") {
        if (!readable) return method_not_allowed(req);
        response r;
        r.body = R"({"status":"ok"})";
        return r;
    }
    if (req.path == "/readyz") {
        if (!readable) return method_not_allowed(req);
        return readiness(check);
    }
    if (req.path == "/metrics") {
        if (!readable) return method_not_allowed(req);
        response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.headers.push_back({"Cache-Control", "no-store"});
        r.body = metrics::global().render();
        return r;
    }
    return std::nullopt;
}

ops_server::ops_server(std::string address, std::uint16_t port, readiness_check check) {
    server_options opts;
    opts.address = std::move(address);
    opts.port = port;
    opts.threads = 1;
    opts.body_limit = 1024;
    opts.read_timeout = std::chrono::seconds(5);
    server_ = std::make_unique<server>(std::move(opts), [check = std::move(check)](request&& req, std::shared_ptr<response_writer> w) {
        if (auto r = handle_ops(req, check)) {
            w->send(std::move(*r));
        } else {
            w->send(problem(404, "not-found", "Not Found", "No such endpoint: " + req.path, req.request_id));
        }
    });
}

ops_server::~ops_server() = default;

void ops_server::start() { server_->start(); }

std::uint16_t ops_server::port() const { return server_->port(); }

void ops_server::stop() { server_->stop(std::chrono::seconds(2)); }

}  // namespace txp::http
