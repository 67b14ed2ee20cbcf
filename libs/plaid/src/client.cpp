// The Plaid API client (see client.hpp).
#include "txp/plaid/client.hpp"

#include "txp/common/config.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/http/client.hpp"

#include <rapidjson/document.h>

#include <chrono>

namespace txp::plaid {

namespace {

using doc_t = rapidjson::Document;
using val_t = rapidjson::Value;

[[noreturn]] void bad_response(std::string_view endpoint, const std::string& what) {
    throw api_error(std::string(endpoint), 200, "INVALID_RESULT", "INVALID_RESPONSE", what, std::nullopt, "");
}

doc_t parse_exact(std::string_view body, std::string_view endpoint) {
    doc_t d;
    d.Parse<rapidjson::kParseNumbersAsStringsFlag>(body.data(), body.size());
    if (d.HasParseError() || !d.IsObject()) bad_response(endpoint, "the response is not a JSON object");
    return d;
}

const val_t* member(const val_t& o, const char* k) {
    if (!o.IsObject()) return nullptr;
    auto it = o.FindMember(k);
    return it == o.MemberEnd() ? nullptr : &it->value;
}

// With kParseNumbersAsStringsFlag, numbers are strings in the DOM: the caller knows which
// fields are numeric, and their text is exact.
std::string str(const val_t& o, const char* k, std::string_view ep) {
    auto v = member(o, k);
    if (!v || !v->IsString()) bad_response(ep, std::string("missing or non-string field ") + k);
    return std::string(v->GetString(), v->GetStringLength());
}

std::optional<std::string> opt_str(const val_t& o, const char* k) {
    auto v = member(o, k);
    if (!v || !v->IsString()) return std::nullopt;
    return std::string(v->GetString(), v->GetStringLength());
}

bool boolean(const val_t& o, const char* k, std::string_view ep) {
    auto v = member(o, k);
    if (!v || !v->IsBool()) bad_response(ep, std::string("missing or non-boolean field ") + k);
    return v->GetBool();
}

account parse_account(const val_t& a, std::string_view ep) {
    account r;
    r.account_id = str(a, "account_id", ep);
    r.name = str(a, "name", ep);
    r.official_name = opt_str(a, "official_name");
    r.mask = opt_str(a, "mask");
    r.type = str(a, "type", ep);
    r.subtype = opt_str(a, "subtype");
    auto b = member(a, "balances");
    if (!b || !b->IsObject()) bad_response(ep, "account without balances");
    r.balances.available = opt_str(*b, "available");
    r.balances.current = opt_str(*b, "current");
    r.balances.limit = opt_str(*b, "limit");
    r.balances.iso_currency_code = opt_str(*b, "iso_currency_code");
    r.balances.unofficial_currency_code = opt_str(*b, "unofficial_currency_code");
    return r;
}

transaction parse_transaction(const val_t& t, std::string_view ep) {
    transaction r;
    r.transaction_id = str(t, "transaction_id", ep);
    r.account_id = str(t, "account_id", ep);
    r.amount = str(t, "amount", ep);
    r.iso_currency_code = opt_str(t, "iso_currency_code");
    r.unofficial_currency_code = opt_str(t, "unofficial_currency_code");
    r.date = str(t, "date", ep);
    r.authorized_date = opt_str(t, "authorized_date");
    r.name = opt_str(t, "name").value_or("");
    r.merchant_name = opt_str(t, "merchant_name");
    r.pending = boolean(t, "pending", ep);
    r.pending_transaction_id = opt_str(t, "pending_transaction_id");
    r.payment_channel = opt_str(t, "payment_channel").value_or("other");
    if (auto pfc = member(t, "personal_finance_category"); pfc && pfc->IsObject()) {
        r.category_primary = opt_str(*pfc, "primary");
        r.category_detailed = opt_str(*pfc, "detailed");
    }
    return r;
}

std::vector<account> parse_accounts_array(const val_t& root, std::string_view ep) {
    std::vector<account> out;
    auto a = member(root, "accounts");
    if (!a || !a->IsArray()) bad_response(ep, "missing accounts");
    for (const auto& x : a->GetArray()) out.push_back(parse_account(x, ep));
    return out;
}

item_info parse_item(const val_t& root, std::string_view ep) {
    auto it = member(root, "item");
    if (!it || !it->IsObject()) bad_response(ep, "missing item");
    item_info i;
    i.item_id = str(*it, "item_id", ep);
    i.institution_id = opt_str(*it, "institution_id");
    i.institution_name = opt_str(*it, "institution_name");
    i.webhook = opt_str(*it, "webhook");
    i.update_type = opt_str(*it, "update_type").value_or("");
    if (auto e = member(*it, "error"); e && e->IsObject()) i.error_code = opt_str(*e, "error_code");
    return i;
}

std::string render_array(const std::vector<std::string>& v) {
    json::writer w;
    w.start_array();
    for (const auto& s : v) w.str(s);
    w.end_array();
    return w.str();
}

metrics::histogram& latency(std::string_view endpoint) {
    return metrics::global().get_histogram("txp_plaid_request_seconds", "Plaid API call latency",
                                           {{"endpoint", std::string(endpoint)}});
}

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

}  // namespace

const char* to_string(error_class c) {
    switch (c) {
        case error_class::item_login_required: return "item_login_required";
        case error_class::invalid_access_token: return "invalid_access_token";
        case error_class::product_not_ready: return "product_not_ready";
        case error_class::mutation_during_pagination: return "mutation_during_pagination";
        case error_class::invalid_cursor: return "invalid_cursor";
        case error_class::rate_limited: return "rate_limited";
        case error_class::server_error: return "server_error";
        case error_class::transport: return "transport";
        case error_class::invalid_response: return "invalid_response";
        case error_class::permanent: return "permanent";
    }
    return "?";
}

error_class classify(unsigned http_status, std::string_view type, std::string_view code, std::string_view message) {
    if (http_status == 0) return error_class::transport;
    if (code == "ITEM_LOGIN_REQUIRED") return error_class::item_login_required;
    if (code == "INVALID_ACCESS_TOKEN") return error_class::invalid_access_token;
    if (code == "PRODUCT_NOT_READY") return error_class::product_not_ready;
    if (code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION") return error_class::mutation_during_pagination;
    if (code == "INVALID_FIELD" && message.find("cursor") != std::string_view::npos) return error_class::invalid_cursor;
    if (code == "INVALID_RESPONSE") return error_class::invalid_response;
    if (type == "RATE_LIMIT_EXCEEDED" || http_status == 429) return error_class::rate_limited;
    if (type == "API_ERROR" || type == "INSTITUTION_ERROR" || http_status >= 500) return error_class::server_error;
    return error_class::permanent;
}

api_error::api_error(std::string endpoint, unsigned http_status, std::string error_type, std::string error_code,
                     std::string error_message, std::optional<std::string> display_message, std::string request_id)
    : std::runtime_error("plaid " + endpoint + ": " + (http_status ? std::to_string(http_status) : std::string("transport")) +
                         " " + error_type + " " + error_code + ": " + error_message +
                         (request_id.empty() ? std::string() : " (request_id " + request_id + ")")),
      endpoint_(std::move(endpoint)),
      http_status_(http_status),
      error_type_(std::move(error_type)),
      error_code_(std::move(error_code)),
      error_message_(std::move(error_message)),
      display_message_(std::move(display_message)),
      request_id_(std::move(request_id)),
      class_(classify(http_status_, error_type_, error_code_, error_message_)) {}

bool api_error::retryable() const {
    switch (class_) {
        case error_class::product_not_ready:
        case error_class::rate_limited:
        case error_class::server_error:
        case error_class::transport:
        case error_class::invalid_response:
        case error_class::mutation_during_pagination:
            return true;
        default:
            return false;
    }
}

client_options client_options::from_env() {
    client_options o;
    if (auto url = config::get("TXP_PLAID_BASE_URL")) {
        o.base_url = *url;
    } else {
        auto env = config::get_string("TXP_PLAID_ENV", "sandbox");
        if (env == "sandbox") o.base_url = "https://sandbox.plaid.com";
        else if (env == "production") o.base_url = "https://production.plaid.com";
        else throw config::config_error("TXP_PLAID_ENV must be sandbox or production (or set TXP_PLAID_BASE_URL)");
    }
    try {
        auto u = http::url::parse(o.base_url);
        if (u.scheme == "http" && !is_loopback(u.host)) {
            throw config::config_error("TXP_PLAID_BASE_URL: plain http is only allowed for a loopback emulator; use https");
        }
    } catch (const std::invalid_argument& e) {
        throw config::config_error(std::string("TXP_PLAID_BASE_URL is not an http(s) URL: ") + e.what());
    }
    while (!o.base_url.empty() && o.base_url.back() == '/') o.base_url.pop_back();
    o.client_id = config::require_string("TXP_PLAID_CLIENT_ID");
    o.secret = config::require_string("TXP_PLAID_SECRET");
    o.timeout = config::get_duration("TXP_PLAID_TIMEOUT", std::chrono::milliseconds(30000));
    return o;
}

client::client(client_options opts) : opts_(std::move(opts)) {
    while (!opts_.base_url.empty() && opts_.base_url.back() == '/') opts_.base_url.pop_back();
}

std::string client::post(std::string_view endpoint, std::string_view body_json) {
    http::client_request req;
    req.method = "POST";
    req.url = opts_.base_url + std::string(endpoint);
    req.timeout = opts_.timeout;
    req.verify_tls = true;
    req.headers = {{"PLAID-CLIENT-ID", opts_.client_id}, {"PLAID-SECRET", opts_.secret}, {"Plaid-Version", api_version},
                   {"User-Agent", "txp-plaid/0.1"}};
    if (opts_.credentials_in_body && body_json.size() >= 2) {
        json::writer w;
        w.start_object().kv("client_id", opts_.client_id).kv("secret", opts_.secret).end_object();
        std::string creds = w.str();
        std::string rest(body_json.substr(1));
        req.body = creds.substr(0, creds.size() - 1) + (rest == "}" ? "}" : "," + rest);
    } else {
        req.body = std::string(body_json);
    }
    auto start = std::chrono::steady_clock::now();
    http::client_response resp;
    try {
        resp = http::fetch(req);
    } catch (const http::client_error& e) {
        throw api_error(std::string(endpoint), 0, "TRANSPORT", http::to_string(e.k), e.what(), std::nullopt, "");
    }
    latency(endpoint).observe_us(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
    if (resp.status == 200) return std::move(resp.body);

    // Plaid's error body; anything else (a proxy's HTML page) still becomes a typed error.
    doc_t d;
    d.Parse(resp.body.data(), resp.body.size());
    std::string type = "API_ERROR", code = "HTTP_" + std::to_string(resp.status), message = "unexpected response", request_id;
    std::optional<std::string> display;
    if (!d.HasParseError() && d.IsObject()) {
        type = opt_str(d, "error_type").value_or(type);
        code = opt_str(d, "error_code").value_or(code);
        message = opt_str(d, "error_message").value_or(message);
        display = opt_str(d, "display_message");
        request_id = opt_str(d, "request_id").value_or("");
    }
    throw api_error(std::string(endpoint), resp.status, type, code, message, display, request_id);
}

link_token client::link_token_create(const link_token_request& r) {
    json::writer w;
    w.start_object().kv("client_name", r.client_name).kv("language", r.language);
    w.raw("country_codes", render_array(r.country_codes));
    w.key("user").start_object().kv("client_user_id", r.client_user_id).end_object();
    if (r.access_token) w.kv("access_token", *r.access_token);
    else w.raw("products", render_array(r.products));
    if (r.webhook) w.kv("webhook", *r.webhook);
    w.key("transactions").start_object().kv("days_requested", r.days_requested).end_object();
    w.end_object();
    const char* ep = "/link/token/create";
    auto d = parse_exact(post(ep, w.str()), ep);
    return {str(d, "link_token", ep), str(d, "expiration", ep)};
}

std::string client::sandbox_public_token_create(const sandbox_link_request& r) {
    json::writer w;
    w.start_object().kv("institution_id", r.institution_id);
    w.raw("initial_products", render_array(r.initial_products));
    w.key("options").start_object();
    if (r.webhook) w.kv("webhook", *r.webhook);
    if (r.override_username) w.kv("override_username", *r.override_username);
    if (r.override_password) w.kv("override_password", *r.override_password);
    w.end_object().end_object();
    const char* ep = "/sandbox/public_token/create";
    auto d = parse_exact(post(ep, w.str()), ep);
    return str(d, "public_token", ep);
}

exchange_result client::item_public_token_exchange(const std::string& public_token) {
    json::writer w;
    w.start_object().kv("public_token", public_token).end_object();
    const char* ep = "/item/public_token/exchange";
    auto d = parse_exact(post(ep, w.str()), ep);
    return {str(d, "access_token", ep), str(d, "item_id", ep)};
}

namespace {
std::string token_body(const std::string& access_token) {
    json::writer w;
    w.start_object().kv("access_token", access_token).end_object();
    return w.str();
}
}  // namespace

item_info client::item_get(const std::string& access_token) {
    const char* ep = "/item/get";
    auto d = parse_exact(post(ep, token_body(access_token)), ep);
    return parse_item(d, ep);
}

void client::item_remove(const std::string& access_token) { post("/item/remove", token_body(access_token)); }

accounts_result client::accounts_get(const std::string& access_token) {
    return parse_accounts(post("/accounts/get", token_body(access_token)));
}

accounts_result client::accounts_balance_get(const std::string& access_token, const std::vector<std::string>& account_ids) {
    json::writer w;
    w.start_object().kv("access_token", access_token);
    if (!account_ids.empty()) w.key("options").start_object().raw("account_ids", render_array(account_ids)).end_object();
    w.end_object();
    return parse_accounts(post("/accounts/balance/get", w.str()));
}

sync_page client::transactions_sync(const std::string& access_token, const std::string& cursor, int count) {
    json::writer w;
    w.start_object().kv("access_token", access_token);
    if (!cursor.empty()) w.kv("cursor", cursor);
    w.kv("count", count).end_object();
    return parse_sync_page(post("/transactions/sync", w.str()));
}

void client::transactions_refresh(const std::string& access_token) {
    post("/transactions/refresh", token_body(access_token));
}

bool client::sandbox_item_fire_webhook(const std::string& access_token, const std::string& code, const std::string& type) {
    json::writer w;
    w.start_object().kv("access_token", access_token).kv("webhook_code", code);
    if (!type.empty()) w.kv("webhook_type", type);
    w.end_object();
    const char* ep = "/sandbox/item/fire_webhook";
    auto d = parse_exact(post(ep, w.str()), ep);
    return boolean(d, "webhook_fired", ep);
}

bool client::sandbox_item_reset_login(const std::string& access_token) {
    const char* ep = "/sandbox/item/reset_login";
    auto d = parse_exact(post(ep, token_body(access_token)), ep);
    return boolean(d, "reset_login", ep);
}

std::optional<jwk> client::webhook_verification_key_get(const std::string& key_id) {
    json::writer w;
    w.start_object().kv("key_id", key_id).end_object();
    const char* ep = "/webhook_verification_key/get";
    std::string body;
    try {
        body = post(ep, w.str());
    } catch (const api_error& e) {
        if (e.http_status() >= 400 && e.http_status() < 500 && e.classification() == error_class::permanent) return std::nullopt;
        throw;
    }
    auto d = parse_exact(body, ep);
    auto k = member(d, "key");
    if (!k || !k->IsObject()) bad_response(ep, "missing key");
    jwk j;
    j.alg = str(*k, "alg", ep);
    j.kid = str(*k, "kid", ep);
    j.kty = str(*k, "kty", ep);
    j.crv = str(*k, "crv", ep);
    j.x = str(*k, "x", ep);
    j.y = str(*k, "y", ep);
    j.use = str(*k, "use", ep);
    try {
        j.created_at = std::stoll(str(*k, "created_at", ep));
        if (auto e = opt_str(*k, "expired_at")) j.expired_at = std::stoll(*e);
    } catch (const std::logic_error&) {
        bad_response(ep, "key timestamps are not integers");
    }
    return j;
}

sync_page parse_sync_page(std::string_view body) {
    const char* ep = "/transactions/sync";
    auto d = parse_exact(body, ep);
    sync_page p;
    for (const char* k : {"added", "modified", "removed"}) {
        auto a = member(d, k);
        if (!a || !a->IsArray()) bad_response(ep, std::string("missing ") + k);
    }
    for (const auto& t : d["added"].GetArray()) p.added.push_back(parse_transaction(t, ep));
    for (const auto& t : d["modified"].GetArray()) p.modified.push_back(parse_transaction(t, ep));
    for (const auto& t : d["removed"].GetArray()) {
        p.removed.push_back({str(t, "transaction_id", ep), opt_str(t, "account_id").value_or("")});
    }
    if (member(d, "accounts")) p.accounts = parse_accounts_array(d, ep);
    p.next_cursor = str(d, "next_cursor", ep);
    p.has_more = boolean(d, "has_more", ep);
    p.update_status = opt_str(d, "transactions_update_status").value_or("");
    p.request_id = opt_str(d, "request_id").value_or("");
    return p;
}

accounts_result parse_accounts(std::string_view body) {
    const char* ep = "/accounts/get";
    auto d = parse_exact(body, ep);
    accounts_result r;
    r.accounts = parse_accounts_array(d, ep);
    r.item = parse_item(d, ep);
    return r;
}

}  // namespace txp::plaid
