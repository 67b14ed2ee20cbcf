// Unit tests of the gateway's pure parts: credentials, rate limits, and the OpenAPI
// document against the router's route table (both directions).
#include "credentials.hpp"
#include "gateway.hpp"
#include "outcome_waiters.hpp"
#include "rate_limiter.hpp"
#include "token_cache.hpp"

#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

using namespace txp;
using namespace txp::gateway;

TEST_CASE("passwords are Argon2id hashes that verify only the right password", "[gateway][credentials]") {
    init_crypto();
    auto h = hash_password("correct horse battery");
    CHECK(h.rfind("$argon2id$", 0) == 0);
    CHECK(h.find("m=19456,t=2,p=1") != std::string::npos);
    CHECK(verify_password("correct horse battery", h));
    CHECK_FALSE(verify_password("correct horse batterY", h));
    CHECK_FALSE(verify_password("x", "not a hash"));
    CHECK(hash_password("same") != hash_password("same"));  // salted
}

TEST_CASE("tokens are 256-bit random hex with a prefix, stored as sha256", "[gateway][credentials]") {
    init_crypto();
    auto a = new_token(), b = new_token();
    CHECK(a != b);
    CHECK(looks_like_token(a));
    CHECK(a.size() == 4 + 64);
    CHECK_FALSE(looks_like_token("txp_" + std::string(64, 'g')));
    CHECK_FALSE(looks_like_token(a.substr(1)));
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("token buckets allow a burst, then refill at the rate", "[gateway][rate]") {
    rate_limiter r(2.0, 4.0);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i) CHECK(r.take("k", t0) == 0);
    CHECK(r.take("k", t0) >= 1);
    CHECK(r.take("other", t0) == 0);  // keys are independent
    CHECK(r.take("k", t0 + std::chrono::milliseconds(600)) == 0);
    CHECK(r.take("k", t0 + std::chrono::milliseconds(600)) >= 1);
    rate_limiter off(0, 0);
    for (int i = 0; i < 1000; ++i) REQUIRE(off.take("k", t0) == 0);
}

TEST_CASE("the token cache reuses lookups for its TTL, never past the token's expiry or a logout", "[gateway][auth]") {
    using namespace std::chrono_literals;
    token_cache cache(5s, 3);
    auto t0 = token_cache::clock::now();
    auto wall = std::chrono::system_clock::now();
    cached_caller alice{1, "alice", "user", wall + 1h};
    cache.put("a", alice, t0, t0);
    REQUIRE(cache.find("a", t0 + 1s, wall + 1s));
    CHECK(cache.find("a", t0 + 1s, wall + 1s)->username == "alice");
    CHECK_FALSE(cache.find("a", t0 + 5s, wall + 5s));  // the TTL passed: ask the database again
    CHECK_FALSE(cache.find("unknown", t0, wall));

    cached_caller short_lived{2, "bob", "user", wall + 2s};
    cache.put("b", short_lived, t0, t0);
    CHECK(cache.find("b", t0 + 1s, wall + 1s));
    CHECK_FALSE(cache.find("b", t0 + 3s, wall + 3s));  // the token itself expired

    // Logout: gone at once, and a lookup that started before it cannot bring it back.
    cache.put("c", alice, t0, t0);
    cache.revoke("c", t0 + 1s);
    CHECK_FALSE(cache.find("c", t0 + 1s, wall + 1s));
    cache.put("c", alice, t0 + 500ms, t0 + 2s);
    CHECK_FALSE(cache.find("c", t0 + 2s, wall + 2s));

    // Bounded: a full cache makes room instead of growing.
    for (int i = 0; i < 100; ++i) cache.put(std::to_string(i) + "-k", alice, t0, t0);
    CHECK(cache.size() <= 3);

    token_cache off(0s, 10);
    off.put("a", alice, t0, t0);
    CHECK_FALSE(off.find("a", t0, wall));
}

TEST_CASE("tx events parse into outcomes", "[gateway][events]") {
    auto one = outcome_waiters::parse_events(
        R"({"event_id":"x:rejected","transaction_id":"3f2c4e1a-8b7d-4c2e-9f10-2a3b4c5d6e7f","status":"rejected","reason":"insufficient_funds"})");
    REQUIRE(one.size() == 1);
    CHECK(one[0].first == "3f2c4e1a-8b7d-4c2e-9f10-2a3b4c5d6e7f");
    CHECK(one[0].second.status == "rejected");
    CHECK(one[0].second.reason == std::optional<std::string>("insufficient_funds"));
    // tx.events.v1: every outcome of the run, in order; what is not an outcome is left out.
    auto run = outcome_waiters::parse_events(
        R"({"events":[{"transaction_id":"a","status":"completed"},{"transaction_id":"b","status":"queued"},)"
        R"(7,{"transaction_id":"c","status":"completed"}]})");
    REQUIRE(run.size() == 2);
    CHECK(run[0].first == "a");
    CHECK(run[1].first == "c");
    CHECK_FALSE(run[1].second.reason);
    CHECK(outcome_waiters::parse_events("{").empty());
    CHECK(outcome_waiters::parse_events(R"({"transaction_id":"x","status":"queued"})").empty());
    CHECK(outcome_waiters::parse_events(R"({"events":{"transaction_id":"x","status":"completed"}})").empty());
}

TEST_CASE("openapi.json describes exactly the routes the router serves", "[gateway][openapi]") {
    auto doc = json::parse(std::string(openapi_json()), 64);
    REQUIRE(doc.IsObject());
    CHECK(std::string(doc["openapi"].GetString()).rfind("3.0", 0) == 0);
    std::set<std::pair<std::string, std::string>> documented, served;
    for (auto p = doc["paths"].MemberBegin(); p != doc["paths"].MemberEnd(); ++p) {
        for (auto m = p->value.MemberBegin(); m != p->value.MemberEnd(); ++m) {
            std::string method = m->name.GetString();
            std::transform(method.begin(), method.end(), method.begin(), ::toupper);
            documented.insert({method, p->name.GetString()});
            // Every operation documents its responses, and every $ref resolves.
            CHECK(m->value.HasMember("responses"));
        }
    }
    for (const auto& r : route_table()) served.insert({r.method, r.pattern});
    for (const auto& s : served) {
        INFO(s.first << " " << s.second);
        CHECK(documented.count(s) == 1);
    }
    for (const auto& d : documented) {
        INFO(d.first << " " << d.second);
        CHECK(served.count(d) == 1);
    }
    // Every local $ref points at something.
    std::string text(openapi_json());
    std::size_t pos = 0;
    while ((pos = text.find("\"$ref\": \"#/", pos)) != std::string::npos) {
        auto start = pos + 9;
        auto end = text.find('"', start);
        std::string ref = text.substr(start, end - start);
        rapidjson::Value* at = &doc;
        std::size_t i = 2;
        while (i < ref.size()) {
            auto j = ref.find('/', i);
            if (j == std::string::npos) j = ref.size();
            auto key = ref.substr(i, j - i);
            INFO(ref);
            REQUIRE(at->HasMember(key.c_str()));
            at = &(*at)[key.c_str()];
            i = j + 1;
        }
        pos = end;
    }
}

TEST_CASE("the docs page is self-contained", "[gateway][docs]") {
    std::string html(docs_html());
    CHECK(html.find("/openapi.json") != std::string::npos);
    CHECK(html.find("http://") == std::string::npos);
    CHECK(html.find("https://") == std::string::npos);
    CHECK(html.find("<script src") == std::string::npos);
}
