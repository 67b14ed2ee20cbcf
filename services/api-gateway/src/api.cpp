// The router and what every request goes through: route matching, content type, bearer
// authentication, per-token rate limits, errors as problem+json; plus the auth handlers.
#include "api_internal.hpp"
#include "credentials.hpp"

#include "txp/amqp/topology.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/common/money.hpp"
#include "txp/http/ops.hpp"
#include "txp/outbox/outbox.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace txp::gateway {

namespace {

thread_local std::string tl_request_id;

struct route {
    const char* method;
    const char* pattern;
    api::impl::handler_fn fn;  // nullptr: an operational endpoint served by http::handle_ops
    bool auth;
    bool body;
    // Runs on the io thread: answers from memory, or hands the request to a batcher that
    // answers from its own thread. Everything else runs on the blocking pool.
    bool quick = false;
};

using I = api::impl;
const std::vector<route>& routes() {
    static const std::vector<route> r{
        {"POST", "/v1/auth/register", &I::register_user, false, true},
        {"POST", "/v1/auth/login", &I::login, false, true},
        {"POST", "/v1/auth/logout", &I::logout, true, false},
        {"GET", "/v1/auth/profile", &I::profile, true, false},
        {"GET", "/v1/wallets", &I::list_wallets, true, false},
        {"GET", "/v1/wallets/me", &I::my_wallet, true, false},
        {"POST", "/v1/wallets/me/deposit", &I::my_deposit, true, true, true},
        {"POST", "/v1/wallets/me/withdraw", &I::my_withdraw, true, true, true},
        {"POST", "/v1/wallets/me/transfer", &I::my_transfer, true, true, true},
        {"GET", "/v1/wallets/{id}", &I::get_wallet, true, false, true},
        {"GET", "/v1/wallets/{id}/transactions", &I::wallet_transactions, true, false},
        {"POST", "/v1/transactions", &I::post_transaction, true, true, true},
        {"GET", "/v1/transactions/{id}", &I::get_transaction, true, false},
        {"POST", "/v1/plaid/link/token", &I::plaid_link_token, true, false},
        {"POST", "/v1/plaid/link/exchange", &I::plaid_exchange, true, true},
        {"POST", "/v1/plaid/sandbox/link", &I::plaid_sandbox_link, true, true},
        {"GET", "/v1/plaid/items", &I::plaid_items, true, false},
        {"DELETE", "/v1/plaid/items/{id}", &I::plaid_remove_item, true, false},
        {"POST", "/v1/plaid/items/{id}/sync", &I::plaid_sync_item, true, false},
        {"GET", "/v1/plaid/accounts", &I::plaid_accounts, true, false},
        {"POST", "/v1/plaid/accounts/{id}/refresh-balance", &I::plaid_refresh_balance, true, false},
        {"PUT", "/v1/plaid/accounts/{id}/wallet", &I::plaid_link_wallet, true, true},
        {"GET", "/v1/plaid/transactions", &I::plaid_transactions, true, false},
        {"POST", "/v1/plaid/webhook", &I::plaid_webhook, false, false},
        {"POST", "/v1/webhooks", &I::create_webhook, true, true},
        {"GET", "/v1/webhooks", &I::list_webhooks, true, false},
        {"DELETE", "/v1/webhooks/{id}", &I::delete_webhook, true, false},
        {"GET", "/v1/notifications", &I::list_notifications, true, false},
        // Authenticates itself: EventSource cannot send headers, so ?access_token= is accepted too.
        {"GET", "/v1/events", &I::open_event_stream, false, false},
        {"GET", "/healthz", nullptr, false, false, true},
        {"GET", "/readyz", nullptr, false, false},
        {"GET", "/metrics", nullptr, false, false, true},
        {"GET", "/openapi.json", &I::openapi, false, false, true},
        {"GET", "/docs", &I::docs, false, false, true},
        {"GET", "/", &I::console, false, false, true},
    };
    return r;
}

std::vector<std::string_view> split_path(std::string_view p) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < p.size()) {
        if (p[i] == '/') {
            ++i;
            continue;
        }
        auto j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        out.push_back(p.substr(i, j - i));
        i = j;
    }
    return out;
}

bool match(std::string_view pattern, std::string_view path, std::map<std::string, std::string>& params) {
    if (path.size() > 1 && path.back() == '/') return false;
    auto ps = split_path(pattern);
    auto xs = split_path(path);
    if (ps.size() != xs.size()) return false;
    std::map<std::string, std::string> got;
    for (std::size_t i = 0; i < ps.size(); ++i) {
        if (ps[i].size() > 2 && ps[i].front() == '{' && ps[i].back() == '}') {
            got[std::string(ps[i].substr(1, ps[i].size() - 2))] = std::string(xs[i]);
        } else if (ps[i] != xs[i]) {
            return false;
        }
    }
    params = std::move(got);
    return true;
}

bool is_json_media_type(std::string_view ct) {
    auto base = ct.substr(0, ct.find(';'));
    while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
    while (!base.empty() && base.front() == ' ') base.remove_prefix(1);
    if (base.size() != 16) return false;
    std::string lower(base);
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return lower == "application/json";
}

struct api_metrics {
    metrics::counter& unauthorized = metrics::global().get_counter(
        "txp_gateway_unauthorized_total", "Requests refused for a missing, unknown, expired or revoked token");
    metrics::counter& rate_limited = metrics::global().get_counter(
        "txp_gateway_rate_limited_total", "Requests refused by a rate limit");
    metrics::counter& logins_failed = metrics::global().get_counter(
        "txp_gateway_logins_failed_total", "Login attempts with a wrong username or password");
};

api_metrics& am() {
    static api_metrics m;
    return m;
}

bool valid_username(std::string_view u) {
    if (u.size() < 3 || u.size() > 32) return false;
    return std::all_of(u.begin(), u.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    });
}

bool valid_email(std::string_view e) {
    if (e.size() < 3 || e.size() > 254) return false;
    auto at = e.find('@');
    if (at == std::string_view::npos || at == 0 || e.find('@', at + 1) != std::string_view::npos) return false;
    auto domain = e.substr(at + 1);
    if (domain.size() < 3 || domain.find('.') == std::string_view::npos || domain.front() == '.' || domain.back() == '.') {
        return false;
    }
    return std::all_of(e.begin(), e.end(), [](char c) { return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; });
}

}  // namespace

// ---- shared helpers -------------------------------------------------------------------

const std::string& current_request_id() { return tl_request_id; }

void fail(unsigned status, std::string_view type, std::string_view title, std::string_view detail,
          std::vector<http::problem_member> extra) {
    throw api_error(http::problem(status, type, title, detail, tl_request_id, extra));
}

void fail_field(const std::string& field, const std::string& detail, unsigned status) {
    json::writer w;
    w.str(field);
    fail(status, "validation-error", "Invalid request", detail, {{"field", w.str()}});
}

void fail_not_found(std::string_view what) { fail(404, "not-found", "Not Found", std::string(what) + " was not found."); }

http::response json_response(unsigned status, std::string body) {
    http::response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

std::string iso(std::string_view column) {
    return "to_char(" + std::string(column) + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

namespace {

// What JSON allows but a request must not carry: a member named twice in one object (parsers
// disagree on which one counts: RapidJSON's lookups take the first, PostgreSQL's jsonb and
// JavaScript the last, so a proxy or a client could read another amount than the one booked)
// and the NUL character in a string (PostgreSQL's text cannot hold it). `field` is the
// top-level member the problem is in.
void check_strict(const rapidjson::Value& v, const std::string& field) {
    auto has_nul = [](const rapidjson::Value& s) { return std::memchr(s.GetString(), '\0', s.GetStringLength()) != nullptr; };
    if (v.IsString()) {
        if (has_nul(v)) fail_field(field, "Strings must not contain the NUL character (\\u0000).");
    } else if (v.IsArray()) {
        for (const auto& e : v.GetArray()) check_strict(e, field);
    } else if (v.IsObject()) {
        std::vector<std::string_view> names;
        names.reserve(v.MemberCount());
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            std::string_view name(it->name.GetString(), it->name.GetStringLength());
            const std::string& where = field.empty() ? std::string(name.substr(0, 64)) : field;
            if (has_nul(it->name)) fail_field(where, "Field names must not contain the NUL character (\\u0000).");
            names.push_back(name);
            check_strict(it->value, where);
        }
        // Sorted, so that an object of thousands of members costs n log n, not n^2.
        std::sort(names.begin(), names.end());
        if (auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end()) {
            fail_field(field.empty() ? std::string(dup->substr(0, 64)) : field,
                       "The field \"" + std::string(dup->substr(0, 64)) + "\" appears more than once.");
        }
    }
}

}  // namespace

rapidjson::Document json_body(const http::request& req, std::initializer_list<const char*> allowed) {
    rapidjson::Document doc;
    try {
        doc = json::parse(req.body);
    } catch (const json::parse_error& e) {
        fail(400, "malformed-json", "Malformed JSON", e.what());
    }
    if (!doc.IsObject()) fail(400, "validation-error", "Invalid request", "The request body must be a JSON object.");
    check_strict(doc, "");
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        std::string_view name(it->name.GetString(), it->name.GetStringLength());
        bool known = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return name == a; });
        if (!known) {
            fail_field(std::string(name.substr(0, 64)), "Unknown field \"" + std::string(name.substr(0, 64)) + "\".");
        }
    }
    return doc;
}

std::int64_t id_param(const context& c, const char* name, std::string_view what) {
    auto it = c.params.find(name);
    if (it == c.params.end() || it->second.empty() || it->second.size() > 18 ||
        !std::all_of(it->second.begin(), it->second.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
        fail_not_found(what);
    }
    auto v = std::stoll(it->second);
    if (v <= 0) fail_not_found(what);
    return v;
}

std::optional<std::int64_t> int_query(const http::request& req, const char* name, std::int64_t min, std::int64_t max) {
    auto v = req.query_param(name);
    if (!v) return std::nullopt;
    bool digits = !v->empty() && v->size() <= 18 &&
                  std::all_of(v->begin() + ((*v)[0] == '-' ? 1 : 0), v->end(), [](char ch) { return ch >= '0' && ch <= '9'; }) &&
                  !(v->size() == 1 && (*v)[0] == '-');
    if (!digits) fail_field(name, std::string(name) + " must be an integer.");
    auto n = std::stoll(*v);
    if (n < min || n > max) {
        fail_field(name, std::string(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max) + ".");
    }
    return n;
}

http::response error_response(const std::exception& e, const std::string& request_id, const std::string& path) {
    if (auto* fe = dynamic_cast<const json::field_error*>(&e)) {
        json::writer f;
        f.str(fe->field());
        return http::problem(400, "validation-error", "Invalid request", fe->what(), request_id, {{"field", f.str()}});
    }
    if (dynamic_cast<const overloaded_error*>(&e)) {
        auto out = http::problem(503, "overloaded", "Service Unavailable",
                                 std::string("This request was not processed: ") + e.what() + ". Retry shortly with the same Idempotency-Key.",
                                 request_id);
        out.headers.push_back({"Retry-After", "1"});
        return out;
    }
    auto state = db::sqlstate_of(e);
    if (state == "TX400") return http::problem(422, "unprocessable", "Unprocessable request", db::primary_message(e), request_id);
    if (state == "TX404") return http::problem(404, "not-found", "Not Found", db::primary_message(e), request_id);
    if (state == "TX409") {
        return http::problem(409, "idempotency-conflict", "Idempotency key reused",
                             "This Idempotency-Key was already used for a different request.", request_id);
    }
    if (state.rfind("22", 0) == 0) return http::problem(400, "validation-error", "Invalid request", db::primary_message(e), request_id);
    if (db::classify(e) == db::failure_kind::transient) {
        log::warn("database unavailable for a request", {{"error", std::string_view(e.what()).substr(0, 200)}});
        auto out = http::problem(503, "service-unavailable", "Service Unavailable", "The database is unavailable; retry shortly.",
                                 request_id);
        out.headers.push_back({"Retry-After", "1"});
        return out;
    }
    log::error("request failed", {{"path", path}, {"sqlstate", state}, {"error", std::string_view(e.what()).substr(0, 300)}});
    return http::problem(500, "internal", "Internal Server Error", "The server could not complete the request.", request_id);
}

void prepare_api_statements(pqxx::connection& c) {
    c.prepare(auth_statement,
              "SELECT u.id, u.username, u.role, (extract(epoch FROM t.expires_at) * 1000)::bigint "
              "FROM gateway.tokens t JOIN gateway.users u ON u.id = t.user_id "
              "WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()");
    c.prepare(transaction_statement, std::string("SELECT ") + transaction_columns +
                                         ", (SELECT owner_id FROM ledger.wallets WHERE id = t.wallet_id), "
                                         "(SELECT owner_id FROM ledger.wallets WHERE id = t.to_wallet_id) "
                                         "FROM ledger.transactions t WHERE t.id = $1::uuid");
}

// ---- the router -----------------------------------------------------------------------

const std::vector<route_info>& route_table() {
    static const std::vector<route_info> t = [] {
        std::vector<route_info> out;
        for (const auto& r : routes()) out.push_back({r.method, r.pattern});
        return out;
    }();
    return t;
}

api::impl::impl(db::pool& p, const options& o, outcome_waiters* w, acceptance_batcher& b, wallet_reader& wr,
                api::readiness_check r)
    : pool(p),
      opts(o),
      waiters(w),
      batcher(b),
      wallets(wr),
      ready(std::move(r)),
      per_token(o.rate_limit_rps, o.rate_limit_rps * 2),
      per_login(o.login_rate_per_min / 60.0, o.login_rate_per_min),
      tokens(o.auth_cache_ttl, o.auth_cache_size),
      dummy_hash(hash_password(new_token())),
      workers(o.handler_threads) {
    if (waiters) waiters->on_token_revoked([this](const std::string& token_hash) { forget_token(token_hash); });
}

void api::impl::forget_token(const std::string& token_hash) {
    tokens.revoke(token_hash);
    if (notify) close_streams_of_token(*notify, token_hash);
}

const outbox::outbox& gateway_outbox() {
    static const outbox::outbox box("gateway.outbox", "txp_outbox");
    return box;
}

api::impl::~impl() {
    if (waiters) waiters->on_token_revoked({});  // waits for a call in progress
}

api::api(db::pool& pool, const options& opts, outcome_waiters* waiters, acceptance_batcher& batcher, wallet_reader& wallets,
         readiness_check ready)
    : impl_(std::make_unique<impl>(pool, opts, waiters, batcher, wallets, std::move(ready))) {}

api::~api() = default;

void api::handle(http::request&& req, std::shared_ptr<http::response_writer> w) { impl_->handle(std::move(req), std::move(w)); }

namespace {

// Authentication, rate limit, content type and the handler, with every failure answered as
// a problem. On an io thread for quick routes, on the blocking pool for the others.
void serve(api::impl& self, const route& found, const http::request& req, std::map<std::string, std::string> params,
           const std::shared_ptr<http::response_writer>& w) {
    tl_request_id = req.request_id;
    std::optional<http::response> out;
    try {
        if (found.fn == nullptr) {
            out = http::handle_ops(req, self.ready);
            if (!out) fail(404, "not-found", "Not Found", "There is no endpoint at " + req.path.substr(0, 200) + ".");
        } else {
            context c{req, w, std::move(params), std::nullopt};
            if (found.auth) {
                c.user = self.authenticate(req);
                if (int wait_s = self.per_token.take(c.user->token_hash); wait_s > 0) {
                    am().rate_limited.inc();
                    auto resp = http::problem(429, "rate-limited", "Too Many Requests",
                                              "This token sends requests faster than the limit allows.", req.request_id);
                    resp.headers.push_back({"Retry-After", std::to_string(wait_s)});
                    throw api_error(std::move(resp));
                }
            }
            if (found.body) {
                auto ct = req.header_value("Content-Type");
                if (!ct || !is_json_media_type(*ct)) {
                    fail(415, "unsupported-media-type", "Unsupported Media Type",
                         "Request bodies must be application/json.");
                }
            }
            out = (self.*(found.fn))(c);
        }
    } catch (api_error& e) {
        out = std::move(e.response());
    } catch (const std::exception& e) {
        out = error_response(e, req.request_id, req.path);
    }
    if (out) w->send(std::move(*out));
}

}  // namespace

void api::impl::handle(http::request&& req, std::shared_ptr<http::response_writer> w) {
    tl_request_id = req.request_id;
    const route* found = nullptr;
    std::map<std::string, std::string> params;
    try {
        std::string allow;
        std::string method = req.method == "HEAD" ? "GET" : req.method;
        for (const auto& r : routes()) {
            std::map<std::string, std::string> p;
            if (!match(r.pattern, req.path, p)) continue;
            if (method == r.method) {
                found = &r;
                params = std::move(p);
                break;
            }
            if (!allow.empty()) allow += ", ";
            allow += r.method;
            if (std::string_view(r.method) == "GET") allow += ", HEAD";
        }
        if (!found && !allow.empty()) {
            auto resp = http::problem(405, "method-not-allowed", "Method Not Allowed",
                                      req.method + " is not served on " + req.path + ".", req.request_id);
            resp.headers.push_back({"Allow", allow});
            throw api_error(std::move(resp));
        }
        if (!found) fail(404, "not-found", "Not Found", "There is no endpoint at " + req.path.substr(0, 200) + ".");
    } catch (api_error& e) {
        w->send(std::move(e.response()));
        return;
    }
    if (found->quick) {
        serve(*this, *found, req, std::move(params), w);
        return;
    }
    workers.post([this, found, req = std::move(req), params = std::move(params), w = std::move(w)]() mutable {
        serve(*this, *found, req, std::move(params), w);
    });
}

caller api::impl::authenticate(const http::request& req) {
    auto unauthorized = [&](std::string_view detail) {
        am().unauthorized.inc();
        auto resp = http::problem(401, "unauthorized", "Unauthorized", detail, req.request_id);
        resp.headers.push_back({"WWW-Authenticate", "Bearer realm=\"txp\""});
        throw api_error(std::move(resp));
    };
    auto h = req.header_value("Authorization");
    if (!h) unauthorized("An Authorization: Bearer token is required.");
    // Two would leave it to whoever reads them to choose (a proxy may pick the other one).
    if (req.header_count("Authorization") > 1) unauthorized("The Authorization header must be sent once.");
    std::string_view v = *h;
    if (v.size() < 7 || (v.substr(0, 7) != "Bearer " && v.substr(0, 7) != "bearer ")) {
        unauthorized("The Authorization header must be \"Bearer <token>\".");
    }
    v.remove_prefix(7);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    if (!looks_like_token(v)) unauthorized("The token is not valid.");
    caller c;
    c.token_hash = sha256_hex(v);
    if (auto hit = tokens.find(c.token_hash)) {
        c.id = hit->id;
        c.username = std::move(hit->username);
        c.role = std::move(hit->role);
        c.token_expires_at = hit->expires_at;
        return c;
    }
    auto started = token_cache::clock::now();
    std::optional<cached_caller> found = single_read(pool, [&](pqxx::nontransaction& n) -> std::optional<cached_caller> {
        auto r = n.exec_prepared(auth_statement, c.token_hash);
        if (r.empty()) return std::nullopt;
        cached_caller cc;
        cc.id = r[0][0].as<std::int64_t>();
        cc.username = r[0][1].as<std::string>();
        cc.role = r[0][2].as<std::string>();
        cc.expires_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(r[0][3].as<std::int64_t>()));
        return cc;
    });
    if (!found) unauthorized("The token is unknown, expired or logged out.");
    c.id = found->id;
    c.username = found->username;
    c.role = found->role;
    c.token_expires_at = found->expires_at;
    tokens.put(c.token_hash, std::move(*found), started);
    return c;
}

// ---- auth -----------------------------------------------------------------------------

std::optional<http::response> api::impl::register_user(context& c) {
    auto doc = json_body(c.req, {"username", "email", "password", "password_confirm", "currency"});
    auto username = json::require_string(doc, "username", 64);
    auto email = json::require_string(doc, "email", 254);
    auto password = json::require_string(doc, "password", 128);
    auto confirm = json::require_string(doc, "password_confirm", 128);
    auto currency = json::optional_string(doc, "currency", 3).value_or("USD");
    if (!valid_username(username)) {
        fail_field("username", "username must be 3 to 32 characters of a-z, 0-9, '_', '.' and '-'.");
    }
    if (!valid_email(email)) fail_field("email", "email must be an email address.");
    if (password.size() < 8) fail_field("password", "password must have at least 8 characters.");
    if (confirm != password) fail_field("password_confirm", "password_confirm does not match password.");
    if (!money::is_currency(currency)) fail_field("currency", "currency must be an ISO 4217 code such as USD.");
    auto hash = hash_password(password);

    std::string body;
    try {
        body = in_transaction(pool, [&](pqxx::work& w) {
            auto u = w.exec_params("INSERT INTO gateway.users (username, email, password_hash) VALUES ($1, $2, $3) "
                                   "RETURNING id, role, " + iso("created_at"),
                                   username, email, hash);
            auto id = u[0][0].as<std::int64_t>();
            auto wallet_id = w.exec_params("SELECT ledger.open_wallet($1, $2, 0)", id, currency)[0][0].as<std::int64_t>();
            auto wr = w.exec_params(std::string("SELECT ") + wallet_columns + " FROM ledger.wallets w WHERE w.id = $1", wallet_id);
            json::writer j;
            j.start_object().kv("id", id).kv("username", username).kv("email", email);
            j.kv("role", u[0][1].as<std::string>()).kv("created_at", u[0][2].as<std::string>());
            j.key("wallet");
            write_wallet(j, wr[0]);
            j.end_object();
            return j.str();
        });
    } catch (const std::exception& e) {
        if (db::sqlstate_of(e) != "23505") throw;
        bool email_taken = std::string_view(e.what()).find("users_email") != std::string_view::npos;
        fail(409, "already-exists", "Already registered",
             email_taken ? "This email address is already registered." : "This username is taken.",
             {{"field", email_taken ? "\"email\"" : "\"username\""}});
    }
    log::info("user registered", {{"username", username}});
    auto r = json_response(201, std::move(body));
    r.headers.push_back({"Location", "/v1/auth/profile"});
    return r;
}

std::optional<http::response> api::impl::login(context& c) {
    auto doc = json_body(c.req, {"username", "password"});
    auto username = json::require_string(doc, "username", 64);
    auto password = json::require_string(doc, "password", 128);
    if (int wait_s = per_login.take(username + "|" + c.req.remote_address); wait_s > 0) {
        am().rate_limited.inc();
        auto resp = http::problem(429, "rate-limited", "Too Many Requests",
                                  "Too many login attempts for this username; wait before trying again.", c.req.request_id);
        resp.headers.push_back({"Retry-After", std::to_string(wait_s)});
        return resp;
    }
    auto user = in_transaction(pool, [&](pqxx::work& w) {
        auto r = w.exec_params("SELECT id, password_hash FROM gateway.users WHERE username = $1", username);
        return r.empty() ? std::optional<std::pair<std::int64_t, std::string>>()
                         : std::make_pair(r[0][0].as<std::int64_t>(), r[0][1].as<std::string>());
    });
    bool ok = verify_password(password, user ? user->second : dummy_hash) && user;
    if (!ok) {
        am().logins_failed.inc();
        log::info("login failed", {{"username", username}});
        fail(401, "invalid-credentials", "Invalid credentials", "The username or password is wrong.");
    }
    auto token = new_token();
    auto ttl_ms = static_cast<std::int64_t>(opts.token_ttl.count());
    auto expires_at = in_transaction(pool, [&](pqxx::work& w) {
        w.exec_params("DELETE FROM gateway.tokens WHERE user_id = $1 AND expires_at < now() - interval '1 day'", user->first);
        return w.exec_params("INSERT INTO gateway.tokens (token_hash, user_id, expires_at) "
                             "VALUES ($1, $2, now() + $3 * interval '1 millisecond') RETURNING " + iso("expires_at"),
                             sha256_hex(token), user->first, ttl_ms)[0][0]
            .as<std::string>();
    });
    json::writer j;
    j.start_object().kv("token", token).kv("token_type", "Bearer").kv("expires_at", expires_at);
    j.kv("expires_in", ttl_ms / 1000).end_object();
    return json_response(200, j.str());
}

std::optional<http::response> api::impl::logout(context& c) {
    in_transaction(pool, [&](pqxx::work& w) {
        auto r = w.exec_params("UPDATE gateway.tokens SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL",
                               c.me().token_hash);
        // Every replica drops it from its token cache when this reaches it (the outbox
        // publishes it after the commit; until then the cache's TTL bounds how long it lives).
        if (r.affected_rows() > 0) {
            amqp::outgoing m;
            m.exchange = amqp::events_exchange;
            m.routing_key = outcome_waiters::token_revoked_key;
            m.props.type = outcome_waiters::token_revoked_type;
            m.body = outcome_waiters::token_revoked_body(c.me().token_hash);
            m.mandatory = false;  // no gateway listening: nothing to drop
            gateway_outbox().enqueue(w, m);
        }
        return 0;
    });
    forget_token(c.me().token_hash);
    http::response r;
    r.status = 204;
    r.content_type.clear();
    return r;
}

std::optional<http::response> api::impl::profile(context& c) {
    return in_transaction(pool, [&](pqxx::work& w) {
        auto r = w.exec_params("SELECT id, username, email, role, " + iso("created_at") + " FROM gateway.users WHERE id = $1",
                               c.me().id);
        if (r.empty()) fail_not_found("The user");
        json::writer j;
        j.start_object().kv("id", r[0][0].as<std::int64_t>()).kv("username", r[0][1].as<std::string>());
        j.kv("email", r[0][2].as<std::string>()).kv("role", r[0][3].as<std::string>());
        j.kv("created_at", r[0][4].as<std::string>()).end_object();
        return json_response(200, j.str());
    });
}

std::optional<http::response> api::impl::openapi(context&) {
    http::response r;
    r.body = std::string(openapi_json());
    r.headers.push_back({"Cache-Control", "public, max-age=300"});
    return r;
}

std::optional<http::response> api::impl::docs(context&) {
    http::response r;
    r.body = std::string(docs_html());
    r.content_type = "text/html; charset=utf-8";
    r.headers.push_back({"Cache-Control", "public, max-age=300"});
    r.headers.push_back({"Content-Security-Policy",
                         "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"});
    return r;
}

}  // namespace txp::gateway
