// The /v1/plaid/* routes: HTTP mapped onto plaid-sync's library (plaid_api.hpp), which does
// the Plaid calls and the DB writes; sync jobs go out through the gateway's own outbox.
#include "api_internal.hpp"

#include "plaid_api.hpp"

#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/plaid/client.hpp"
#include "txp/plaid/crypto.hpp"
#include "txp/plaid/webhook.hpp"

#include <algorithm>
#include <cctype>

namespace txp::gateway {

struct plaid_config {
    plaid::client_options client;
    plaid::token_cipher cipher;
    std::optional<std::string> webhook_url;
};

std::shared_ptr<const plaid_config> plaid_config_from_env() {
    // Plaid is optional for the gateway: off without a client id; once asked for, every
    // variable must be right (each reader throws config_error naming its variable).
    if (!config::get("TXP_PLAID_CLIENT_ID")) return nullptr;
    auto client = plaid::client_options::from_env();
    auto cipher = plaid::token_cipher::from_env("TXP_PLAID_TOKEN_KEY");
    std::optional<std::string> webhook;
    if (auto url = config::get("TXP_PLAID_WEBHOOK_URL"); url && !url->empty()) {
        if (url->rfind("https://", 0) != 0 && url->rfind("http://", 0) != 0) {
            throw config::config_error("TXP_PLAID_WEBHOOK_URL must be an http(s) URL");
        }
        webhook = *url;
    }
    return std::make_shared<const plaid_config>(plaid_config{std::move(client), std::move(cipher), std::move(webhook)});
}

// What the handlers share: the client, the verifier (with its key cache and replay memory)
// and the library's context, whose enqueue writes into gateway.outbox (the relay publishes it).
class plaid_gateway {
public:
    plaid_gateway(db::pool& pool, const plaid_config& cfg)
        : client_(cfg.client),
          verifier_(plaid::webhook_verifier::fetch_with(client_)),
          ctx_{pool, client_, cfg.cipher, plaid_sync::enqueue_into(gateway_outbox()), cfg.webhook_url} {}

    plaid_sync::api_context& ctx() { return ctx_; }
    plaid::webhook_verifier& verifier() { return verifier_; }

private:
    plaid::client client_;
    plaid::webhook_verifier verifier_;
    plaid_sync::api_context ctx_;
};

std::shared_ptr<plaid_gateway> make_plaid_gateway(db::pool& pool, const options& opts) {
    if (!opts.plaid) return nullptr;
    return std::make_shared<plaid_gateway>(pool, *opts.plaid);
}

namespace {

plaid_gateway& require_plaid(const std::shared_ptr<plaid_gateway>& p) {
    if (!p) {
        fail(503, "plaid-not-configured", "Plaid is not configured",
             "Bank linking is not configured on this server (TXP_PLAID_CLIENT_ID is unset).");
    }
    return *p;
}

// The library's request_error as a problem: its status, its type in the API's spelling.
template <typename F>
auto plaid_call(F&& fn) {
    try {
        return fn();
    } catch (const plaid_sync::request_error& e) {
        std::string type = e.type();
        std::replace(type.begin(), type.end(), '_', '-');
        std::string title = e.status() == 404 ? "Not Found"
                            : e.status() == 409 ? "Conflict"
                            : e.status() >= 500 ? "Bank connection unavailable"
                                                : "Invalid request";
        if (e.status() >= 500) {
            log::warn("plaid request failed", {{"type", e.type()}, {"status", static_cast<std::int64_t>(e.status())}});
        }
        std::vector<http::problem_member> extra;
        fail(e.status(), type, title, std::string(e.what()).substr(0, 300), extra);
    }
}

// Plaid ids are short [A-Za-z0-9_-] strings; anything else names nothing we have.
const std::string& plaid_id_param(const context& c, const char* name, std::string_view what) {
    auto it = c.params.find(name);
    if (it == c.params.end() || it->second.empty() || it->second.size() > 100 ||
        !std::all_of(it->second.begin(), it->second.end(),
                     [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'; })) {
        fail_not_found(what);
    }
    return it->second;
}

std::optional<std::string> plaid_id_query(const http::request& req, const char* name) {
    auto v = req.query_param(name);
    if (!v) return std::nullopt;
    if (v->empty() || v->size() > 100 ||
        !std::all_of(v->begin(), v->end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'; })) {
        fail_field(name, std::string(name) + " must be a Plaid id.");
    }
    return v;
}

std::optional<std::string> date_query(const http::request& req, const char* name) {
    auto v = req.query_param(name);
    if (!v) return std::nullopt;
    bool ok = v->size() == 10 && (*v)[4] == '-' && (*v)[7] == '-';
    for (std::size_t i = 0; ok && i < v->size(); ++i) {
        if (i != 4 && i != 7 && !std::isdigit(static_cast<unsigned char>((*v)[i]))) ok = false;
    }
    if (ok) {
        int month = std::stoi(v->substr(5, 2)), day = std::stoi(v->substr(8, 2));
        ok = month >= 1 && month <= 12 && day >= 1 && day <= 31;
    }
    if (!ok) fail_field(name, std::string(name) + " must be a date as YYYY-MM-DD.");
    return v;
}

template <typename T>
std::string json_array(const char* name, const std::vector<T>& xs) {
    std::string out = "{\"";
    out += name;
    out += "\":[";
    for (std::size_t i = 0; i < xs.size(); ++i) {
        if (i) out += ',';
        out += xs[i].to_json();
    }
    return out + "]}";
}

http::response no_content() {
    http::response r;
    r.status = 204;
    r.content_type.clear();
    return r;
}

}  // namespace

std::optional<http::response> api::impl::plaid_link_token(context& c) {
    auto& p = require_plaid(plaid);
    auto t = plaid_call([&] { return plaid_sync::create_link_token(p.ctx(), c.me().id); });
    json::writer j;
    j.start_object().kv("link_token", t.link_token).kv("expiration", t.expiration).end_object();
    return json_response(200, j.str());
}

std::optional<http::response> api::impl::plaid_exchange(context& c) {
    auto& p = require_plaid(plaid);
    auto doc = json_body(c.req, {"public_token"});
    auto public_token = json::require_string(doc, "public_token", 256);
    auto item = plaid_call([&] { return plaid_sync::exchange_public_token(p.ctx(), c.me().id, public_token, c.req.request_id); });
    log::info("plaid item linked", {{"item_id", item.item_id}, {"user_id", c.me().id}});
    return json_response(201, item.to_json());
}

std::optional<http::response> api::impl::plaid_sandbox_link(context& c) {
    auto& p = require_plaid(plaid);
    auto doc = json_body(c.req, {"institution_id", "username", "password"});
    plaid::sandbox_link_request r;
    if (auto ins = json::optional_string(doc, "institution_id", 64)) r.institution_id = *ins;
    r.override_username = json::optional_string(doc, "username", 128);
    r.override_password = json::optional_string(doc, "password", 128);
    auto item = plaid_call([&] { return plaid_sync::sandbox_link(p.ctx(), c.me().id, r, c.req.request_id); });
    log::info("plaid sandbox item linked", {{"item_id", item.item_id}, {"user_id", c.me().id}});
    return json_response(201, item.to_json());
}

std::optional<http::response> api::impl::plaid_items(context& c) {
    auto& p = require_plaid(plaid);
    auto items = plaid_call([&] { return plaid_sync::list_items(p.ctx().pool, c.me().id); });
    return json_response(200, json_array("items", items));
}

std::optional<http::response> api::impl::plaid_accounts(context& c) {
    auto& p = require_plaid(plaid);
    auto item = plaid_id_query(c.req, "item_id");
    auto accounts = plaid_call([&] { return plaid_sync::list_accounts(p.ctx().pool, c.me().id, item); });
    return json_response(200, json_array("accounts", accounts));
}

std::optional<http::response> api::impl::plaid_sync_item(context& c) {
    auto& p = require_plaid(plaid);
    const auto& item = plaid_id_param(c, "id", "The item");
    plaid_call([&] { plaid_sync::request_sync(p.ctx(), c.me().id, item, c.req.request_id); });
    json::writer j;
    j.start_object().kv("item_id", item).kv("status", "sync_queued").end_object();
    return json_response(202, j.str());
}

std::optional<http::response> api::impl::plaid_refresh_balance(context& c) {
    auto& p = require_plaid(plaid);
    const auto& account = plaid_id_param(c, "id", "The account");
    auto a = plaid_call([&] { return plaid_sync::refresh_balance(p.ctx(), c.me().id, account); });
    return json_response(200, a.to_json());
}

std::optional<http::response> api::impl::plaid_remove_item(context& c) {
    auto& p = require_plaid(plaid);
    const auto& item = plaid_id_param(c, "id", "The item");
    plaid_call([&] { plaid_sync::remove_item(p.ctx(), c.me().id, item, c.req.request_id); });
    log::info("plaid item removed", {{"item_id", item}, {"user_id", c.me().id}});
    return no_content();
}

std::optional<http::response> api::impl::plaid_transactions(context& c) {
    auto& p = require_plaid(plaid);
    plaid_sync::transaction_filter f;
    f.account_id = plaid_id_query(c.req, "account_id");
    f.item_id = plaid_id_query(c.req, "item_id");
    f.start_date = date_query(c.req, "start_date");
    f.end_date = date_query(c.req, "end_date");
    constexpr std::int64_t max_minor = 1'000'000'000'000'000;
    f.min_amount = int_query(c.req, "min_amount", -max_minor, max_minor);
    f.max_amount = int_query(c.req, "max_amount", -max_minor, max_minor);
    if (auto cat = c.req.query_param("category")) {
        if (cat->empty() || cat->size() > 100) fail_field("category", "category must be 1 to 100 characters.");
        f.category = *cat;
    }
    if (auto pending = c.req.query_param("pending")) {
        if (*pending != "true" && *pending != "false") fail_field("pending", "pending must be true or false.");
        f.pending = *pending == "true";
    }
    f.limit = static_cast<int>(int_query(c.req, "limit", 1, 500).value_or(100));
    f.after = plaid_id_query(c.req, "after");
    auto page = plaid_call([&] { return plaid_sync::list_transactions(p.ctx().pool, c.me().id, f); });
    return json_response(200, page.to_json());
}

std::optional<http::response> api::impl::plaid_link_wallet(context& c) {
    auto& p = require_plaid(plaid);
    const auto& account = plaid_id_param(c, "id", "The account");
    auto doc = json_body(c.req, {"wallet_id"});
    if (!json::has(doc, "wallet_id")) fail_field("wallet_id", "wallet_id is required (null unlinks).");
    std::optional<std::int64_t> wallet;
    if (!doc["wallet_id"].IsNull()) {
        wallet = json::require_int(doc, "wallet_id");
        // Someone else's wallet is answered like one that does not exist.
        bool mine = single_read(pool, [&](pqxx::nontransaction& n) {
            return !n.exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1 AND owner_id = $2", *wallet, c.me().id).empty();
        });
        if (!mine) fail_not_found("The wallet");
    }
    auto a = plaid_call([&] { return plaid_sync::link_account_to_wallet(p.ctx(), c.me().id, account, wallet); });
    return json_response(200, a.to_json());
}

std::optional<http::response> api::impl::plaid_webhook(context& c) {
    auto& p = require_plaid(plaid);
    // Verified on the raw bytes before anything reads them.
    auto verdict = p.verifier().verify(c.req.header_value("Plaid-Verification"), c.req.body);
    if (verdict == plaid::webhook_verdict::key_unavailable) {
        auto r = http::problem(503, "plaid-key-unavailable", "Service Unavailable",
                               "The webhook verification key cannot be fetched from Plaid now; retry.", c.req.request_id);
        r.headers.push_back({"Retry-After", "5"});
        return r;
    }
    if (verdict != plaid::webhook_verdict::ok) {
        log::warn("plaid webhook refused", {{"verdict", plaid::to_string(verdict)}});
        fail(401, "webhook-unverified", "Unauthorized", std::string("The webhook was not verified: ") + plaid::to_string(verdict) + ".");
    }
    auto out = plaid_call([&] { return plaid_sync::handle_webhook(p.ctx(), c.req.body, c.req.request_id); });
    log::info("plaid webhook accepted", {{"action", out.action}, {"item_id", out.item_id.value_or("")}});
    json::writer j;
    j.start_object().kv("action", out.action).kv_opt("item_id", out.item_id).end_object();
    return json_response(200, j.str());
}

}  // namespace txp::gateway
