// Accepting money: validation here; ownership, the ledger's acceptance function and the
// outbox row in ONE database transaction, grouped with concurrent requests by the acceptance
// batcher; then 202 after the commit (or the outcome with Prefer: wait).
#include "api_internal.hpp"

#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"
#include "txp/common/money.hpp"

#include <algorithm>
#include <cctype>
#include <future>
#include <memory>

namespace txp::gateway {

namespace {

constexpr std::int64_t max_amount = 9007199254740991;  // 2^53 - 1: exact in every JSON client
constexpr std::size_t max_description = 500;
constexpr std::size_t max_metadata = 4096;

struct money_metrics {
    metrics::counter& accepted = metrics::global().get_counter("txp_gateway_transactions_accepted_total",
                                                               "Transactions accepted and queued for the ledger");
    metrics::counter& replayed = metrics::global().get_counter(
        "txp_gateway_idempotent_replays_total", "Requests answered from an earlier acceptance with the same key");
};

money_metrics& mm() {
    static money_metrics m;
    return m;
}

std::int64_t amount_field(const rapidjson::Value& doc) {
    auto a = json::require_int(doc, "amount");
    if (a < 1 || a > max_amount) fail_field("amount", "amount must be an integer from 1 to 9007199254740991 (minor units).");
    return a;
}

std::optional<std::int64_t> id_field(const rapidjson::Value& doc, const char* name) {
    auto v = json::optional_int(doc, name);
    if (v && *v <= 0) fail_field(name, std::string(name) + " must be a positive integer.");
    return v;
}

std::optional<std::string> currency_field(const rapidjson::Value& doc) {
    auto c = json::optional_string(doc, "currency", 3);
    if (c && !money::is_currency(*c)) fail_field("currency", "currency must be an ISO 4217 code such as USD.");
    return c;
}

void common_fields(const rapidjson::Value& doc, api::impl::money_request& m) {
    m.description = json::optional_string(doc, "description", max_description);
    if (json::has(doc, "metadata")) {
        const auto& md = doc["metadata"];
        if (!md.IsObject()) fail_field("metadata", "metadata must be a JSON object.");
        auto text = json::to_string(md);
        if (text.size() > max_metadata) {
            fail_field("metadata", "metadata must be at most " + std::to_string(max_metadata) + " bytes of JSON.");
        }
        m.metadata = std::move(text);
    }
}

// Idempotency-Key header, else the body's reference: 1-255 visible ASCII characters.
std::string idempotency_key(const http::request& req, const rapidjson::Value& doc) {
    auto reference = json::optional_string(doc, "reference", 255);
    auto header = req.header_value("Idempotency-Key");
    auto valid = [](std::string_view k) {
        return !k.empty() && k.size() <= 255 &&
               std::all_of(k.begin(), k.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    };
    if (header) {
        if (req.header_count("Idempotency-Key") > 1) fail_field("Idempotency-Key", "The Idempotency-Key header must be sent once.");
        if (!valid(*header)) fail_field("Idempotency-Key", "The Idempotency-Key header must be 1 to 255 visible ASCII characters.");
        if (reference && *reference != *header) {
            fail_field("reference", "reference and the Idempotency-Key header differ; send one, or the same value in both.");
        }
        return std::string(*header);
    }
    if (!reference) {
        fail_field("Idempotency-Key", "An Idempotency-Key header (or a reference in the body) is required for money movements.");
    }
    if (!valid(*reference)) fail_field("reference", "reference must be 1 to 255 visible ASCII characters.");
    return *reference;
}

// Prefer: wait=N (RFC 7240), capped at 30 s; 0 when absent.
int prefer_wait(const http::request& req) {
    auto p = req.header_value("Prefer");
    if (!p) return 0;
    std::string v(*p);
    for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto pos = v.find("wait=");
    if (pos == std::string::npos) return 0;
    int n = 0;
    std::size_t i = pos + 5;
    bool any = false;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])) && n <= 30) {
        n = n * 10 + (v[i++] - '0');
        any = true;
    }
    return any ? std::min(n, 30) : 0;
}

struct accepted {
    std::string transaction_id;
    std::string status;
    std::optional<std::string> reason;
    std::string type;
    std::int64_t wallet_id = 0;
    std::optional<std::int64_t> to_wallet_id;
    std::int64_t amount = 0;
    std::string currency;
    std::string reference;
    std::string created_at;
    bool created = false;
};

http::response accepted_response(const accepted& a, const std::string& status, const std::optional<std::string>& reason,
                                 unsigned code, int waited) {
    json::writer j;
    j.start_object().kv("transaction_id", a.transaction_id).kv("status", status).kv_opt("reason", reason);
    j.kv("type", a.type).kv("wallet_id", a.wallet_id).key("to_wallet_id");
    if (a.to_wallet_id) j.i64(*a.to_wallet_id);
    else j.null();
    j.kv("amount", a.amount).kv("currency", a.currency).kv("reference", a.reference).kv("created_at", a.created_at);
    j.key("links").start_object().kv("self", "/v1/transactions/" + a.transaction_id).end_object();
    j.end_object();
    auto r = json_response(code, j.str());
    r.headers.push_back({"Location", "/v1/transactions/" + a.transaction_id});
    if (!a.created) r.headers.push_back({"Idempotent-Replayed", "true"});
    if (waited > 0) r.headers.push_back({"Preference-Applied", "wait=" + std::to_string(waited)});
    return r;
}

bool terminal(const std::string& status) { return status == "completed" || status == "rejected" || status == "failed"; }

// Prefer: wait, the outcome still to come: parks the answer for the events thread, then looks
// once at the database (on the blocking pool, not on the committer) in case the outcome came
// before the answer was parked.
void park_until_outcome(api::impl& api, const accepted& x, std::shared_ptr<http::response_writer> writer,
                        const std::string& request_id, int wait_s) {
    api.waiters->park(x.transaction_id, std::move(writer), request_id,
                      std::chrono::steady_clock::now() + std::chrono::seconds(wait_s),
                      [x, wait_s](const std::optional<tx_outcome>& o) {
                          if (!o) return accepted_response(x, "queued", std::nullopt, 202, wait_s);
                          return accepted_response(x, o->status, o->reason, 200, wait_s);
                      });
    api.workers.post([&api, id = x.transaction_id] {
        try {
            auto now = single_read(api.pool, [&](pqxx::nontransaction& n) {
                auto rows = n.exec_params("SELECT status, reason FROM ledger.transactions WHERE id = $1::uuid", id);
                tx_outcome o;
                o.status = rows[0][0].as<std::string>();
                if (!rows[0][1].is_null()) o.reason = rows[0][1].as<std::string>();
                return o;
            });
            if (terminal(now.status)) api.waiters->complete(id, now);
        } catch (const std::exception& e) {
            // The event (or the deadline's "queued") still answers the parked request.
            log::warn("could not look up a parked transaction's outcome", {{"transaction_id", id}, {"error", e.what()}});
        }
    });
}

}  // namespace

std::optional<http::response> api::impl::post_transaction(context& c) {
    auto doc = json_body(c.req, {"wallet_id", "type", "amount", "currency", "to_wallet_id", "to_user_id", "description",
                                 "metadata", "reference"});
    money_request m;
    m.type = json::require_string(doc, "type", 32);
    if (m.type != "deposit" && m.type != "withdrawal" && m.type != "payment" && m.type != "transfer") {
        fail_field("type", "type must be deposit, withdrawal, payment or transfer.");
    }
    m.wallet_id = id_field(doc, "wallet_id");
    if (!m.wallet_id) fail_field("wallet_id", "wallet_id is required");
    m.amount = amount_field(doc);
    m.currency = currency_field(doc);
    if (!m.currency) fail_field("currency", "currency is required");
    m.to_wallet_id = id_field(doc, "to_wallet_id");
    m.to_user_id = id_field(doc, "to_user_id");
    if (m.type == "transfer" && !m.to_wallet_id && !m.to_user_id) {
        fail_field("to_wallet_id", "A transfer needs to_wallet_id or to_user_id.");
    }
    if (m.type != "transfer" && (m.to_wallet_id || m.to_user_id)) {
        fail_field(m.to_wallet_id ? "to_wallet_id" : "to_user_id", "Only transfers have a destination.");
    }
    if (m.to_wallet_id && m.to_user_id) fail_field("to_user_id", "Send to_wallet_id or to_user_id, not both.");
    common_fields(doc, m);
    m.key = idempotency_key(c.req, doc);
    return accept_money(c, std::move(m));
}

std::optional<http::response> api::impl::my_deposit(context& c) { return convenience(c, "deposit"); }
std::optional<http::response> api::impl::my_withdraw(context& c) { return convenience(c, "withdrawal"); }
std::optional<http::response> api::impl::my_transfer(context& c) { return convenience(c, "transfer"); }

std::optional<http::response> api::impl::convenience(context& c, const std::string& type) {
    bool transfer = type == "transfer";
    auto doc = transfer ? json_body(c.req, {"amount", "currency", "reference", "description", "metadata", "to_user_id", "to_wallet_id"})
                        : json_body(c.req, {"amount", "currency", "reference", "description", "metadata"});
    money_request m;
    m.type = type;
    m.amount = amount_field(doc);
    m.currency = currency_field(doc);
    if (transfer) {
        m.to_wallet_id = id_field(doc, "to_wallet_id");
        m.to_user_id = id_field(doc, "to_user_id");
        if (!m.to_wallet_id && !m.to_user_id) fail_field("to_user_id", "A transfer needs to_user_id or to_wallet_id.");
        if (m.to_wallet_id && m.to_user_id) fail_field("to_user_id", "Send to_wallet_id or to_user_id, not both.");
    }
    common_fields(doc, m);
    m.key = idempotency_key(c.req, doc);
    return accept_money(c, std::move(m));
}

std::optional<http::response> api::impl::accept_money(context& c, money_request m) {
    const auto& me = c.me();
    acceptance a;
    a.user_id = me.id;
    a.scope = me.idempotency_scope();
    a.key = m.key;
    a.type = m.type;
    a.wallet_id = m.wallet_id;
    a.to_wallet_id = m.to_wallet_id;
    a.to_user_id = m.to_user_id;
    a.amount = m.amount;
    a.currency = m.currency;
    a.description = m.description;
    a.metadata = m.metadata;
    a.request_id = c.req.request_id;

    // What the answer needs besides the ledger's outcome.
    auto answer_for = [type = m.type, amount = m.amount, key = m.key](acceptance_outcome&& o) {
        accepted x;
        x.transaction_id = std::move(o.transaction_id);
        x.status = std::move(o.status);
        x.reason = std::move(o.reason);
        x.type = type;
        x.wallet_id = o.wallet_id;
        x.to_wallet_id = o.to_wallet_id;
        x.amount = amount;
        x.currency = std::move(o.currency);
        x.reference = key;
        x.created_at = std::move(o.created_at);
        x.created = o.created;
        if (x.created) {
            mm().accepted.inc();
            log::info("transaction accepted", {{"transaction_id", x.transaction_id}, {"type", x.type}, {"wallet_id", x.wallet_id}});
        } else {
            mm().replayed.inc();
        }
        return x;
    };

    const int wait_s = waiters ? prefer_wait(c.req) : 0;
    // No thread waits for the commit (nor, with admission, for room): the batcher answers
    // after it, or with Prefer: wait and the outcome still to come, parks the answer.
    batcher.submit(std::move(a), [this, writer = c.writer, request_id = c.req.request_id, path = c.req.path, answer_for,
                                  wait_s](acceptance_result&& r) {
        http::response resp;
        try {
            if (r.error) std::rethrow_exception(r.error);
            auto x = answer_for(std::move(*r.outcome));
            if (wait_s > 0 && !terminal(x.status)) return park_until_outcome(*this, x, writer, request_id, wait_s);
            resp = accepted_response(x, x.status, x.reason, wait_s > 0 ? 200 : 202, wait_s);
        } catch (const std::exception& e) {
            resp = error_response(e, request_id, path);
        }
        writer->send(std::move(resp));
    });
    return std::nullopt;
}

}  // namespace txp::gateway
