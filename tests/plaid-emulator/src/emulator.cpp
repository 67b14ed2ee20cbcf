// The Plaid emulator's server: Plaid endpoints, control endpoints, faults and webhooks.
#include "plaid_emulator/emulator.hpp"

#include "model.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/money.hpp"
#include "txp/http/client.hpp"
#include "txp/http/server.hpp"
#include "txp/plaid/crypto.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace txp::plaid_emulator {

namespace {

using json_doc = rapidjson::Document;
using json_val = rapidjson::Value;

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::string iso_seconds(std::int64_t offset_s = 0) {
    auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + std::chrono::seconds(offset_s));
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

const json_val* member(const json_val& o, const char* k) {
    if (!o.IsObject()) return nullptr;
    auto it = o.FindMember(k);
    return it == o.MemberEnd() ? nullptr : &it->value;
}

std::optional<std::string> str_member(const json_val& o, const char* k) {
    auto v = member(o, k);
    if (!v || !v->IsString()) return std::nullopt;
    return std::string(v->GetString(), v->GetStringLength());
}

void raw_number(json::writer& w, std::string_view key, const std::string& text) {
    w.key(key);
    w.w().RawValue(text.data(), text.size(), rapidjson::kNumberType);
}

void opt_cents(json::writer& w, std::string_view key, const std::optional<std::int64_t>& v) {
    if (v) raw_number(w, key, cents_text(*v));
    else w.key(key).null();
}

// A Plaid error, as the API answers it.
struct plaid_failure {
    unsigned status;
    std::string type, code, message;
    std::optional<std::string> display_message;
};

plaid_failure error_for_code(const std::string& code) {
    static const std::set<std::string> institution{"INSTITUTION_DOWN", "INSTITUTION_NOT_RESPONDING", "INSTITUTION_NOT_AVAILABLE",
                                                   "INSTITUTION_NO_LONGER_SUPPORTED"};
    if (code == "ITEM_LOGIN_REQUIRED") {
        return {400, "ITEM_ERROR", code,
                "the login details of this item have changed (credentials, MFA, or required user action) and a user login "
                "is required to update this information. use Link's update mode to restore the item to a good state",
                "To keep your account connected, please sign in again."};
    }
    if (institution.count(code)) return {400, "INSTITUTION_ERROR", code, "this institution is not currently responding", std::nullopt};
    if (code == "INTERNAL_SERVER_ERROR") return {500, "API_ERROR", code, "an unexpected error occurred", std::nullopt};
    if (code == "INVALID_CREDENTIALS") {
        return {400, "ITEM_ERROR", code, "the provided credentials were not correct",
                "The credentials you provided were incorrect. Check that your credentials are the same that you use for this institution"};
    }
    return {400, "ITEM_ERROR", code, "the item is in an error state: " + code, std::nullopt};
}

struct fault {
    int id;
    std::string type;      // rate_limit, server_error, planned_maintenance, item_login_required,
                           // mutation_during_pagination, product_not_ready, invalid_access_token, latency
    std::string endpoint;  // "" = every Plaid endpoint
    std::string item_id;   // "" = every item
    int remaining;         // -1 = until cleared
    int page;              // mutation_during_pagination: the /transactions/sync page (1-based) that fails
    int latency_ms;
};

struct outgoing_webhook {
    std::int64_t due_ms;
    std::string url;
    std::string body;
    std::string item_id;
};

struct webhook_record {
    std::string url, code, item_id;
    unsigned status;
};

constexpr const char* institutions[][2] = {
    {"ins_109508", "First Platypus Bank"},           {"ins_109509", "First Gingham Credit Union"},
    {"ins_109510", "Tattersall Federal Credit Union"}, {"ins_109511", "Tartan Bank"},
    {"ins_109512", "Houndstooth Bank"},               {"ins_43", "Chase"},
};

const char* institution_name(const std::string& id) {
    for (const auto& i : institutions)
        if (id == i[0]) return i[1];
    return nullptr;
}

}  // namespace

struct emulator::impl {
    options opts;
    std::unique_ptr<http::server> server;

    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, item_state> items;
    std::map<std::string, std::string> by_token;
    struct public_token_state {
        std::string institution_id, username, webhook;
        std::int64_t created;
        bool used = false;
    };
    std::map<std::string, public_token_state> public_tokens;
    std::int64_t next_ordinal = 0;
    std::mt19937_64 id_rng;
    int transactions_per_item;
    std::string webhook_url;
    int not_ready_ms = 0;
    std::vector<fault> faults;
    int next_fault_id = 0;
    std::map<std::string, std::map<unsigned, std::int64_t>> stats;
    std::int64_t webhooks_sent = 0, webhooks_failed = 0;
    std::deque<webhook_record> webhook_log;

    plaid::es256_signer key;
    std::string kid;
    std::int64_t key_created;
    std::deque<outgoing_webhook> webhooks;
    bool stopping = false;
    std::thread sender;

    explicit impl(options o)
        : opts(std::move(o)),
          id_rng(opts.deterministic_ids ? opts.seed * 7919 + 1 : std::random_device{}() ^ (static_cast<std::uint64_t>(ids::unix_micros()) << 1)),
          transactions_per_item(opts.transactions_per_item),
          webhook_url(opts.webhook_url),
          kid(ids::uuid_v4()),
          key_created(ids::unix_seconds()) {}

    // ---- responses ---------------------------------------------------------------------

    std::string request_id() {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        return random_id(rng, 15);
    }

    http::response reply(unsigned status, std::string body) {
        http::response r;
        r.status = status;
        r.content_type = "application/json; charset=utf-8";
        r.headers.push_back({"Plaid-Version", "2020-09-14"});
        r.body = std::move(body);
        return r;
    }

    std::string error_body(const plaid_failure& f, const std::string& rid) {
        std::string slug;
        for (char c : f.type) slug += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        json::writer w;
        w.start_object();
        w.kv_opt("display_message", f.display_message);
        w.kv("documentation_url", "https://plaid.com/docs/errors/" + slug + "/#" + f.code);
        w.kv("error_code", f.code);
        w.key("error_code_reason").null();
        w.kv("error_message", f.message);
        w.kv("error_type", f.type);
        w.kv("request_id", rid);
        w.key("suggested_action").null();
        w.end_object();
        return w.str();
    }

    http::response fail(const plaid_failure& f) { return reply(f.status, error_body(f, request_id())); }
    http::response fail(unsigned status, const char* type, const char* code, std::string message) {
        return fail({status, type, code, std::move(message), std::nullopt});
    }

    // ---- JSON shapes -------------------------------------------------------------------

    void write_account(json::writer& w, const account_state& a) {
        w.start_object();
        w.kv("account_id", a.account_id);
        w.key("balances").start_object();
        opt_cents(w, "available", a.available);
        opt_cents(w, "current", a.current);
        w.kv("iso_currency_code", "USD");
        opt_cents(w, "limit", a.limit);
        w.key("unofficial_currency_code").null();
        w.end_object();
        w.kv("holder_category", "personal");
        w.kv("mask", a.mask).kv("name", a.name).kv("official_name", a.official_name);
        w.kv("subtype", a.subtype).kv("type", a.type);
        w.end_object();
    }

    void write_transaction(json::writer& w, const transaction_state& t) {
        w.start_object();
        w.kv("account_id", t.account_id);
        w.key("account_owner").null();
        raw_number(w, "amount", cents_text(t.cents));
        w.kv_opt("authorized_date", t.authorized_date);
        w.key("authorized_datetime").null();
        w.key("check_number").null();
        w.key("counterparties").start_array();
        if (t.merchant_name) {
            w.start_object().key("confidence_level").str("VERY_HIGH").key("entity_id").null();
            w.key("logo_url").null().kv("name", *t.merchant_name).kv("type", "merchant").key("website").null().end_object();
        }
        w.end_array();
        w.kv("date", t.date);
        w.key("datetime").null();
        w.kv("iso_currency_code", "USD");
        w.key("location").start_object();
        w.key("address").null();
        w.kv_opt("city", t.city);
        w.kv_opt("country", t.city ? std::optional<std::string>("US") : std::nullopt);
        w.key("lat").null().key("lon").null().key("postal_code").null();
        w.kv_opt("region", t.region);
        w.key("store_number").null();
        w.end_object();
        w.key("logo_url").null();
        w.key("merchant_entity_id").null();
        w.kv_opt("merchant_name", t.merchant_name);
        w.kv("name", t.name);
        w.kv("payment_channel", t.payment_channel);
        w.key("payment_meta").start_object();
        for (const char* k : {"by_order_of", "payee", "payer", "payment_method", "payment_processor", "ppd_id", "reason",
                              "reference_number"}) {
            w.key(k).null();
        }
        w.end_object();
        w.kv("pending", t.pending);
        w.kv_opt("pending_transaction_id", t.pending_transaction_id);
        w.key("personal_finance_category").start_object();
        w.kv("confidence_level", "VERY_HIGH").kv("detailed", t.pfc_detailed).kv("primary", t.pfc_primary).end_object();
        w.kv("personal_finance_category_icon_url", "https://plaid-category-icons.plaid.com/PFC_" + t.pfc_primary + ".png");
        w.key("transaction_code").null();
        w.kv("transaction_id", t.transaction_id);
        w.kv("transaction_type", t.transaction_type);
        w.key("unofficial_currency_code").null();
        w.key("website").null();
        w.end_object();
    }

    void write_error_object(json::writer& w, const item_error& e) {
        w.start_object();
        w.kv_opt("display_message", e.display_message);
        w.kv("error_code", e.code);
        w.kv("error_message", e.message);
        w.kv("error_type", e.type);
        w.kv("status", static_cast<std::int64_t>(e.status));
        w.end_object();
    }

    void write_item(json::writer& w, const item_state& it, bool consent_fields) {
        w.start_object();
        w.raw("available_products", R"(["auth","balance","identity","investments","liabilities"])");
        w.raw("billed_products", R"(["transactions"])");
        w.key("consent_expiration_time").null();
        if (consent_fields) {
            w.raw("consented_products", R"(["transactions"])");
            w.kv("created_at", it.created_at);
        }
        w.key("error");
        if (it.error) write_error_object(w, *it.error);
        else w.null();
        w.kv("institution_id", it.institution_id).kv("institution_name", it.institution_name);
        w.kv("item_id", it.item_id);
        w.raw("products", R"(["transactions"])");
        w.kv("update_type", "background");
        w.kv("webhook", it.webhook);
        w.end_object();
    }

    // ---- webhooks ----------------------------------------------------------------------

    void queue_webhook(item_state& it, std::string body, const std::string& code, std::int64_t delay_ms = 0) {
        std::string url = webhook_url.empty() ? it.webhook : webhook_url;
        it.last_webhook_code = code;
        it.last_webhook_at = iso_seconds();
        if (url.empty()) return;
        webhooks.push_back({steady_ms() + delay_ms, url, std::move(body), it.item_id});
        cv.notify_all();
    }

    std::string webhook_body(const item_state& it, const std::string& type, const std::string& code,
                             const std::function<void(json::writer&)>& extra = nullptr) {
        json::writer w;
        w.start_object();
        w.kv("environment", "sandbox");
        if (extra) extra(w);
        w.kv("item_id", it.item_id);
        w.kv("webhook_code", code).kv("webhook_type", type);
        w.end_object();
        return w.str();
    }

    void fire(item_state& it, const std::string& code, std::int64_t delay_ms = 0, std::int64_t new_count = 0) {
        std::string type = "TRANSACTIONS";
        std::function<void(json::writer&)> extra;
        if (code == "SYNC_UPDATES_AVAILABLE") {
            extra = [](json::writer& w) { w.kv("historical_update_complete", true).kv("initial_update_complete", true); };
        } else if (code == "DEFAULT_UPDATE" || code == "INITIAL_UPDATE" || code == "HISTORICAL_UPDATE") {
            extra = [new_count](json::writer& w) { w.key("error").null(); w.kv("new_transactions", new_count); };
        } else if (code == "ERROR" || code == "USER_PERMISSION_REVOKED") {
            type = "ITEM";
            item_error e = it.error.value_or(item_error{400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED",
                                                        error_for_code("ITEM_LOGIN_REQUIRED").message, std::nullopt});
            if (code == "USER_PERMISSION_REVOKED") e = {400, "ITEM_ERROR", "USER_PERMISSION_REVOKED", "the user revoked access to this item", std::nullopt};
            extra = [this, e](json::writer& w) { w.key("error"); write_error_object(w, e); };
        } else if (code == "PENDING_EXPIRATION") {
            type = "ITEM";
            extra = [](json::writer& w) { w.kv("consent_expiration_time", iso_seconds(7 * 24 * 3600)); };
        } else if (code == "PENDING_DISCONNECT") {
            type = "ITEM";
            extra = [](json::writer& w) { w.kv("reason", "INSTITUTION_MIGRATION"); };
        } else if (code == "LOGIN_REPAIRED" || code == "NEW_ACCOUNTS_AVAILABLE" || code == "USER_ACCOUNT_REVOKED" ||
                   code == "WEBHOOK_UPDATE_ACKNOWLEDGED") {
            type = "ITEM";
        } else if (code == "PRODUCT_READY") {
            type = "INCOME";
        } else if (code == "RECURRING_TRANSACTIONS_UPDATE") {
            type = "TRANSACTIONS";
        } else if (code == "AUTHORIZATION_GRANTED" || code == "SMS_MICRODEPOSITS_VERIFICATION") {
            type = "AUTH";
        }
        queue_webhook(it, webhook_body(it, type, code, extra), code, delay_ms);
    }

    void send_loop() {
        std::unique_lock lk(mu);
        while (true) {
            if (stopping) return;
            auto now = steady_ms();
            auto next = std::min_element(webhooks.begin(), webhooks.end(),
                                         [](const auto& a, const auto& b) { return a.due_ms < b.due_ms; });
            if (next == webhooks.end()) {
                cv.wait(lk);
                continue;
            }
            if (next->due_ms > now) {
                cv.wait_for(lk, std::chrono::milliseconds(next->due_ms - now));
                continue;
            }
            auto wh = std::move(*next);
            webhooks.erase(next);
            lk.unlock();
            std::string payload = R"({"iat":)" + std::to_string(ids::unix_seconds()) + R"(,"request_body_sha256":")" +
                                  plaid::sha256_hex(wh.body) + R"("})";
            http::client_request req;
            req.method = "POST";
            req.url = wh.url;
            req.body = wh.body;
            req.timeout = std::chrono::seconds(10);
            req.headers = {{"Plaid-Verification", plaid::es256_compact_jws(key, kid, payload)}};
            unsigned status = 0;
            try {
                status = http::fetch(req).status;
            } catch (const std::exception& e) {
                log::warn("webhook delivery failed", {{"url", wh.url}, {"error", e.what()}});
            }
            lk.lock();
            (status == 200 ? webhooks_sent : webhooks_failed)++;
            rapidjson::Document d;
            d.Parse(wh.body.c_str());
            webhook_log.push_back({wh.url, str_member(d, "webhook_code").value_or(""), wh.item_id, status});
            if (webhook_log.size() > 200) webhook_log.pop_front();
        }
    }

    // ---- items ---------------------------------------------------------------------------

    item_state& create_item(const public_token_state& pt) {
        item_state it;
        it.ordinal = ++next_ordinal;
        it.rng.seed(opts.seed * 1'000'003 + static_cast<std::uint64_t>(it.ordinal));
        it.id_rng.seed(opts.deterministic_ids ? opts.seed * 31 + static_cast<std::uint64_t>(it.ordinal) : id_rng());
        it.item_id = random_id(it.id_rng);
        std::string hex;
        for (int i = 0; i < 4; ++i) {
            char buf[17];
            std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(it.id_rng()));
            hex += buf;
        }
        it.access_token = "access-sandbox-" + hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-4" + hex.substr(13, 3) + "-a" +
                          hex.substr(17, 3) + "-" + hex.substr(20, 12);
        it.institution_id = pt.institution_id;
        it.institution_name = institution_name(pt.institution_id);
        it.webhook = pt.webhook;
        it.username = pt.username;
        it.dynamic = pt.username == "user_transactions_dynamic";
        it.created_at = iso_seconds();
        it.accounts = sandbox_accounts(it.id_rng);
        int n = transactions_per_item;
        if (it.dynamic) n = 50;
        if (pt.username.rfind("user_bulk_", 0) == 0) n = std::clamp(std::atoi(pt.username.c_str() + 10), 0, 100000);
        generate_history(it, it.rng, it.id_rng, n);
        it.ready_at_ms = steady_ms() + not_ready_ms;
        auto id = it.item_id;
        by_token[it.access_token] = id;
        return items.emplace(id, std::move(it)).first->second;
    }

    // ---- faults --------------------------------------------------------------------------

    // The first error fault for this request, consumed; nullopt when none applies.
    std::optional<plaid_failure> take_fault(const std::string& endpoint, item_state* it, int sync_page) {
        for (auto f = faults.begin(); f != faults.end(); ++f) {
            if (f->type == "latency") continue;
            if (!f->endpoint.empty() && f->endpoint != endpoint) continue;
            if (!f->item_id.empty() && (!it || it->item_id != f->item_id)) continue;
            if (f->type == "mutation_during_pagination" && (endpoint != "/transactions/sync" || sync_page != f->page)) continue;
            if ((f->type == "item_login_required" || f->type == "invalid_access_token" || f->type == "product_not_ready") && !it) continue;
            auto type = f->type;
            if (f->remaining > 0 && --f->remaining == 0) faults.erase(f);
            if (type == "rate_limit") {
                return plaid_failure{429, "RATE_LIMIT_EXCEEDED", endpoint == "/transactions/sync" ? "TRANSACTIONS_SYNC_LIMIT" : "RATE_LIMIT",
                                     "rate limit exceeded for this item; retry later", std::nullopt};
            }
            if (type == "server_error") return plaid_failure{500, "API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred", std::nullopt};
            if (type == "planned_maintenance") return plaid_failure{503, "API_ERROR", "PLANNED_MAINTENANCE", "the Plaid API is under maintenance", std::nullopt};
            if (type == "product_not_ready") return plaid_failure{400, "ITEM_ERROR", "PRODUCT_NOT_READY", "the requested product is not yet ready", std::nullopt};
            if (type == "invalid_access_token") return plaid_failure{400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "provided access token is invalid", std::nullopt};
            if (type == "item_login_required") {
                set_login_required(*it);
                return std::nullopt;  // the item's error answers from now on
            }
            if (type == "mutation_during_pagination") {
                // A real change while the client pages: the page fails because the data moved.
                auto t = new_transaction(*it, it->rng, it->id_rng, true);
                auto id = t.transaction_id;
                it->transactions.emplace(id, std::move(t));
                it->record(change_kind::added, id);
                return std::nullopt;
            }
        }
        return std::nullopt;
    }

    int latency_for(const std::string& endpoint) {
        int total = 0;
        for (auto f = faults.begin(); f != faults.end();) {
            if (f->type == "latency" && (f->endpoint.empty() || f->endpoint == endpoint)) {
                total += f->latency_ms;
                if (f->remaining > 0 && --f->remaining == 0) {
                    f = faults.erase(f);
                    continue;
                }
            }
            ++f;
        }
        return total;
    }

    void set_login_required(item_state& it) {
        auto e = error_for_code("ITEM_LOGIN_REQUIRED");
        it.error = item_error{e.status, e.type, e.code, e.message, e.display_message};
        fire(it, "ERROR");
    }

    // ---- /transactions/sync ------------------------------------------------------------

    struct cursor {
        std::int64_t from = 0, upto = 0, offset = 0, page = 0;
    };

    std::string encode_cursor(const item_state& it, const cursor& c) {
        return plaid::base64_encode("v1|" + it.item_id + "|" + std::to_string(c.from) + "|" + std::to_string(c.upto) + "|" +
                                    std::to_string(c.offset) + "|" + std::to_string(c.page));
    }

    std::optional<cursor> decode_cursor(const item_state& it, const std::string& text) {
        if (text.empty()) return cursor{};
        try {
            auto raw = plaid::base64_decode(text);
            std::vector<std::string> parts;
            std::size_t pos = 0;
            while (true) {
                auto bar = raw.find('|', pos);
                parts.push_back(raw.substr(pos, bar == std::string::npos ? std::string::npos : bar - pos));
                if (bar == std::string::npos) break;
                pos = bar + 1;
            }
            if (parts.size() != 6 || parts[0] != "v1" || parts[1] != it.item_id) return std::nullopt;
            cursor c{std::stoll(parts[2]), std::stoll(parts[3]), std::stoll(parts[4]), std::stoll(parts[5])};
            if (c.from < 0 || c.upto < c.from || c.upto > it.head || c.offset < 0) return std::nullopt;
            return c;
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }

    struct net_change {
        std::int64_t last_seq;
        change_kind kind;
        std::string id;
    };

    // The net effect of the changes in (from, upto], ordered by their last change.
    std::vector<net_change> net_changes(const item_state& it, std::int64_t from, std::int64_t upto) {
        struct acc {
            std::int64_t last_seq;
            change_kind last;
            bool existed;
        };
        std::unordered_map<std::string, acc> m;
        auto begin = std::lower_bound(it.log.begin(), it.log.end(), from + 1,
                                      [](const change& c, std::int64_t s) { return c.seq < s; });
        for (auto c = begin; c != it.log.end() && c->seq <= upto; ++c) {
            auto [e, inserted] = m.try_emplace(c->transaction_id, acc{c->seq, c->kind, c->kind != change_kind::added});
            if (!inserted) {
                e->second.last_seq = c->seq;
                e->second.last = c->kind;
            }
        }
        std::vector<net_change> out;
        out.reserve(m.size());
        for (auto& [id, a] : m) {
            if (!a.existed && a.last == change_kind::removed) continue;
            change_kind k = !a.existed ? change_kind::added : a.last == change_kind::removed ? change_kind::removed : change_kind::modified;
            out.push_back({a.last_seq, k, id});
        }
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.last_seq < b.last_seq; });
        return out;
    }

    std::set<std::string> accounts_with_transactions(const item_state& it) {
        std::set<std::string> s;
        for (const auto& [_, t] : it.transactions) s.insert(t.account_id);
        return s;
    }

    http::response transactions_sync(item_state& it, const json_val& body) {
        std::int64_t count = 100;
        if (auto c = member(body, "count")) {
            if (!c->IsInt64() || c->GetInt64() < 1 || c->GetInt64() > 500) {
                return fail(400, "INVALID_REQUEST", "INVALID_FIELD", "count must be an integer from 1 to 500");
            }
            count = c->GetInt64();
        }
        std::string cursor_text = str_member(body, "cursor").value_or("");
        auto cur = decode_cursor(it, cursor_text);
        if (!cur) return fail(400, "INVALID_REQUEST", "INVALID_FIELD", "cursor not associated with access_token");
        it.sync_called = true;
        int page = cur->offset > 0 ? static_cast<int>(cur->page) + 1 : 1;
        if (auto f = take_fault("/transactions/sync", &it, page)) return fail(*f);
        if (it.error) return fail({it.error->status, it.error->type, it.error->code, it.error->message, it.error->display_message});
        auto rid = request_id();
        if (steady_ms() < it.ready_at_ms) {
            if (!it.ready_webhook_scheduled) {
                it.ready_webhook_scheduled = true;
                fire(it, "SYNC_UPDATES_AVAILABLE", it.ready_at_ms - steady_ms());
            }
            json::writer w;
            w.start_object().raw("accounts", "[]").raw("added", "[]").kv("has_more", false).raw("modified", "[]");
            w.kv("next_cursor", cursor_text).raw("removed", "[]").kv("request_id", rid);
            w.kv("transactions_update_status", "NOT_READY").end_object();
            return reply(200, w.str());
        }
        if (cur->offset > 0 && it.head != cur->upto) {
            return fail(400, "TRANSACTIONS_ERROR", "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                        "Underlying transaction data changed since last page was fetched. Please restart pagination from "
                        "last update.");
        }
        if (cur->offset == 0) cur->upto = it.head;
        auto net = net_changes(it, cur->from, cur->upto);
        auto first = static_cast<std::size_t>(std::min<std::int64_t>(cur->offset, static_cast<std::int64_t>(net.size())));
        auto last = static_cast<std::size_t>(std::min<std::int64_t>(cur->offset + count, static_cast<std::int64_t>(net.size())));
        bool has_more = last < net.size();
        cursor next = has_more ? cursor{cur->from, cur->upto, static_cast<std::int64_t>(last), page}
                               : cursor{cur->upto, cur->upto, 0, 0};

        json::writer w;
        w.start_object();
        w.key("accounts").start_array();
        auto with_tx = accounts_with_transactions(it);
        for (const auto& a : it.accounts)
            if (with_tx.count(a.account_id)) write_account(w, a);
        w.end_array();
        w.key("added").start_array();
        for (auto i = first; i < last; ++i)
            if (net[i].kind == change_kind::added) write_transaction(w, it.transactions.at(net[i].id));
        w.end_array();
        w.kv("has_more", has_more);
        w.key("modified").start_array();
        for (auto i = first; i < last; ++i)
            if (net[i].kind == change_kind::modified) write_transaction(w, it.transactions.at(net[i].id));
        w.end_array();
        w.kv("next_cursor", encode_cursor(it, next));
        w.key("removed").start_array();
        for (auto i = first; i < last; ++i) {
            if (net[i].kind != change_kind::removed) continue;
            w.start_object().kv("account_id", it.removed_accounts.at(net[i].id)).kv("transaction_id", net[i].id).end_object();
        }
        w.end_array();
        w.kv("request_id", rid);
        w.kv("transactions_update_status", "HISTORICAL_UPDATE_COMPLETE");
        w.end_object();
        it.last_successful_update = iso_seconds();
        return reply(200, w.str());
    }

    // ---- data changes ----------------------------------------------------------------------

    void post_pending(item_state& it, std::vector<std::string>* posted_ids = nullptr) {
        std::vector<std::string> pending;
        for (const auto& [id, t] : it.transactions)
            if (t.pending) pending.push_back(id);
        for (const auto& id : pending) {
            auto t = it.transactions.at(id);
            it.transactions.erase(id);
            it.removed_accounts[id] = t.account_id;
            it.record(change_kind::removed, id);
            t.transaction_id = random_id(it.id_rng);
            t.pending = false;
            t.pending_transaction_id = id;
            t.authorized_date = t.date;
            t.date = date_days_ago(0);
            if (posted_ids) posted_ids->push_back(t.transaction_id);
            auto nid = t.transaction_id;
            it.transactions.emplace(nid, std::move(t));
            it.record(change_kind::added, nid);
        }
    }

    void refresh(item_state& it) {
        std::vector<std::string> posted;
        post_pending(it, &posted);
        int added = static_cast<int>(posted.size());
        for (int i = 0; i < 2; ++i) {
            auto t = new_transaction(it, it.rng, it.id_rng, true);
            auto id = t.transaction_id;
            it.transactions.emplace(id, std::move(t));
            it.record(change_kind::added, id);
            ++added;
        }
        if (it.dynamic) {
            // The bank corrects one amount of an older posted transaction.
            std::set<std::string> fresh(posted.begin(), posted.end());
            for (auto& [id, t] : it.transactions) {
                if (t.pending || fresh.count(id)) continue;
                t.cents += t.cents > 0 ? 100 : -100;
                it.record(change_kind::modified, id);
                break;
            }
        }
        ++it.refreshes;
        if (it.sync_called) fire(it, "SYNC_UPDATES_AVAILABLE");
        fire(it, "DEFAULT_UPDATE", 0, added);
    }

    // ---- dispatch --------------------------------------------------------------------------

    item_state* item_for(const json_val& body, std::optional<http::response>& err) {
        auto tok = str_member(body, "access_token");
        if (!tok) {
            err = fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: access_token");
            return nullptr;
        }
        auto it = by_token.find(*tok);
        if (tok->rfind("access-", 0) != 0 || it == by_token.end()) {
            err = fail(400, "INVALID_INPUT", "INVALID_ACCESS_TOKEN",
                       tok->rfind("access-", 0) != 0 ? "provided access token is in an invalid format"
                                                      : "provided access token is invalid or has been removed");
            return nullptr;
        }
        return &items.at(it->second);
    }

    std::vector<std::string> string_array(const json_val* v) {
        std::vector<std::string> out;
        if (v && v->IsArray())
            for (const auto& x : v->GetArray())
                if (x.IsString()) out.emplace_back(x.GetString());
        return out;
    }

    http::response plaid_call(const std::string& ep, const json_doc& body, const std::string& raw_body) {
        auto rid = request_id();
        auto ok = [&](json::writer& w) {
            w.kv("request_id", rid);
            w.end_object();
            return reply(200, w.str());
        };

        if (ep == "/link/token/create") {
            std::vector<std::string> missing;
            for (const char* k : {"client_name", "language"})
                if (!str_member(body, k)) missing.push_back(k);
            if (!member(body, "country_codes") || !body["country_codes"].IsArray() || body["country_codes"].Empty())
                missing.push_back("country_codes");
            auto user = member(body, "user");
            if (!user || !str_member(*user, "client_user_id")) missing.push_back("user.client_user_id");
            if (!missing.empty()) {
                std::string m;
                for (auto& x : missing) m += (m.empty() ? "" : ", ") + x;
                return fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: " + m);
            }
            json::writer w;
            w.start_object().kv("expiration", iso_seconds(4 * 3600)).kv("link_token", "link-sandbox-" + ids::uuid_v4());
            return ok(w);
        }
        if (ep == "/sandbox/public_token/create") {
            auto inst = str_member(body, "institution_id");
            auto products = string_array(member(body, "initial_products"));
            if (!inst || products.empty()) {
                return fail(400, "INVALID_REQUEST", "MISSING_FIELDS",
                            "the following required fields are missing: institution_id, initial_products");
            }
            if (!institution_name(*inst)) return fail(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided");
            std::string username = "user_good", password = "pass_good", webhook;
            if (auto o = member(body, "options")) {
                username = str_member(*o, "override_username").value_or(username);
                password = str_member(*o, "override_password").value_or(password);
                webhook = str_member(*o, "webhook").value_or("");
            }
            if (password.rfind("error_", 0) == 0) return fail(error_for_code(password.substr(6)));
            auto token = "public-sandbox-" + ids::uuid_v4();
            public_tokens[token] = {*inst, username, webhook, ids::unix_seconds()};
            json::writer w;
            w.start_object().kv("public_token", token);
            return ok(w);
        }
        if (ep == "/item/public_token/exchange") {
            auto tok = str_member(body, "public_token");
            if (!tok) return fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: public_token");
            auto pt = public_tokens.find(*tok);
            if (pt == public_tokens.end() || pt->second.used || ids::unix_seconds() - pt->second.created > 30 * 60) {
                return fail(400, "INVALID_INPUT", "INVALID_PUBLIC_TOKEN",
                            pt == public_tokens.end() ? "provided public token is in an invalid format" : "provided public token is expired");
            }
            pt->second.used = true;
            auto& it = create_item(pt->second);
            json::writer w;
            w.start_object().kv("access_token", it.access_token).kv("item_id", it.item_id);
            return ok(w);
        }
        if (ep == "/webhook_verification_key/get") {
            auto k = str_member(body, "key_id");
            if (!k) return fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: key_id");
            if (*k != kid) return fail(400, "INVALID_INPUT", "INVALID_WEBHOOK_VERIFICATION_KEY_ID", "invalid key_id provided");
            auto pub = key.public_key();
            json::writer w;
            w.start_object().key("key").start_object();
            w.kv("alg", "ES256").kv("created_at", key_created).kv("crv", "P-256").key("expired_at").null();
            w.kv("kid", kid).kv("kty", "EC").kv("use", "sig").kv("x", pub.x).kv("y", pub.y).end_object();
            return ok(w);
        }

        // Item-scoped endpoints.
        std::optional<http::response> err;
        auto* it = item_for(body, err);
        if (!it) return *err;
        if (ep != "/transactions/sync") {
            if (auto f = take_fault(ep, it, 0)) return fail(*f);
        }
        bool error_blocks = ep != "/item/get" && ep != "/item/remove" && ep != "/sandbox/item/reset_login" &&
                            ep != "/sandbox/item/fire_webhook" && ep != "/transactions/sync";
        if (error_blocks && it->error) {
            return fail({it->error->status, it->error->type, it->error->code, it->error->message, it->error->display_message});
        }

        if (ep == "/transactions/sync") return transactions_sync(*it, body);
        if (ep == "/item/get") {
            json::writer w;
            w.start_object().key("item");
            write_item(w, *it, true);
            w.kv("request_id", rid);
            w.key("status").start_object();
            w.key("last_webhook");
            if (it->last_webhook_code) w.start_object().kv("code_sent", *it->last_webhook_code).kv("sent_at", *it->last_webhook_at).end_object();
            else w.null();
            w.key("transactions").start_object().key("last_failed_update").null().kv_opt("last_successful_update", it->last_successful_update);
            w.end_object().end_object().end_object();
            return reply(200, w.str());
        }
        if (ep == "/item/remove") {
            by_token.erase(it->access_token);
            items.erase(it->item_id);
            json::writer w;
            w.start_object();
            return ok(w);
        }
        if (ep == "/accounts/get" || ep == "/accounts/balance/get") {
            std::vector<std::string> only;
            if (auto o = member(body, "options")) only = string_array(member(*o, "account_ids"));
            for (const auto& id : only) {
                if (std::none_of(it->accounts.begin(), it->accounts.end(), [&](const auto& a) { return a.account_id == id; })) {
                    return fail(400, "INVALID_INPUT", "INVALID_ACCOUNT_ID", "one or more of the account IDs is invalid");
                }
            }
            json::writer w;
            w.start_object().key("accounts").start_array();
            for (const auto& a : it->accounts)
                if (only.empty() || std::find(only.begin(), only.end(), a.account_id) != only.end()) write_account(w, a);
            w.end_array().key("item");
            write_item(w, *it, false);
            return ok(w);
        }
        if (ep == "/transactions/get") {
            auto start = str_member(body, "start_date"), end = str_member(body, "end_date");
            if (!start || !end) {
                return fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: start_date, end_date");
            }
            if (steady_ms() < it->ready_at_ms) {
                return fail(400, "ITEM_ERROR", "PRODUCT_NOT_READY", "the requested product is not yet ready. please provide a webhook or try the request again later");
            }
            std::int64_t count = 100, offset = 0;
            std::vector<std::string> only;
            if (auto o = member(body, "options")) {
                if (auto c = member(*o, "count")) {
                    if (!c->IsInt64() || c->GetInt64() < 1 || c->GetInt64() > 500)
                        return fail(400, "INVALID_REQUEST", "INVALID_FIELD", "count must be an integer from 1 to 500");
                    count = c->GetInt64();
                }
                if (auto f = member(*o, "offset")) {
                    if (!f->IsInt64() || f->GetInt64() < 0) return fail(400, "INVALID_REQUEST", "INVALID_FIELD", "offset must be a non-negative integer");
                    offset = f->GetInt64();
                }
                only = string_array(member(*o, "account_ids"));
            }
            std::vector<const transaction_state*> sel;
            for (const auto& [_, t] : it->transactions) {
                if (t.date < *start || t.date > *end) continue;
                if (!only.empty() && std::find(only.begin(), only.end(), t.account_id) == only.end()) continue;
                sel.push_back(&t);
            }
            std::sort(sel.begin(), sel.end(), [](auto* a, auto* b) {
                return a->date != b->date ? a->date > b->date : a->transaction_id < b->transaction_id;
            });
            json::writer w;
            w.start_object().key("accounts").start_array();
            for (const auto& a : it->accounts) write_account(w, a);
            w.end_array().key("item");
            write_item(w, *it, false);
            w.kv("total_transactions", static_cast<std::int64_t>(sel.size()));
            w.key("transactions").start_array();
            for (auto i = static_cast<std::size_t>(offset); i < sel.size() && i < static_cast<std::size_t>(offset + count); ++i)
                write_transaction(w, *sel[i]);
            w.end_array();
            return ok(w);
        }
        if (ep == "/transactions/refresh") {
            refresh(*it);
            json::writer w;
            w.start_object();
            return ok(w);
        }
        if (ep == "/sandbox/item/reset_login") {
            set_login_required(*it);
            json::writer w;
            w.start_object().kv("reset_login", true);
            return ok(w);
        }
        if (ep == "/sandbox/item/fire_webhook") {
            static const std::set<std::string> codes{"DEFAULT_UPDATE", "NEW_ACCOUNTS_AVAILABLE", "SMS_MICRODEPOSITS_VERIFICATION",
                                                     "AUTHORIZATION_GRANTED", "USER_PERMISSION_REVOKED", "USER_ACCOUNT_REVOKED",
                                                     "PENDING_DISCONNECT", "RECURRING_TRANSACTIONS_UPDATE", "LOGIN_REPAIRED",
                                                     "SYNC_UPDATES_AVAILABLE", "PRODUCT_READY", "ERROR", "PENDING_EXPIRATION"};
            auto code = str_member(body, "webhook_code");
            if (!code) return fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: webhook_code");
            if (!codes.count(*code)) return fail(400, "INVALID_REQUEST", "INVALID_FIELD", "webhook_code is not one of the supported codes");
            fire(*it, *code);
            json::writer w;
            w.start_object().kv("webhook_fired", true);
            return ok(w);
        }
        if (ep == "/sandbox/transactions/create") {
            // Amounts are read from their exact text.
            json_doc exact;
            exact.Parse<rapidjson::kParseNumbersAsStringsFlag>(raw_body.data(), raw_body.size());
            auto list = member(exact, "transactions");
            if (!list || !list->IsArray() || list->Empty()) {
                return fail(400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: transactions");
            }
            std::vector<transaction_state> created;
            for (const auto& x : list->GetArray()) {
                auto amount = str_member(x, "amount");
                auto posted = str_member(x, "date_posted"), transacted = str_member(x, "date_transacted");
                auto description = str_member(x, "description");
                auto cents = amount ? money::parse_decimal(*amount, 2) : std::nullopt;
                if (!cents || !posted || !transacted || !description) {
                    return fail(400, "INVALID_REQUEST", "INVALID_FIELD", "each transaction needs amount, date_posted, date_transacted and description");
                }
                transaction_state t;
                t.transaction_id = random_id(it->id_rng);
                t.account_id = it->accounts[0].account_id;
                t.cents = *cents;
                t.date = *posted;
                t.authorized_date = *transacted;
                t.name = *description;
                t.payment_channel = "other";
                t.transaction_type = "special";
                t.pfc_primary = *cents < 0 ? "TRANSFER_IN" : "GENERAL_MERCHANDISE";
                t.pfc_detailed = *cents < 0 ? "TRANSFER_IN_DEPOSIT" : "GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE";
                created.push_back(std::move(t));
            }
            for (auto& t : created) {
                auto id = t.transaction_id;
                it->transactions.emplace(id, std::move(t));
                it->record(change_kind::added, id);
            }
            if (it->sync_called) fire(*it, "SYNC_UPDATES_AVAILABLE");
            json::writer w;
            w.start_object();
            return ok(w);
        }
        return fail(404, "INVALID_REQUEST", "UNKNOWN_FIELDS", "unknown endpoint " + ep);
    }

    // ---- control endpoints (/emulator/...) -------------------------------------------------

    http::response control_reply(unsigned status, std::string body) {
        http::response r;
        r.status = status;
        r.body = std::move(body);
        return r;
    }

    http::response control(const http::request& r) {
        json_doc body;
        if (!r.body.empty()) {
            body.Parse<rapidjson::kParseNumbersAsStringsFlag>(r.body.data(), r.body.size());
            if (body.HasParseError() || !body.IsObject()) return control_reply(400, R"({"error":"the body must be a JSON object"})");
        } else {
            body.SetObject();
        }
        auto int_of = [&](const char* k, std::int64_t def) -> std::int64_t {
            auto s = str_member(body, k);  // numbers arrive as their text
            if (!s) return def;
            try {
                return std::stoll(*s);
            } catch (...) {
                return def;
            }
        };
        std::vector<std::string> parts;
        for (std::size_t pos = 1; pos <= r.path.size();) {
            auto slash = r.path.find('/', pos);
            if (slash == std::string::npos) slash = r.path.size();
            if (slash > pos) parts.push_back(r.path.substr(pos, slash - pos));
            pos = slash + 1;
        }
        std::lock_guard lk(mu);
        if (parts.size() == 2 && parts[1] == "faults") {
            if (r.method == "DELETE") {
                faults.clear();
                return control_reply(200, R"({"cleared":true})");
            }
            if (r.method == "GET") {
                json::writer w;
                w.start_object().key("faults").start_array();
                for (const auto& f : faults) {
                    w.start_object().kv("id", f.id).kv("type", f.type).kv("endpoint", f.endpoint).kv("item_id", f.item_id);
                    w.kv("remaining", f.remaining).kv("page", f.page).kv("latency_ms", f.latency_ms).end_object();
                }
                w.end_array().end_object();
                return control_reply(200, w.str());
            }
            static const std::set<std::string> types{"rate_limit", "server_error", "planned_maintenance", "item_login_required",
                                                     "mutation_during_pagination", "product_not_ready", "invalid_access_token",
                                                     "latency"};
            auto type = str_member(body, "type").value_or("");
            if (!types.count(type)) return control_reply(400, R"({"error":"unknown fault type"})");
            fault f{++next_fault_id, type, str_member(body, "endpoint").value_or(""), str_member(body, "item_id").value_or(""),
                    static_cast<int>(int_of("count", 1)), static_cast<int>(int_of("page", 2)),
                    static_cast<int>(int_of("latency_ms", 0))};
            if (f.remaining == 0) f.remaining = -1;
            faults.push_back(f);
            return control_reply(200, R"({"id":)" + std::to_string(f.id) + "}");
        }
        if (parts.size() == 2 && parts[1] == "config" && r.method == "POST") {
            transactions_per_item = static_cast<int>(std::clamp<std::int64_t>(int_of("transactions_per_item", transactions_per_item), 0, 100000));
            not_ready_ms = static_cast<int>(int_of("not_ready_ms", not_ready_ms));
            if (auto u = str_member(body, "webhook_url")) webhook_url = *u;
            return control_reply(200, R"({"ok":true})");
        }
        if (parts.size() == 2 && parts[1] == "stats") {
            json::writer w;
            w.start_object().key("requests").start_object();
            for (const auto& [ep, by_status] : stats) {
                w.key(ep).start_object();
                for (const auto& [st, n] : by_status) w.kv(std::to_string(st), n);
                w.end_object();
            }
            w.end_object().kv("webhooks_sent", webhooks_sent).kv("webhooks_failed", webhooks_failed);
            w.key("webhooks").start_array();
            for (const auto& h : webhook_log) {
                w.start_object().kv("url", h.url).kv("webhook_code", h.code).kv("item_id", h.item_id);
                w.kv("status", static_cast<std::int64_t>(h.status)).end_object();
            }
            w.end_array().end_object();
            return control_reply(200, w.str());
        }
        if (parts.size() >= 3 && parts[1] == "items") {
            auto found = items.find(parts[2]);
            if (found == items.end()) return control_reply(404, R"({"error":"no such item"})");
            auto& it = found->second;
            std::string action = parts.size() > 3 ? parts[3] : "";
            if (action.empty() && r.method == "GET") {
                json::writer w;
                w.start_object().kv("item_id", it.item_id).kv("username", it.username).kv("head", it.head);
                w.key("error");
                if (it.error) w.str(it.error->code);
                else w.null();
                w.kv("webhook", it.webhook).kv("refreshes", it.refreshes);
                w.key("accounts").start_array();
                for (const auto& a : it.accounts) w.start_object().kv("account_id", a.account_id).kv("mask", a.mask).end_object();
                w.end_array();
                w.key("transactions").start_array();
                for (const auto& [id, t] : it.transactions) {
                    w.start_object().kv("transaction_id", id).kv("account_id", t.account_id);
                    raw_number(w, "amount", cents_text(t.cents));
                    w.kv("pending", t.pending).kv_opt("pending_transaction_id", t.pending_transaction_id).end_object();
                }
                w.end_array().end_object();
                return control_reply(200, w.str());
            }
            if (action == "repair" && r.method == "POST") {
                it.error.reset();
                fire(it, "LOGIN_REPAIRED");
                return control_reply(200, R"({"repaired":true})");
            }
            if (action == "login_required" && r.method == "POST") {
                set_login_required(it);
                return control_reply(200, R"({"login_required":true})");
            }
            if (action == "transactions" && r.method == "POST") {
                auto op = str_member(body, "action").value_or("");
                auto id = str_member(body, "transaction_id").value_or("");
                if (op == "post_pending") {
                    post_pending(it);
                } else if (op == "add") {
                    auto t = new_transaction(it, it.rng, it.id_rng, str_member(body, "pending").value_or("") == "true" ||
                                                                         (member(body, "pending") && body["pending"].IsBool() && body["pending"].GetBool()));
                    if (auto a = str_member(body, "amount")) {
                        auto c = money::parse_decimal(*a, 2);
                        if (!c || *c == 0) return control_reply(400, R"({"error":"amount must be a non-zero decimal"})");
                        t.cents = *c;
                    }
                    if (auto acct = str_member(body, "account_id")) t.account_id = *acct;
                    id = t.transaction_id;
                    it.transactions.emplace(id, std::move(t));
                    it.record(change_kind::added, id);
                } else {
                    auto t = it.transactions.find(id);
                    if (t == it.transactions.end()) return control_reply(404, R"({"error":"no such transaction"})");
                    if (op == "modify") {
                        auto c = money::parse_decimal(str_member(body, "amount").value_or(""), 2);
                        if (!c || *c == 0) return control_reply(400, R"({"error":"amount must be a non-zero decimal"})");
                        t->second.cents = *c;
                        if (auto n = str_member(body, "name")) t->second.name = *n;
                        it.record(change_kind::modified, id);
                    } else if (op == "remove") {
                        it.removed_accounts[id] = t->second.account_id;
                        it.transactions.erase(t);
                        it.record(change_kind::removed, id);
                    } else {
                        return control_reply(400, R"({"error":"action must be add, modify, remove or post_pending"})");
                    }
                }
                if (it.sync_called && str_member(body, "webhook").value_or("") != "false") fire(it, "SYNC_UPDATES_AVAILABLE");
                return control_reply(200, R"({"transaction_id":")" + id + R"("})");
            }
        }
        if (parts.size() == 2 && parts[1] == "items" && r.method == "GET") {
            json::writer w;
            w.start_object().key("items").start_array();
            for (const auto& [id, it] : items) {
                w.start_object().kv("item_id", id).kv("username", it.username);
                w.kv("transactions", static_cast<std::int64_t>(it.transactions.size())).end_object();
            }
            w.end_array().end_object();
            return control_reply(200, w.str());
        }
        return control_reply(404, R"({"error":"unknown control endpoint"})");
    }

    // ---- the handler -----------------------------------------------------------------------

    void handle(http::request&& r, const std::shared_ptr<http::response_writer>& w) {
        if (r.path.rfind("/emulator/", 0) == 0) {
            w->send(control(r));
            return;
        }
        if (r.method != "POST") {
            w->send(fail(405, "INVALID_REQUEST", "INVALID_HTTP_METHOD", "every Plaid endpoint takes POST"));
            return;
        }
        {
            int delay = 0;
            {
                std::lock_guard lk(mu);
                delay = latency_for(r.path);
            }
            if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        }
        json_doc body;
        body.Parse(r.body.data(), r.body.size());
        http::response resp;
        if (body.HasParseError() || !body.IsObject()) {
            resp = fail(400, "INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON");
        } else {
            auto id = r.header_value("PLAID-CLIENT-ID");
            auto secret = r.header_value("PLAID-SECRET");
            std::string cid = id ? std::string(*id) : str_member(body, "client_id").value_or("");
            std::string sec = secret ? std::string(*secret) : str_member(body, "secret").value_or("");
            if (cid.empty() || sec.empty()) {
                resp = fail(400, "INVALID_REQUEST", "MISSING_FIELDS",
                            "client_id and secret must be provided in the PLAID-CLIENT-ID and PLAID-SECRET headers or the body");
            } else if ((!opts.client_id.empty() && cid != opts.client_id) || (!opts.secret.empty() && sec != opts.secret)) {
                resp = fail(400, "INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided");
            } else {
                std::lock_guard lk(mu);
                resp = plaid_call(r.path, body, r.body);
            }
        }
        {
            std::lock_guard lk(mu);
            ++stats[r.path][resp.status];
        }
        w->send(std::move(resp));
    }
};

emulator::emulator(options o) : impl_(std::make_unique<impl>(std::move(o))) {}

emulator::~emulator() { stop(); }

void emulator::start() {
    http::server_options so;
    so.address = impl_->opts.address;
    so.port = impl_->opts.port;
    so.threads = impl_->opts.threads;
    so.body_limit = 4 * 1024 * 1024;
    so.server_name = "plaid-emulator";
    impl_->server = std::make_unique<http::server>(
        so, [this](http::request&& r, std::shared_ptr<http::response_writer> w) { impl_->handle(std::move(r), w); });
    impl_->server->start();
    impl_->sender = std::thread([this] { impl_->send_loop(); });
}

std::uint16_t emulator::port() const { return impl_->server ? impl_->server->port() : 0; }

void emulator::stop() {
    if (impl_->server) {
        impl_->server->stop(std::chrono::seconds(2));
        impl_->server.reset();
    }
    {
        std::lock_guard lk(impl_->mu);
        impl_->stopping = true;
    }
    impl_->cv.notify_all();
    if (impl_->sender.joinable()) impl_->sender.join();
}

}  // namespace txp::plaid_emulator
