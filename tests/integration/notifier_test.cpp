// The notifier as a real process against the real broker and database, with local webhook
// receivers: feed entries, signed deliveries, idempotency, retries with backoff, parking in
// the error queue without holding up other endpoints, the URL policy and per-user feeds.
#include "notifier_fixture.hpp"

#include "ledger.hpp"
#include "recorder.hpp"
#include "webhook_url_policy.hpp"

#include "txp/db/migrations.hpp"

#include "txp/common/ids.hpp"
#include "txp/common/json.hpp"
#include "txp/common/schema.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace txp;
using testing::eventually;
using testing::notifier_fixture;
using testing::webhook_receiver;

namespace {

std::int64_t feed_count(notifier_fixture& f, std::int64_t user) {
    return f.count("SELECT count(*) FROM notify.notifications WHERE user_id = $1::bigint", std::to_string(user));
}

std::vector<notifier::feed_entry> feed_of(notifier_fixture& f, std::int64_t user, int limit = 50) {
    auto l = f.gateway_pool().acquire();  // the gateway's role, as GET /v1/notifications reads it
    pqxx::read_transaction r(*l);
    notifier::feed_query q;
    q.user_id = user;
    q.limit = limit;
    return notifier::read_feed(r, q);
}

// Takes every message from the error queue; returns those about our delivery ids.
std::vector<amqp::delivery> parked_deliveries(amqp::admin& a, const std::set<std::string>& ids) {
    std::vector<amqp::delivery> out;
    while (auto d = a.get("notifier.events.error")) {
        a.ack(d->delivery_tag);
        if (ids.count(amqp::header_text(d->props.headers, "x-delivery-id"))) out.push_back(std::move(*d));
    }
    return out;
}

std::int64_t unix_now() { return ids::unix_seconds(); }

}  // namespace

TEST_CASE("a completed and a rejected event each make one feed entry, one signed delivery and one announcement",
          "[notifier]") {
    notifier_fixture f;
    f.purge_queues();
    amqp::admin admin(f.amqp_options());
    // A queue of our own on notify.created, as a gateway instance has for its SSE clients.
    amqp::topology sse;
    std::string sse_queue = "notifier-test-sse-" + testing::unique_suffix();
    sse.queues.push_back({.name = sse_queue});
    sse.bindings.push_back({amqp::events_exchange, sse_queue, "notify.created"});
    admin.declare(sse);

    webhook_receiver rx;
    auto user = notifier_fixture::fresh_user();
    auto [sub, secret] = f.subscribe(user, rx.url(), {"tx.completed", "tx.rejected"});
    auto done = f.tx_event({.status = "completed", .type = "deposit", .owner = user, .wallet = 501, .amount = 1250,
                            .balance_after = 1250});
    auto rejected = f.tx_event({.status = "rejected", .type = "withdrawal", .owner = user, .wallet = 501, .amount = 9000,
                                .balance_after = 1250, .reason = "insufficient_funds"});
    auto n = f.start_notifier("signed");
    f.publish({done, rejected});

    REQUIRE(eventually([&] { return rx.count() >= 2; }));
    auto got = rx.requests();
    REQUIRE(got.size() == 2);
    std::set<std::string> event_ids;
    for (const auto& r : got) {
        INFO(r.body);
        CHECK(notifier::verify_signature(secret, r.signature, r.body, unix_now()));
        CHECK_FALSE(notifier::verify_signature("whsec_wrong", r.signature, r.body, unix_now()));
        auto doc = json::parse(r.body);
        CHECK_FALSE(schema::global().validate(notifier::webhook_type, doc));
        CHECK(doc["event_id"].GetString() == r.event_id);
        CHECK(doc["delivery_id"].GetString() == r.delivery_id);
        CHECK(doc["user_id"].GetInt64() == user);
        CHECK(doc["data"]["user_id"].GetInt64() == user);
        CHECK(r.body.find("whsec_") == std::string::npos);
        event_ids.insert(r.event_id);
    }
    CHECK(event_ids == std::set<std::string>{done.props.message_id, rejected.props.message_id});

    auto feed = feed_of(f, user);
    REQUIRE(feed.size() == 2);
    // Newest first, per-user sequence numbers 2 and 1.
    CHECK(feed[0].seq == 2);
    CHECK(feed[1].seq == 1);
    std::map<std::string, notifier::feed_entry> by_type;
    for (const auto& e : feed) by_type[e.event_type] = e;
    CHECK(by_type["tx.completed"].amount == 1250);
    CHECK(by_type["tx.completed"].balance_after == 1250);
    CHECK(by_type["tx.completed"].direction == "credit");
    CHECK(by_type["tx.completed"].wallet_id == 501);
    CHECK(by_type["tx.completed"].currency == "USD");
    CHECK(by_type["tx.rejected"].status == "rejected");
    CHECK(by_type["tx.rejected"].reason == "insufficient_funds");
    CHECK(by_type["tx.rejected"].transaction_type == "withdrawal");

    REQUIRE(eventually([&] {
        auto a = f.delivery(done.props.message_id, sub), b = f.delivery(rejected.props.message_id, sub);
        return a && b && a->first == "delivered" && b->first == "delivered";
    }));
    CHECK(f.delivery(done.props.message_id, sub)->second == 1);

    // notify.created carries both entries, valid against its schema.
    std::map<std::string, std::int64_t> announced;  // event id -> seq
    REQUIRE(eventually([&] {
        while (auto d = admin.get(sse_queue)) {
            admin.ack(d->delivery_tag);
            CHECK(d->props.type == notifier::created_type);
            auto doc = json::parse(d->body);
            CHECK_FALSE(schema::global().validate(notifier::created_type, doc));
            for (const auto& e : doc["entries"].GetArray()) {
                CHECK(e["user_id"].GetInt64() == user);
                announced[e["event_id"].GetString()] = e["seq"].GetInt64();
            }
        }
        return announced.size() >= 2;
    }));
    admin.delete_queue(sse_queue);
    CHECK(announced.size() == 2);
    CHECK(announced[done.props.message_id] + announced[rejected.props.message_id] == 3);  // seqs 1 and 2
    CHECK(n->terminate() == 0);
    // Its own notify.created came back through notify.* and was not parked.
    CHECK(admin.queue_depth("notifier.events.error") == 0);
    CHECK(n->log().find("webhook attempt") != std::string::npos);
    CHECK(n->log().find(secret) == std::string::npos);
}

TEST_CASE("the same event delivered twice makes one feed entry and one delivery", "[notifier][idempotency]") {
    notifier_fixture f;
    f.purge_queues();
    webhook_receiver rx;
    auto user = notifier_fixture::fresh_user();
    auto [sub, secret] = f.subscribe(user, rx.url());
    auto ev = f.tx_event({.owner = user, .wallet = 600, .amount = 42, .balance_after = 42});
    auto n = f.start_notifier("dup");
    f.publish({ev, ev});
    REQUIRE(eventually([&] { return f.delivery(ev.props.message_id, sub).has_value(); }));
    f.publish({ev});  // once more, after it was recorded
    // A later event of the same user: when it is recorded, every copy before it was handled.
    auto sentinel = f.tx_event({.owner = user, .wallet = 600, .amount = 1, .balance_after = 43});
    f.publish({sentinel});
    REQUIRE(eventually([&] {
        auto d = f.delivery(sentinel.props.message_id, sub);
        return d && d->first == "delivered";
    }));
    CHECK(f.count("SELECT count(*) FROM notify.notifications WHERE event_id = $1", ev.props.message_id) == 1);
    CHECK(f.count("SELECT count(*) FROM notify.deliveries WHERE event_id = $1", ev.props.message_id) == 1);
    CHECK(feed_count(f, user) == 2);
    std::size_t for_ev = 0;
    for (const auto& r : rx.requests()) for_ev += r.event_id == ev.props.message_id;
    CHECK(for_ev == 1);
    CHECK(n->terminate() == 0);
}

TEST_CASE("a receiver that fails three times and then answers 200 gets the delivery, attempts counted", "[notifier][retry]") {
    notifier_fixture f;
    f.purge_queues();
    webhook_receiver rx([](std::size_t n) -> std::optional<unsigned> { return n < 3 ? 500u : 200u; });
    auto user = notifier_fixture::fresh_user();
    auto [sub, secret] = f.subscribe(user, rx.url("/flaky?token=abc"));
    auto ev = f.tx_event({.status = "completed", .type = "payment", .owner = user, .wallet = 700, .amount = 5, .balance_after = 0});
    auto n = f.start_notifier("retry");
    f.publish({ev});
    REQUIRE(eventually([&] {
        auto d = f.delivery(ev.props.message_id, sub);
        return d && d->first == "delivered";
    }));
    CHECK(f.delivery(ev.props.message_id, sub)->second == 4);
    auto got = rx.requests();
    REQUIRE(got.size() == 4);
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].delivery_id == got[0].delivery_id);
        CHECK(got[i].body == got[0].body);  // the same body on every attempt
        CHECK(got[i].attempt == std::to_string(i + 1));
        CHECK(notifier::verify_signature(secret, got[i].signature, got[i].body, unix_now()));
    }
    CHECK(n->terminate() == 0);
    auto log = n->log();
    CHECK(log.find("outcome=retry") != std::string::npos);
    CHECK(log.find("outcome=delivered") != std::string::npos);
    CHECK(log.find("token=abc") == std::string::npos);  // never the query string
    amqp::admin admin(f.amqp_options());
    CHECK(admin.queue_depth("notifier.events.error") == 0);
}

TEST_CASE("a receiver that never answers is parked with its reason while other endpoints are served",
          "[notifier][retry][park]") {
    notifier_fixture f;
    f.purge_queues();
    webhook_receiver dead([](std::size_t) -> std::optional<unsigned> { return std::nullopt; });
    webhook_receiver good;
    auto victim = notifier_fixture::fresh_user();
    auto other = notifier_fixture::fresh_user();
    auto [dead_sub, s1] = f.subscribe(victim, dead.url());
    auto [good_sub, s2] = f.subscribe(other, good.url());
    std::vector<amqp::outgoing> msgs;
    std::vector<std::string> dead_events, good_events;
    for (int i = 0; i < 6; ++i) {
        msgs.push_back(f.tx_event({.owner = victim, .wallet = 800, .amount = 10 + i}));
        dead_events.push_back(msgs.back().props.message_id);
    }
    for (int i = 0; i < 6; ++i) {
        msgs.push_back(f.tx_event({.owner = other, .wallet = 801, .amount = 10 + i}));
        good_events.push_back(msgs.back().props.message_id);
    }
    // Few slots, so that a dead endpoint could starve the rest if it were allowed to.
    auto n = f.start_notifier("park", {{"TXP_WEBHOOK_CONCURRENCY", "4"},
                                       {"TXP_WEBHOOK_ENDPOINT_CONCURRENCY", "2"},
                                       {"TXP_WEBHOOK_TIMEOUT", "500ms"}});
    f.publish(msgs);
    auto all_in = [&](const std::vector<std::string>& events, const std::string& sub, const char* status) {
        for (const auto& e : events) {
            auto d = f.delivery(e, sub);
            if (!d || d->first != status) return false;
        }
        return true;
    };
    REQUIRE(eventually([&] { return all_in(good_events, good_sub, "delivered"); }));
    // Served while the dead endpoint's deliveries were still being tried.
    CHECK_FALSE(all_in(dead_events, dead_sub, "parked"));
    REQUIRE(eventually([&] { return all_in(dead_events, dead_sub, "parked"); }, std::chrono::seconds(30)));
    for (const auto& e : good_events) CHECK(f.delivery(e, good_sub)->second == 1);
    for (const auto& e : dead_events) CHECK(f.delivery(e, dead_sub)->second == 4);

    std::set<std::string> dead_ids;
    {
        auto l = f.notify_pool().acquire();
        pqxx::read_transaction r(*l);
        for (const auto& row : r.exec_params("SELECT id::text FROM notify.deliveries WHERE subscription_id = $1::uuid", dead_sub)) {
            dead_ids.insert(row[0].as<std::string>());
        }
        auto s = r.exec_params("SELECT failure_count, last_failure_at IS NOT NULL FROM notify.webhook_subscriptions WHERE id = $1::uuid",
                               dead_sub);
        CHECK(s[0][0].as<int>() == 6);
        CHECK(s[0][1].as<bool>());
    }
    REQUIRE(dead_ids.size() == 6);
    amqp::admin admin(f.amqp_options());
    std::vector<amqp::delivery> parked;
    REQUIRE(eventually([&] {
        for (auto& d : parked_deliveries(admin, dead_ids)) parked.push_back(std::move(d));
        return parked.size() >= 6;
    }));
    CHECK(parked.size() == 6);
    for (const auto& d : parked) {
        CHECK(amqp::header_text(d.props.headers, "x-error-reason") == "webhook_failed");
        CHECK(amqp::header_text(d.props.headers, "x-error-detail").find("timeout") != std::string::npos);
        CHECK(amqp::header_text(d.props.headers, "x-failed-service") == "notifier");
        CHECK(amqp::header_text(d.props.headers, "x-origin-queue") == "notifier.events");
        CHECK(amqp::header_text(d.props.headers, "x-attempts") == "4");
        CHECK(amqp::header_text(d.props.headers, "x-destination").rfind("127.0.0.1:", 0) == 0);
        CHECK(d.props.type == notifier::webhook_type);
        auto doc = json::parse(d.body);
        CHECK_FALSE(schema::global().validate(notifier::webhook_type, doc));
        CHECK(d.body.find("whsec_") == std::string::npos);
    }
    CHECK(n->terminate() == 0);
}

TEST_CASE("moving a parked delivery back to notifier.events delivers it again", "[notifier][park]") {
    notifier_fixture f;
    f.purge_queues();
    std::atomic<bool> healthy{false};
    webhook_receiver rx([&](std::size_t) -> std::optional<unsigned> { return healthy ? 200u : 503u; });
    auto user = notifier_fixture::fresh_user();
    auto [sub, secret] = f.subscribe(user, rx.url());
    auto ev = f.tx_event({.owner = user, .wallet = 900, .amount = 7});
    auto n = f.start_notifier("reschedule");
    f.publish({ev});
    REQUIRE(eventually([&] {
        auto d = f.delivery(ev.props.message_id, sub);
        return d && d->first == "parked";
    }));
    amqp::admin admin(f.amqp_options());
    std::optional<amqp::delivery> parked;
    REQUIRE(eventually([&] {
        parked = admin.get("notifier.events.error");
        return parked.has_value();
    }));
    admin.ack(parked->delivery_tag);
    CHECK(amqp::header_text(parked->props.headers, "x-error-detail") == "HTTP 503");
    healthy = true;
    // What an operator's "move messages" does: publish it as it is to notifier.events.
    amqp::outgoing back;
    back.exchange = "";
    back.routing_key = "notifier.events";
    back.body = parked->body;
    back.props = parked->props;
    f.publish({back});
    REQUIRE(eventually([&] {
        auto d = f.delivery(ev.props.message_id, sub);
        return d && d->first == "delivered";
    }));
    CHECK(rx.requests().back().delivery_id == parked->props.message_id);
    CHECK(n->terminate() == 0);
}

TEST_CASE("forbidden webhook URLs are refused with a clear reason", "[notifier][url]") {
    notifier_fixture f;
    auto user = notifier_fixture::fresh_user();
    notifier::webhook_url_policy public_only;  // the default: TXP_WEBHOOK_ALLOW unset
    std::vector<std::pair<std::string, std::string>> cases{
        {"http://127.0.0.1:8080/hook", "address_not_allowed"},
        {"http://169.254.169.254/latest/meta-data/", "address_not_allowed"},
        {"http://10.0.0.1/hook", "address_not_allowed"},
        {"http://[::1]/hook", "address_not_allowed"},
        {"http://localhost/hook", "address_not_allowed"},
        {"file:///etc/passwd", "scheme_not_allowed"},
        {"ftp://93.184.216.34/x", "scheme_not_allowed"},
        {"https://user:pw@93.184.216.34/", "userinfo_not_allowed"},
    };
    for (const auto& [url, reason] : cases) {
        INFO(url);
        auto c = notifier::check_webhook_url(url, public_only);
        CHECK_FALSE(c.ok);
        CHECK(c.reason == reason);
        CHECK_FALSE(c.detail.empty());
        notifier::create_outcome out;
        db::with_transaction(f.gateway_pool(), [&](pqxx::work& w) {
            out = notifier::create_subscription(w, f.key(), public_only, user, url, {"*"});
        });
        CHECK_FALSE(out.ok);
        CHECK(out.reason == reason);
    }
    CHECK(f.count("SELECT count(*) FROM notify.webhook_subscriptions WHERE user_id = $1::bigint", std::to_string(user)) == 0);
    // The demo's setting lets loopback through, and nothing else.
    auto demo = notifier::webhook_url_policy::parse("127.0.0.0/8");
    CHECK(notifier::check_webhook_url("http://127.0.0.1:8080/hook", demo).ok);
    CHECK_FALSE(notifier::check_webhook_url("http://169.254.169.254/", demo).ok);
    CHECK_FALSE(notifier::check_webhook_url("http://10.0.0.1/", demo).ok);
}

TEST_CASE("a subscription whose address is not allowed at delivery time is parked, not called", "[notifier][url]") {
    notifier_fixture f;
    f.purge_queues();
    auto user = notifier_fixture::fresh_user();
    // Written past the gateway's check (as if the name now resolved elsewhere).
    std::string id = ids::uuid_v4();
    db::with_transaction(f.gateway_pool(), [&](pqxx::work& w) {
        w.exec_params("SELECT notify.create_subscription($1::uuid, $2, $3, $4::text[], $5)", id, user,
                      "http://169.254.169.254/latest/meta-data/", "{*}",
                      notifier::seal_secret(f.key(), "whsec_x", id));
    });
    auto ev = f.tx_event({.owner = user, .wallet = 950, .amount = 3});
    auto n = f.start_notifier("forbidden");
    f.publish({ev});
    REQUIRE(eventually([&] {
        auto d = f.delivery(ev.props.message_id, id);
        return d && d->first == "parked";
    }));
    CHECK(f.delivery(ev.props.message_id, id)->second == 1);  // no retries for a forbidden address
    amqp::admin admin(f.amqp_options());
    std::vector<amqp::delivery> parked;
    REQUIRE(eventually([&] {
        std::string did;
        {
            auto l = f.notify_pool().acquire();
            pqxx::read_transaction r(*l);
            did = r.exec_params("SELECT id::text FROM notify.deliveries WHERE subscription_id = $1::uuid", id)[0][0].as<std::string>();
        }
        for (auto& d : parked_deliveries(admin, {did})) parked.push_back(std::move(d));
        return !parked.empty();
    }));
    CHECK(amqp::header_text(parked[0].props.headers, "x-error-reason") == "url_forbidden");
    db::with_transaction(f.gateway_pool(), [&](pqxx::work& w) { notifier::delete_subscription(w, user, id); });
    CHECK(n->terminate() == 0);
}

TEST_CASE("a tx.events.v1 message is recorded as its events, each once, with its own payload", "[notifier][feed]") {
    notifier_fixture f;
    f.purge_queues();
    auto alice = notifier_fixture::fresh_user();
    auto bob = notifier_fixture::fresh_user();
    auto dep = f.tx_event({.owner = alice, .wallet = 11, .amount = 500, .balance_after = 500});
    auto t = f.tx_event({.status = "completed", .type = "transfer", .owner = alice, .wallet = 11, .amount = 200,
                         .balance_after = 300, .to_owner = bob, .to_wallet = 22, .to_balance_after = 200});
    auto run = notifier_fixture::tx_events({dep, t});
    auto n = f.start_notifier("runs");
    // Announced twice (a worker that crashed before its ack announces again), and the
    // deposit once more on its own, as an older worker would have.
    f.publish({run, run, dep});
    REQUIRE(eventually([&] { return feed_count(f, alice) == 2 && feed_count(f, bob) == 1; }));
    auto af = feed_of(f, alice);
    REQUIRE(af.size() == 2);
    CHECK(af[1].event_id == dep.props.message_id);
    CHECK(af[1].balance_after == 500);
    CHECK(af[0].event_id == t.props.message_id);
    CHECK(af[0].direction == "debit");
    auto bf = feed_of(f, bob);
    REQUIRE(bf.size() == 1);
    CHECK(bf[0].event_id == t.props.message_id);
    CHECK(bf[0].direction == "credit");
    CHECK(bf[0].balance_after == 200);
    // Each entry keeps its own event as payload, not the whole message.
    CHECK(f.count("SELECT count(*) FROM notify.notifications WHERE event_id = $1 AND payload->>'event_id' = event_id"
                  " AND payload->>'to_balance_after' = '200' AND NOT payload ? 'events' AND message_type = 'tx.event.v1'",
                  t.props.message_id) == 2);  // both legs of the transfer
}

TEST_CASE("a backlog of large runs is recorded in transactions of about 1,000 entries, not one", "[notifier][feed]") {
    notifier_fixture f;
    f.purge_queues();
    auto user = notifier_fixture::fresh_user();
    std::vector<amqp::outgoing> runs;
    for (int r = 0; r < 3; ++r) {
        std::vector<amqp::outgoing> events;
        for (int i = 0; i < 600; ++i) events.push_back(f.tx_event({.owner = user, .wallet = 31, .amount = 1 + i}));
        runs.push_back(notifier_fixture::tx_events(events));
    }
    f.publish(runs);  // queued before the notifier starts: its first batch takes all three
    auto n = f.start_notifier("backlog");
    REQUIRE(eventually([&] { return feed_count(f, user) == 1800; }, std::chrono::seconds(60)));
    // Rows of one transaction share its now(): one transaction per 600-entry message.
    CHECK(f.count("SELECT count(DISTINCT created_at) FROM notify.notifications WHERE user_id = $1::bigint",
                  std::to_string(user)) == 3);
    CHECK(f.count("SELECT count(DISTINCT user_seq) FROM notify.notifications WHERE user_id = $1::bigint",
                  std::to_string(user)) == 1800);
}

TEST_CASE("users see only their own feed; a transfer shows on both sides", "[notifier][feed]") {
    notifier_fixture f;
    f.purge_queues();
    auto alice = notifier_fixture::fresh_user();
    auto bob = notifier_fixture::fresh_user();
    auto a1 = f.tx_event({.owner = alice, .wallet = 11, .amount = 500, .balance_after = 500});
    auto b1 = f.tx_event({.owner = bob, .wallet = 22, .amount = 70, .balance_after = 70});
    auto t = f.tx_event({.status = "completed", .type = "transfer", .owner = alice, .wallet = 11, .amount = 200,
                         .balance_after = 300, .to_owner = bob, .to_wallet = 22, .to_balance_after = 270});
    auto t_rejected = f.tx_event({.status = "rejected", .type = "transfer", .owner = alice, .wallet = 11, .amount = 9999,
                                  .balance_after = 300, .reason = "insufficient_funds", .to_owner = bob, .to_wallet = 22});
    // A bank event (another type with a schema in proto/) lands in its owner's feed too.
    amqp::outgoing bank;
    bank.exchange = amqp::events_exchange;
    bank.routing_key = "plaid.item_linked";
    bank.props.message_id = ids::uuid_v4();
    bank.props.type = "plaid.event.v1";
    bank.body = R"({"event_id":")" + bank.props.message_id + R"(","event":"plaid.item_linked","item_id":"item-1","owner_id":)" +
                std::to_string(bob) + R"(,"occurred_at":"2026-11-22T10:00:00Z","accounts":2})";
    auto n = f.start_notifier("feed");
    f.publish({a1, b1, t, t_rejected, bank});
    REQUIRE(eventually([&] { return feed_count(f, alice) == 3 && feed_count(f, bob) == 3; }));
    auto af = feed_of(f, alice);
    auto bf = feed_of(f, bob);
    for (const auto& e : af) CHECK(e.user_id == alice);
    for (const auto& e : bf) CHECK(e.user_id == bob);
    // Bob sees the money that arrived, on his wallet, with his balance; not Alice's refusal.
    REQUIRE(bf.size() == 3);
    auto bob_transfer = std::find_if(bf.begin(), bf.end(), [&](const auto& e) { return e.event_id == t.props.message_id; });
    REQUIRE(bob_transfer != bf.end());
    CHECK(bob_transfer->wallet_id == 22);
    CHECK(bob_transfer->counterparty_wallet_id == 11);
    CHECK(bob_transfer->direction == "credit");
    CHECK(bob_transfer->balance_after == 270);
    auto bob_bank = std::find_if(bf.begin(), bf.end(), [&](const auto& e) { return e.event_id == bank.props.message_id; });
    REQUIRE(bob_bank != bf.end());
    CHECK(bob_bank->event_type == "plaid.item_linked");
    CHECK(bf[0].seq == 3);
    CHECK(bf[2].seq == 1);
    auto alice_transfer = std::find_if(af.begin(), af.end(), [&](const auto& e) { return e.event_id == t.props.message_id; });
    REQUIRE(alice_transfer != af.end());
    CHECK(alice_transfer->direction == "debit");
    CHECK(alice_transfer->balance_after == 300);
    // Filters and the resume cursor.
    {
        auto l = f.gateway_pool().acquire();
        pqxx::read_transaction r(*l);
        notifier::feed_query q;
        q.user_id = alice;
        q.event_type = "tx.rejected";
        CHECK(notifier::read_feed(r, q).size() == 1);
        q.event_type = "tx.*";
        CHECK(notifier::read_feed(r, q).size() == 3);
        q.event_type.reset();
        q.wallet_id = 22;
        CHECK(notifier::read_feed(r, q).empty());  // bob's wallet, in alice's feed: nothing
        q.wallet_id.reset();
        q.after_seq = 1;
        q.oldest_first = true;
        auto resumed = notifier::read_feed(r, q);
        REQUIRE(resumed.size() == 2);
        CHECK(resumed[0].seq == 2);
        CHECK(resumed[1].seq == 3);
    }
    // The gateway's role reads the feed but neither the sealed secrets nor writes.
    {
        auto l = f.gateway_pool().acquire();
        pqxx::work w(*l);
        CHECK_THROWS(w.exec("SELECT secret_sealed FROM notify.webhook_subscriptions LIMIT 1"));
    }
    {
        auto l = f.gateway_pool().acquire();
        pqxx::work w(*l);
        CHECK_THROWS(w.exec("DELETE FROM notify.notifications"));
    }
    CHECK(n->terminate() == 0);
}

TEST_CASE("an outcome whose event never reached the notifier is recorded from the ledger, once", "[notifier][recovery]") {
    notifier_fixture f;
    f.purge_queues();
    db::pool_options lo;
    lo.url = testing::database_url("ledger");
    lo.size = 1;
    db::pool ledger_pool(lo);
    {
        auto l = ledger_pool.acquire();
        db::migrate(*l, "ledger", db::load_migrations(db::default_migrations_dir(), "ledger"));
    }
    // A deposit accepted and applied by the ledger, whose outcome event was then lost on its
    // way to the notifier (a purged notifier.events, say): only the ledger knows of it.
    auto user = notifier_fixture::fresh_user();
    webhook_receiver rx;
    auto [sub, secret] = f.subscribe(user, rx.url(), {"tx.*"});
    ledger::tx_message m;
    db::with_transaction(f.gateway_pool(), [&](pqxx::work& w) {
        auto wallet = w.exec_params("SELECT ledger.open_wallet($1, 'USD')", user)[0][0].as<std::int64_t>();
        auto r = w.exec_params("SELECT transaction_id::text, sequence FROM ledger.accept_transaction("
                               "'test', $1, 'deposit', $2, NULL, 250, 'USD')",
                               ids::uuid_v4(), wallet);
        m.transaction_id = r[0][0].as<std::string>();
        m.sequence = r[0][1].as<std::int64_t>();
        m.type = "deposit";
        m.wallet_id = wallet;
        m.amount = 250;
        m.currency = "USD";
        m.origin = "test";
        m.accepted_at = ids::iso8601_now();
    });
    ledger::processor p(ledger_pool, "test");
    auto applied = p.run({{ids::uuid_v4(), m}}, {});
    REQUIRE(applied.outcomes.at(0).kind == ledger::outcome_kind::completed);
    p.forget({applied.journal});  // announced, as far as the ledger knows; the event is lost

    auto n = f.start_notifier("feed-recovery", {{"TXP_FEED_RECOVERY_AFTER", "1s"}, {"TXP_RECOVERY_INTERVAL", "200ms"}});
    REQUIRE(eventually([&] { return feed_count(f, user) == 1 && rx.count() == 1; }, std::chrono::seconds(30)));
    auto feed = feed_of(f, user);
    REQUIRE(feed.size() == 1);
    CHECK(feed[0].event_id == m.transaction_id + ":completed");
    CHECK(feed[0].transaction_id == m.transaction_id);
    CHECK(feed[0].amount == 250);
    CHECK(feed[0].balance_after == 250);
    CHECK(feed[0].direction == "credit");
    auto got = rx.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].event_id == m.transaction_id + ":completed");
    CHECK(notifier::verify_signature(secret, got[0].signature, got[0].body, unix_now()));
    // The lost event turning up after all changes nothing: the same event id.
    auto late = f.tx_event({.status = "completed", .type = "deposit", .owner = user, .wallet = m.wallet_id, .amount = 250,
                            .balance_after = 250, .transaction_id = m.transaction_id});
    f.publish({notifier_fixture::tx_events({late})});
    amqp::admin admin(f.amqp_options());
    CHECK(eventually([&] { return admin.queue_depth("notifier.events") == 0; }));
    CHECK(n->terminate() == 0);  // settles what it took
    CHECK(feed_count(f, user) == 1);
    CHECK(rx.count() == 1);
}

TEST_CASE("invalid events are parked with a reason and change nothing", "[notifier][poison]") {
    notifier_fixture f;
    f.purge_queues();
    auto user = notifier_fixture::fresh_user();
    auto good = f.tx_event({.owner = user, .wallet = 5, .amount = 1});
    auto bad_json = good;
    bad_json.body = "{not json";
    bad_json.props.message_id = "poison-1-" + testing::unique_suffix();
    auto bad_schema = good;
    bad_schema.body = R"({"event_id":"x"})";
    bad_schema.props.message_id = "poison-2-" + testing::unique_suffix();
    auto bad_type = good;
    bad_type.props.type = "mystery.v9";
    bad_type.props.message_id = "poison-3-" + testing::unique_suffix();
    auto n = f.start_notifier("poison");
    f.publish({bad_json, bad_schema, bad_type, good});
    amqp::admin admin(f.amqp_options());
    REQUIRE(eventually([&] { return admin.queue_depth("notifier.events.error") == 3; }));
    std::multiset<std::string> reasons;
    for (int i = 0; i < 3; ++i) {
        auto d = admin.get("notifier.events.error");
        REQUIRE(d);
        admin.ack(d->delivery_tag);
        reasons.insert(amqp::header_text(d->props.headers, "x-error-reason"));
        CHECK(amqp::header_text(d->props.headers, "x-failed-service") == "notifier");
    }
    CHECK(reasons == std::multiset<std::string>{"malformed_json", "schema_invalid", "unknown_message_type"});
    REQUIRE(eventually([&] { return feed_count(f, user) == 1; }));
    CHECK(n->terminate() == 0);
}

TEST_CASE("start-up without TXP_WEBHOOK_SECRET_KEY fails with a one-line config error", "[notifier][config]") {
    notifier_fixture f;
    auto n = f.start_notifier("nokey", {{"TXP_WEBHOOK_SECRET_KEY", ""}});
    REQUIRE(eventually([&] { return !n->running(); }));
    CHECK(n->terminate() == 2);
    CHECK(n->log().find("TXP_WEBHOOK_SECRET_KEY") != std::string::npos);
}

// Not part of the suite: scripts/bench runs it ("[.bench]").
TEST_CASE("bench: 50,000 events recorded", "[.bench][notifier]") {
    notifier_fixture f;
    f.purge_queues();
    const int total = 50'000;
    std::vector<std::int64_t> users;
    for (int i = 0; i < 1000; ++i) users.push_back(notifier_fixture::fresh_user());
    std::vector<amqp::outgoing> msgs;
    msgs.reserve(total);
    for (int i = 0; i < total; ++i) {
        msgs.push_back(f.tx_event({.owner = users[static_cast<std::size_t>(i) % users.size()], .wallet = 1 + i % 1000,
                                   .amount = 1 + i % 97, .balance_after = i}));
    }
    f.publish(msgs);  // queued first: the bench measures recording, not publishing
    auto start = std::chrono::steady_clock::now();
    auto n = f.start_notifier("bench", {{"TXP_LOG_LEVEL", "warn"}});
    auto first = msgs.front().props.message_id, last = msgs.back().props.message_id;
    std::string users_array = db::array_literal(users);
    REQUIRE(eventually([&] {
        return f.count("SELECT count(*) FROM notify.notifications WHERE user_id = ANY($1::bigint[])", users_array) == total;
    }, std::chrono::seconds(120)));
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("notifier bench: %d events recorded in %.2f s (%.0f/s, including process start)\n", total, secs, total / secs);
    CHECK(n->terminate() == 0);
}
