// api-gateway as a real process, with a real ledger-worker, PostgreSQL and RabbitMQ: every
// route's happy path and errors, idempotency, ownership, tokens, bad input, rate limits,
// the OpenAPI document against the routes served, and the demo seed.
#include "gateway_fixture.hpp"
#include "gateway.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <thread>

using namespace txp;
using testing::gateway_fixture;
using testing::is_problem;
using testing::json_int;
using testing::json_string;

namespace {

std::vector<http::header> key(const std::string& k) { return {{"Idempotency-Key", k}}; }

std::string tx_body(std::int64_t wallet, const std::string& type, const std::string& amount, const std::string& extra = "") {
    return R"({"wallet_id":)" + std::to_string(wallet) + R"(,"type":")" + type + R"(","amount":)" + amount +
           R"(,"currency":"USD")" + extra + "}";
}

}  // namespace

TEST_CASE("register, login, profile and logout", "[gateway][auth]") {
    auto& f = gateway_fixture::shared();
    auto u = f.new_user("auth");
    CHECK(u.id >= 1000);
    CHECK(u.token.rfind("txp_", 0) == 0);

    auto p = f.call("GET", "/v1/auth/profile", "", u.token);
    REQUIRE(p.status == 200);
    CHECK(json_string(p.body, "username") == u.username);
    CHECK(json_string(p.body, "role") == "user");
    CHECK(p.body.find("password") == std::string::npos);

    // The registration opened a wallet owned by the user.
    auto w = f.call("GET", "/v1/wallets", "", u.token);
    REQUIRE(w.status == 200);
    auto doc = json::parse(w.body);
    REQUIRE(doc["wallets"].Size() == 1);
    CHECK(doc["wallets"][0]["id"].GetInt64() == u.wallet_id);
    CHECK(doc["wallets"][0]["balance"].GetInt64() == 0);

    SECTION("a taken username or email is 409; bad fields are 400 naming the field") {
        auto body = [&](const std::string& name, const std::string& email, const std::string& pw, const std::string& confirm) {
            return R"({"username":")" + name + R"(","email":")" + email + R"(","password":")" + pw +
                   R"(","password_confirm":")" + confirm + R"("})";
        };
        auto fresh = "n_" + testing::unique_suffix();
        CHECK(is_problem(f.call("POST", "/v1/auth/register", body(u.username, fresh + "@x.io", "longenough", "longenough")), 409,
                         "already-exists"));
        CHECK(is_problem(f.call("POST", "/v1/auth/register", body(fresh, u.username + "@EXAMPLE.com", "longenough", "longenough")),
                         409, "already-exists"));
        auto bad = f.call("POST", "/v1/auth/register", body(fresh, fresh + "@x.io", "longenough", "different1"));
        CHECK(is_problem(bad, 400, "validation-error"));
        CHECK(bad.body.find("password_confirm") != std::string::npos);
        CHECK(is_problem(f.call("POST", "/v1/auth/register", body("A b", fresh + "@x.io", "longenough", "longenough")), 400,
                         "validation-error"));
        CHECK(is_problem(f.call("POST", "/v1/auth/register", body(fresh, "not-an-email", "longenough", "longenough")), 400,
                         "validation-error"));
        CHECK(is_problem(f.call("POST", "/v1/auth/register", body(fresh, fresh + "@x.io", "short", "short")), 400,
                         "validation-error"));
    }
    SECTION("a wrong password or unknown user is 401 invalid-credentials") {
        CHECK(is_problem(f.call("POST", "/v1/auth/login", R"({"username":")" + u.username + R"(","password":"wrong-password"})"),
                         401, "invalid-credentials"));
        CHECK(is_problem(f.call("POST", "/v1/auth/login", R"({"username":"nobody_)" + testing::unique_suffix() +
                                                              R"(","password":"whatever1"})"),
                         401, "invalid-credentials"));
    }
    SECTION("logged-out, forged, malformed and missing tokens are 401") {
        auto other = f.call("POST", "/v1/auth/login", R"({"username":")" + u.username + R"(","password":")" + u.password + R"("})");
        auto second = json_string(other.body, "token");
        auto out = f.call("POST", "/v1/auth/logout", "", u.token);
        CHECK(out.status == 204);
        auto dead = f.call("GET", "/v1/auth/profile", "", u.token);
        CHECK(is_problem(dead, 401, "unauthorized"));
        CHECK(dead.header_value("WWW-Authenticate").has_value());
        CHECK(f.call("GET", "/v1/auth/profile", "", second).status == 200);  // only the token logged out dies
        auto forged = "txp_" + ids::random_hex(32);
        CHECK(is_problem(f.call("GET", "/v1/wallets", "", forged), 401, "unauthorized"));
        CHECK(is_problem(f.call("GET", "/v1/wallets", "", "garbage"), 401, "unauthorized"));
        CHECK(is_problem(f.call("GET", "/v1/wallets"), 401, "unauthorized"));
        CHECK(is_problem(f.call("GET", "/v1/wallets", "", "", {{"Authorization", "Basic dXNlcjpwYXNz"}}), 401, "unauthorized"));
    }
}

TEST_CASE("money moves: deposit, withdrawal, payment, transfer, with Prefer: wait", "[gateway][money]") {
    auto& f = gateway_fixture::shared();
    auto a = f.new_user("alice");
    auto b = f.new_user("bob");

    auto dep = f.call("POST", "/v1/transactions", tx_body(a.wallet_id, "deposit", "10000", R"(,"description":"salary","metadata":{"k":"v"})"),
                      a.token, {{"Idempotency-Key", "dep-1"}, {"Prefer", "wait=5"}});
    REQUIRE(dep.status == 200);
    CHECK(json_string(dep.body, "status") == "completed");
    CHECK(dep.header_value("Location").value_or("") == "/v1/transactions/" + json_string(dep.body, "transaction_id"));

    // Without Prefer: 202 queued, then the worker completes it.
    auto pay = f.call("POST", "/v1/transactions", tx_body(a.wallet_id, "payment", "1500"), a.token, key("pay-1"));
    REQUIRE(pay.status == 202);
    CHECK(json_string(pay.body, "status") == "queued");
    auto pay_id = json_string(pay.body, "transaction_id");
    REQUIRE(f.ledger().wait_final({pay_id}, std::chrono::seconds(20)) == 0);
    auto got = f.call("GET", "/v1/transactions/" + pay_id, "", a.token);
    REQUIRE(got.status == 200);
    CHECK(json_string(got.body, "status") == "completed");
    CHECK(json_int(got.body, "balance_after") == 8500);
    CHECK(json_string(got.body, "reference") == "pay-1");

    // Convenience forms: transfer to a user, withdrawal, and a rejected withdrawal.
    auto tr = f.call("POST", "/v1/wallets/me/transfer", R"({"amount":2500,"to_user_id":)" + std::to_string(b.id) + "}", a.token,
                     {{"Idempotency-Key", "tr-1"}, {"Prefer", "wait=5"}});
    REQUIRE(tr.status == 200);
    CHECK(json_string(tr.body, "status") == "completed");
    CHECK(json_int(tr.body, "to_wallet_id") == b.wallet_id);
    auto wd = f.call("POST", "/v1/wallets/me/withdraw", R"({"amount":1000,"reference":"wd-1"})", a.token, {{"Prefer", "wait=5"}});
    REQUIRE(wd.status == 200);
    CHECK(json_string(wd.body, "status") == "completed");
    auto over = f.call("POST", "/v1/wallets/me/withdraw", R"({"amount":999999})", a.token,
                       {{"Idempotency-Key", "wd-2"}, {"Prefer", "wait=5"}});
    REQUIRE(over.status == 200);
    CHECK(json_string(over.body, "status") == "rejected");
    CHECK(json_string(over.body, "reason") == "insufficient_funds");
    auto dep2 = f.call("POST", "/v1/wallets/me/deposit", R"({"amount":1})", a.token, {{"Idempotency-Key", "dep-2"}, {"Prefer", "wait=5"}});
    CHECK(dep2.status == 200);

    // Transfer to a wallet id (someone else's is fine as a destination).
    auto tw = f.call("POST", "/v1/transactions", tx_body(b.wallet_id, "transfer", "500", ",\"to_wallet_id\":" + std::to_string(a.wallet_id)),
                     b.token, {{"Idempotency-Key", "back-1"}, {"Prefer", "wait=5"}});
    REQUIRE(tw.status == 200);
    CHECK(json_string(tw.body, "status") == "completed");

    auto me = f.call("GET", "/v1/wallets/me", "", a.token);
    REQUIRE(me.status == 200);
    auto doc = json::parse(me.body);
    CHECK(doc["wallet"]["balance"].GetInt64() == 10000 - 1500 - 2500 - 1000 + 1 + 500);
    CHECK(doc["recent_transactions"].Size() == 7);
    CHECK(std::string(doc["recent_transactions"][0]["id"].GetString()) == json_string(tw.body, "transaction_id"));
    auto bw = f.call("GET", "/v1/wallets/" + std::to_string(b.wallet_id), "", b.token);
    REQUIRE(bw.status == 200);
    CHECK(json_int(bw.body, "balance") == 2000);

    SECTION("history: newest first, keyset pages, filters, incoming transfers included") {
        std::vector<std::string> all;
        std::string cursor;
        for (int page = 0; page < 10; ++page) {
            auto r = f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?limit=3" +
                                       (cursor.empty() ? "" : "&cursor=" + cursor),
                            "", a.token);
            REQUIRE(r.status == 200);
            auto d = json::parse(r.body);
            for (const auto& t : d["transactions"].GetArray()) all.push_back(t["id"].GetString());
            if (d["next_cursor"].IsNull()) break;
            cursor = d["next_cursor"].GetString();
        }
        REQUIRE(all.size() == 7);
        CHECK(std::set<std::string>(all.begin(), all.end()).size() == 7);
        CHECK(all.front() == json_string(tw.body, "transaction_id"));  // incoming transfer, newest
        CHECK(all.back() == json_string(dep.body, "transaction_id"));

        auto filtered = [&](const std::string& q) {
            auto r = f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?" + q, "", a.token);
            REQUIRE(r.status == 200);
            return json::parse(r.body)["transactions"].Size();
        };
        CHECK(filtered("type=transfer") == 2);
        CHECK(filtered("status=rejected") == 1);
        CHECK(filtered("min_amount=1500&max_amount=2500") == 2);
        CHECK(filtered("from=2000-01-01&to=2100-01-01T00:00:00Z") == 7);
        CHECK(filtered("from=2100-01-01") == 0);
        CHECK(is_problem(f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?limit=101", "", a.token), 400,
                         "validation-error"));
        CHECK(is_problem(f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?limit=0", "", a.token), 400,
                         "validation-error"));
        CHECK(is_problem(f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?cursor=bogus!", "", a.token),
                         400, "validation-error"));
        CHECK(is_problem(f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?type=gift", "", a.token), 400,
                         "validation-error"));
        CHECK(is_problem(f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?from=yesterday", "", a.token),
                         400, "validation-error"));
        CHECK(is_problem(f.call("GET", "/v1/wallets/" + std::to_string(a.wallet_id) + "/transactions?from=2026-13-45", "", a.token),
                         400, "validation-error"));
    }
    SECTION("the recipient sees the transfer, but not the sender's balance or reference") {
        auto r = f.call("GET", "/v1/transactions/" + json_string(tr.body, "transaction_id"), "", b.token);
        REQUIRE(r.status == 200);
        auto d = json::parse(r.body);
        CHECK(d["balance_after"].IsNull());
        CHECK(d["to_balance_after"].GetInt64() == 2500);
        CHECK(d["reference"].IsNull());
    }
    SECTION("ledger refusals and unknown destinations") {
        CHECK(is_problem(f.call("POST", "/v1/transactions", tx_body(a.wallet_id, "transfer", "5", ",\"to_wallet_id\":999999999"),
                                a.token, key("x-1")),
                         404, "not-found"));
        CHECK(is_problem(f.call("POST", "/v1/transactions", tx_body(a.wallet_id, "transfer", "5", ",\"to_wallet_id\":" + std::to_string(a.wallet_id)),
                                a.token, key("x-2")),
                         422, "unprocessable"));
        CHECK(is_problem(f.call("POST", "/v1/wallets/me/transfer", R"({"amount":5,"to_user_id":999999999})", a.token, key("x-3")), 404,
                         "not-found"));
    }
}

TEST_CASE("a transfer's recipient sees it once completed, with the memo but not the sender's metadata",
          "[gateway][money][ownership]") {
    auto& f = gateway_fixture::shared();
    auto sender = f.new_user("memo_from");
    auto recipient = f.new_user("memo_to");
    f.fund(sender, 1000);
    auto transfer = [&](const std::string& amount, const std::string& k) {
        auto r = f.call("POST", "/v1/transactions",
                        tx_body(sender.wallet_id, "transfer", amount,
                                ",\"to_wallet_id\":" + std::to_string(recipient.wallet_id) +
                                    R"(,"description":"rent","metadata":{"note":"private to the sender"})"),
                        sender.token, {{"Idempotency-Key", k}, {"Prefer", "wait=5"}});
        REQUIRE(r.status == 200);
        return json_string(r.body, "transaction_id");
    };
    auto rejected = transfer("99999999", "memo-rejected");
    auto completed = transfer("300", "memo-completed");
    REQUIRE(json_string(f.call("GET", "/v1/transactions/" + rejected, "", sender.token).body, "status") == "rejected");

    // The sender sees both, with the metadata.
    auto mine = f.call("GET", "/v1/transactions/" + completed, "", sender.token);
    REQUIRE(mine.status == 200);
    CHECK(json::parse(mine.body)["metadata"]["note"].GetString() == std::string("private to the sender"));
    CHECK(f.call("GET", "/v1/transactions/" + rejected, "", sender.token).status == 200);

    // The recipient: the attempt that failed is not theirs to see, anywhere.
    CHECK(is_problem(f.call("GET", "/v1/transactions/" + rejected, "", recipient.token), 404, "not-found"));
    auto theirs = f.call("GET", "/v1/transactions/" + completed, "", recipient.token);
    REQUIRE(theirs.status == 200);
    auto t = json::parse(theirs.body);
    CHECK(t["description"].GetString() == std::string("rent"));
    CHECK(t["metadata"].IsNull());
    CHECK(t["balance_after"].IsNull());
    CHECK(t["to_balance_after"].GetInt64() == 300);
    for (const auto& path : {"/v1/wallets/" + std::to_string(recipient.wallet_id) + "/transactions", std::string("/v1/wallets/me")}) {
        INFO(path);
        auto h = f.call("GET", path, "", recipient.token);
        REQUIRE(h.status == 200);
        auto doc = json::parse(h.body);
        const auto& list = doc.HasMember("transactions") ? doc["transactions"] : doc["recent_transactions"];
        REQUIRE(list.Size() == 1);
        CHECK(list[0]["id"].GetString() == completed);
        CHECK(list[0]["direction"].GetString() == std::string("credit"));
        CHECK(list[0]["metadata"].IsNull());
    }
    // Filtering by status does not bring it back.
    auto filtered = f.call("GET", "/v1/wallets/" + std::to_string(recipient.wallet_id) + "/transactions?status=rejected", "",
                           recipient.token);
    REQUIRE(filtered.status == 200);
    CHECK(json::parse(filtered.body)["transactions"].Size() == 0);
}

TEST_CASE("idempotency: replay, conflicting replay, concurrent duplicates", "[gateway][idempotency]") {
    auto& f = gateway_fixture::shared();
    auto u = f.new_user("idem");
    auto body = tx_body(u.wallet_id, "deposit", "700");
    auto first = f.call("POST", "/v1/transactions", body, u.token, key("same-key"));
    REQUIRE(first.status == 202);
    auto id = json_string(first.body, "transaction_id");
    auto count = f.transaction_count();

    auto again = f.call("POST", "/v1/transactions", body, u.token, key("same-key"));
    REQUIRE(again.status == 202);
    CHECK(json_string(again.body, "transaction_id") == id);
    CHECK(again.header_value("Idempotent-Replayed").value_or("") == "true");
    // The body's reference is the same key.
    auto via_ref = f.call("POST", "/v1/transactions", tx_body(u.wallet_id, "deposit", "700", R"(,"reference":"same-key")"), u.token);
    REQUIRE(via_ref.status == 202);
    CHECK(json_string(via_ref.body, "transaction_id") == id);

    auto conflict = f.call("POST", "/v1/transactions", tx_body(u.wallet_id, "deposit", "701"), u.token, key("same-key"));
    CHECK(is_problem(conflict, 409, "idempotency-conflict"));
    CHECK(f.transaction_count() == count);

    // Keys are scoped to the user: another user's identical key is a different transaction.
    auto v = f.new_user("idem2");
    auto theirs = f.call("POST", "/v1/transactions", tx_body(v.wallet_id, "deposit", "700"), v.token, key("same-key"));
    REQUIRE(theirs.status == 202);
    CHECK(json_string(theirs.body, "transaction_id") != id);

    // 10 concurrent requests with one new key: one transaction, every answer names it.
    std::vector<std::thread> threads;
    std::vector<std::string> ids(10);
    std::vector<unsigned> codes(10);
    auto racing = tx_body(u.wallet_id, "deposit", "333");
    for (int i = 0; i < 10; ++i) {
        threads.emplace_back([&, i] {
            auto r = f.call("POST", "/v1/transactions", racing, u.token, key("race-key"));
            codes[i] = r.status;
            if (r.status == 202) ids[i] = json_string(r.body, "transaction_id");
        });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < 10; ++i) {
        INFO(i);
        CHECK(codes[i] == 202);
    }
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 1);
    REQUIRE(f.ledger().wait_final({id, ids[0]}, std::chrono::seconds(20)) == 0);
    auto w = f.call("GET", "/v1/wallets/" + std::to_string(u.wallet_id), "", u.token);
    CHECK(json_int(w.body, "balance") == 700 + 333);
}

TEST_CASE("ownership: another user's wallets and transactions are 404 on every route", "[gateway][ownership]") {
    auto& f = gateway_fixture::shared();
    auto owner = f.new_user("owner");
    auto intruder = f.new_user("intruder");
    f.fund(owner, 1000);
    auto tx = f.call("POST", "/v1/transactions", tx_body(owner.wallet_id, "payment", "10"), owner.token, key("own-1"));
    REQUIRE(tx.status == 202);
    auto tx_id = json_string(tx.body, "transaction_id");
    auto count = f.transaction_count();
    auto w = std::to_string(owner.wallet_id);

    auto not_found = [&](const http::client_response& r) {
        INFO(r.status << " " << r.body);
        CHECK(is_problem(r, 404, "not-found"));
        CHECK(r.body.find(owner.username) == std::string::npos);
    };
    not_found(f.call("GET", "/v1/wallets/" + w, "", intruder.token));
    not_found(f.call("GET", "/v1/wallets/" + w + "/transactions", "", intruder.token));
    not_found(f.call("GET", "/v1/transactions/" + tx_id, "", intruder.token));
    for (const char* type : {"withdrawal", "payment", "deposit"}) {
        not_found(f.call("POST", "/v1/transactions", tx_body(owner.wallet_id, type, "10"), intruder.token, key(std::string("steal-") + type)));
    }
    not_found(f.call("POST", "/v1/transactions", tx_body(owner.wallet_id, "transfer", "10", ",\"to_wallet_id\":" + std::to_string(intruder.wallet_id)),
                     intruder.token, key("steal-transfer")));
    // Unknown ids look exactly the same.
    not_found(f.call("GET", "/v1/wallets/999999999", "", intruder.token));
    not_found(f.call("GET", "/v1/transactions/" + ids::uuid_v4(), "", intruder.token));
    not_found(f.call("GET", "/v1/wallets/abc", "", intruder.token));
    CHECK(f.transaction_count() == count);
    auto list = json::parse(f.call("GET", "/v1/wallets", "", intruder.token).body);
    for (const auto& x : list["wallets"].GetArray()) CHECK(x["owner_id"].GetInt64() == intruder.id);
}

TEST_CASE("bad input gets the right 4xx problem and accepts nothing", "[gateway][validation]") {
    auto& f = gateway_fixture::shared();
    auto u = f.new_user("bad");
    auto before = f.transaction_count();
    auto w = u.wallet_id;
    struct bad_case {
        std::string name;
        std::string body;
        unsigned status;
        std::string type;
        std::string content_type = "application/json";
        std::vector<http::header> headers = {{"Idempotency-Key", "bad-" + testing::unique_suffix()}};
    };
    std::string deep = R"({"wallet_id":1,"type":"deposit","amount":5,"currency":"USD","metadata":)" + std::string(100, '[') +
                       std::string(100, ']') + "}";
    std::vector<bad_case> cases{
        {"malformed", R"({"wallet_id":)", 400, "malformed-json"},
        {"trailing garbage", tx_body(w, "deposit", "5") + "x", 400, "malformed-json"},
        {"not an object", "[1,2]", 400, "validation-error"},
        {"empty body (no content type)", "", 415, "unsupported-media-type"},
        {"wallet_id string", R"({"wallet_id":"1","type":"deposit","amount":5,"currency":"USD"})", 400, "validation-error"},
        {"type number", R"({"wallet_id":)" + std::to_string(w) + R"(,"type":5,"amount":5,"currency":"USD"})", 400, "validation-error"},
        {"unknown type", tx_body(w, "gift", "5"), 400, "validation-error"},
        {"missing amount", R"({"wallet_id":)" + std::to_string(w) + R"(,"type":"deposit","currency":"USD"})", 400, "validation-error"},
        {"missing currency", R"({"wallet_id":)" + std::to_string(w) + R"(,"type":"deposit","amount":5})", 400, "validation-error"},
        {"missing wallet", R"({"type":"deposit","amount":5,"currency":"USD"})", 400, "validation-error"},
        {"unknown field", tx_body(w, "deposit", "5", R"(,"amount_usd":5)"), 400, "validation-error"},
        {"amount 0", tx_body(w, "deposit", "0"), 400, "validation-error"},
        {"amount -1", tx_body(w, "deposit", "-1"), 400, "validation-error"},
        {"amount 1.5", tx_body(w, "deposit", "1.5"), 400, "validation-error"},
        {"amount 1e2", tx_body(w, "deposit", "1e2"), 400, "validation-error"},
        {"amount \"12\"", tx_body(w, "deposit", "\"12\""), 400, "validation-error"},
        {"amount 2^63", tx_body(w, "deposit", "9223372036854775808"), 400, "validation-error"},
        {"amount 2^53", tx_body(w, "deposit", "9007199254740992"), 400, "validation-error"},
        {"amount null", tx_body(w, "deposit", "null"), 400, "validation-error"},
        {"bad currency", R"({"wallet_id":)" + std::to_string(w) + R"(,"type":"deposit","amount":5,"currency":"usd"})", 400, "validation-error"},
        {"huge description", tx_body(w, "deposit", "5", R"(,"description":")" + std::string(20000, 'x') + "\""), 400, "validation-error"},
        {"metadata not object", tx_body(w, "deposit", "5", R"(,"metadata":[1])"), 400, "validation-error"},
        {"deep nesting", deep, 400, "malformed-json"},
        {"transfer without destination", tx_body(w, "transfer", "5"), 400, "validation-error"},
        {"deposit with destination", tx_body(w, "deposit", "5", R"(,"to_wallet_id":5)"), 400, "validation-error"},
        {"no idempotency key", tx_body(w, "deposit", "5"), 400, "validation-error", "application/json", {}},
        {"key too long", tx_body(w, "deposit", "5"), 400, "validation-error", "application/json", {{"Idempotency-Key", std::string(256, 'k')}}},
        {"key differs from reference", tx_body(w, "deposit", "5", R"(,"reference":"a")"), 400, "validation-error", "application/json",
         {{"Idempotency-Key", "b"}}},
        {"text/plain", tx_body(w, "deposit", "5"), 415, "unsupported-media-type", "text/plain"},
        {"form", "amount=5", 415, "unsupported-media-type", "application/x-www-form-urlencoded"},
        {"oversized", tx_body(w, "deposit", "5", R"(,"description":")" + std::string(70 * 1024, 'x') + "\""), 413, "payload-too-large"},
        // Parsers disagree on which of two equal names counts (the gateway's the first, jsonb the last).
        {"amount twice", R"({"wallet_id":)" + std::to_string(w) + R"(,"type":"deposit","amount":1,"amount":500000,"currency":"USD"})",
         400, "validation-error"},
        {"metadata key twice", tx_body(w, "deposit", "5", R"(,"metadata":{"k":"a","k":"b"})"), 400, "validation-error"},
        {"NUL in description", tx_body(w, "deposit", "5", R"(,"description":"a\u0000b")"), 400, "validation-error"},
        {"NUL in metadata", tx_body(w, "deposit", "5", R"(,"metadata":{"k":["a\u0000b"]})"), 400, "validation-error"},
        {"two idempotency keys", tx_body(w, "deposit", "5"), 400, "validation-error", "application/json",
         {{"Idempotency-Key", "twice-1"}, {"Idempotency-Key", "twice-2"}}},
    };
    for (const auto& c : cases) {
        http::client_request r;
        r.method = "POST";
        r.url = f.base() + "/v1/transactions";
        r.body = c.body;
        r.content_type = c.content_type;
        r.headers = c.headers;
        r.headers.push_back({"Authorization", "Bearer " + u.token});
        auto res = http::fetch(r);
        INFO(c.name << ": " << res.status << " " << res.body.substr(0, 300));
        CHECK(is_problem(res, c.status, c.type));
    }
    // The problem names the field, for a duplicate and a NUL alike.
    auto dup = f.call("POST", "/v1/transactions",
                      R"({"wallet_id":)" + std::to_string(w) + R"(,"type":"deposit","amount":1,"amount":500000,"currency":"USD"})",
                      u.token, key("bad-dup"));
    CHECK(dup.body.find(R"("field":"amount")") != std::string::npos);
    auto nul = f.call("POST", "/v1/transactions", tx_body(w, "deposit", "5", R"(,"metadata":{"k":"a\u0000b"})"), u.token, key("bad-nul"));
    CHECK(nul.body.find(R"("field":"metadata")") != std::string::npos);
    CHECK(nul.body.find("array literal") == std::string::npos);
    // Two Authorization headers: refused, whichever user either names.
    auto other = f.new_user("bad_other");
    auto twice = f.call("GET", "/v1/wallets/me", "", "",
                        {{"Authorization", "Bearer " + u.token}, {"Authorization", "Bearer " + other.token}});
    CHECK(is_problem(twice, 401, "unauthorized"));

    // Convenience routes refuse unknown fields too, and need a body of the right type.
    CHECK(is_problem(f.call("POST", "/v1/wallets/me/deposit", R"({"amount":5,"to_user_id":1})", u.token, key("bad-c1")), 400,
                     "validation-error"));
    CHECK(is_problem(f.call("POST", "/v1/wallets/me/transfer", R"({"amount":5})", u.token, key("bad-c2")), 400, "validation-error"));

    // A truncated request (Content-Length promises more than arrives) is never handled.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(f.base().substr(f.base().rfind(':') + 1))));
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    auto full = tx_body(w, "deposit", "5");
    std::string raw = "POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: trunc\r\n"
                      "Authorization: Bearer " + u.token + "\r\nContent-Length: " + std::to_string(full.size()) + "\r\n\r\n" +
                      full.substr(0, full.size() / 2);
    REQUIRE(::send(fd, raw.data(), raw.size(), 0) == static_cast<ssize_t>(raw.size()));
    ::shutdown(fd, SHUT_WR);
    char buf[512];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
    ::close(fd);

    CHECK(f.transaction_count() == before);
    CHECK(f.call("GET", "/v1/wallets/" + std::to_string(w) + "/transactions", "", u.token).body.find("\"transactions\":[]") !=
          std::string::npos);
}

TEST_CASE("the OpenAPI document matches the routes the gateway serves", "[gateway][openapi]") {
    auto& f = gateway_fixture::shared();
    auto doc = f.call("GET", "/openapi.json");
    REQUIRE(doc.status == 200);
    CHECK(doc.body == std::string(gateway::openapi_json()));
    auto spec = json::parse(doc.body, 64);
    std::set<std::pair<std::string, std::string>> documented;
    for (auto p = spec["paths"].MemberBegin(); p != spec["paths"].MemberEnd(); ++p) {
        for (auto m = p->value.MemberBegin(); m != p->value.MemberEnd(); ++m) {
            std::string method = m->name.GetString();
            for (auto& ch : method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            documented.insert({method, p->name.GetString()});
        }
    }
    std::set<std::pair<std::string, std::string>> served;
    for (const auto& r : gateway::route_table()) {
        served.insert({r.method, r.pattern});
        // The running router knows the route (no 404 or 405 from routing, without a token).
        std::string path;
        for (std::size_t i = 0; i < r.pattern.size();) {
            if (r.pattern.compare(i, 4, "{id}") == 0) {
                path += '1';
                i += 4;
            } else {
                path += r.pattern[i++];
            }
        }
        auto res = f.call(r.method, path, r.method == "POST" ? "{}" : "");
        INFO(r.method << " " << path << " -> " << res.status << " " << res.body.substr(0, 200));
        CHECK(res.status != 404);
        CHECK(res.status != 405);
    }
    CHECK(served == documented);
    // And what is not a route is a problem+json 404 or 405.
    CHECK(is_problem(f.call("GET", "/v1/nope"), 404, "not-found"));
    auto wrong = f.call("DELETE", "/v1/transactions");
    CHECK(is_problem(wrong, 405, "method-not-allowed"));
    CHECK(wrong.header_value("Allow").value_or("") == "POST");

    auto docs = f.call("GET", "/docs");
    REQUIRE(docs.status == 200);
    CHECK(docs.header_value("Content-Type").value_or("").find("text/html") == 0);
    CHECK(docs.body.find("/openapi.json") != std::string::npos);
    auto ready = f.call("GET", "/readyz");
    CHECK(ready.status == 200);
    CHECK(ready.body.find("\"broker\":true") != std::string::npos);
    auto metrics = f.call("GET", "/metrics");
    CHECK(metrics.body.find("txp_gateway_transactions_accepted_total") != std::string::npos);
}

TEST_CASE("a token logged out on one replica stops working on the others at once, not after their cache's TTL",
          "[gateway][auth]") {
    auto& f = gateway_fixture::shared();
    // Another replica whose token cache would keep a token for a minute.
    auto other = testing::start_gateway("revoke", {{"TXP_AUTH_CACHE_TTL", "60s"}});
    auto u = f.new_user("revoke");
    auto keep = f.call("POST", "/v1/auth/login", R"({"username":")" + u.username + R"(","password":")" + u.password + R"("})");
    auto second = json_string(keep.body, "token");
    REQUIRE(f.call("GET", "/v1/auth/profile", "", u.token, {}, other.base).status == 200);  // now cached there
    REQUIRE(f.call("GET", "/v1/auth/profile", "", second, {}, other.base).status == 200);
    REQUIRE(f.call("POST", "/v1/auth/logout", "", u.token).status == 204);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    http::client_response last;
    while (std::chrono::steady_clock::now() < until) {
        last = f.call("GET", "/v1/auth/profile", "", u.token, {}, other.base);
        if (last.status != 200) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(is_problem(last, 401, "unauthorized"));
    // The user's other token is untouched there.
    CHECK(f.call("GET", "/v1/auth/profile", "", second, {}, other.base).status == 200);
}

TEST_CASE("rate limits and token expiry", "[gateway][limits]") {
    auto& f = gateway_fixture::shared();
    auto g = testing::start_gateway("strict", {{"TXP_RATE_LIMIT_RPS", "1"}, {"TXP_LOGIN_RATE_PER_MIN", "3"}, {"TXP_TOKEN_TTL", "2s"}});
    auto u = f.new_user("limits", g.base);

    // Login attempts per username: 3 a minute (the successful one in new_user counted).
    std::vector<unsigned> codes;
    for (int i = 0; i < 3; ++i) {
        codes.push_back(f.call("POST", "/v1/auth/login", R"({"username":")" + u.username + R"(","password":"wrong-password"})", "", {},
                               g.base)
                            .status);
    }
    CHECK(codes[0] == 401);
    CHECK(codes.back() == 429);
    auto limited = f.call("POST", "/v1/auth/login", R"({"username":")" + u.username + R"(","password":")" + u.password + R"("})", "",
                          {}, g.base);
    CHECK(is_problem(limited, 429, "rate-limited"));
    CHECK(std::stoi(std::string(limited.header_value("Retry-After").value_or("0"))) >= 1);

    // Requests per token: 1/s with a burst of 2.
    std::vector<unsigned> seen;
    for (int i = 0; i < 4; ++i) seen.push_back(f.call("GET", "/v1/auth/profile", "", u.token, {}, g.base).status);
    CHECK(seen[0] == 200);
    CHECK(std::count(seen.begin(), seen.end(), 429u) >= 1);

    // The token expires after TXP_TOKEN_TTL (2 s): poll until 401 (429 while rate limited).
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    http::client_response last;
    while (std::chrono::steady_clock::now() < until) {
        last = f.call("GET", "/v1/auth/profile", "", u.token, {}, g.base);
        if (last.status == 401) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    CHECK(is_problem(last, 401, "unauthorized"));
    CHECK(g.proc->terminate() == 0);
}

TEST_CASE("seed-demo creates demo users and an admin who sees every wallet, idempotently", "[gateway][demo]") {
    auto& f = gateway_fixture::shared();
    std::map<std::string, std::string> env{{"TXP_DATABASE_URL", testing::database_url("gateway")}, {"TXP_LOG_FORMAT", "text"}};
    for (int i = 0; i < 2; ++i) {
        testing::child_process seed(TXP_API_GATEWAY_BIN, {"seed-demo"}, env, std::string(TXP_TEST_LOG_DIR) + "/api-gateway-seed.log");
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (seed.running() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        REQUIRE(seed.terminate() == 0);
    }
    auto login = f.call("POST", "/v1/auth/login", R"({"username":"demo1","password":"txp-demo-password"})");
    REQUIRE(login.status == 200);
    auto demo = f.call("GET", "/v1/auth/profile", "", json_string(login.body, "token"));
    CHECK(json_int(demo.body, "id") == 1);
    auto admin = f.call("POST", "/v1/auth/login", R"({"username":"admin","password":"txp-admin-password"})");
    REQUIRE(admin.status == 200);
    auto token = json_string(admin.body, "token");
    CHECK(json_string(f.call("GET", "/v1/auth/profile", "", token).body, "role") == "admin");
    auto someone = f.new_user("visible");
    bool seen = false;
    std::string cursor;
    for (int page = 0; page < 1000 && !seen; ++page) {
        auto r = f.call("GET", "/v1/wallets?limit=100" + (cursor.empty() ? "" : "&cursor=" + cursor), "", token);
        REQUIRE(r.status == 200);
        auto d = json::parse(r.body);
        for (const auto& w : d["wallets"].GetArray()) seen = seen || w["id"].GetInt64() == someone.wallet_id;
        if (d["next_cursor"].IsNull()) break;
        cursor = d["next_cursor"].GetString();
    }
    CHECK(seen);
    CHECK(f.call("GET", "/v1/wallets/" + std::to_string(someone.wallet_id), "", token).status == 200);
}
