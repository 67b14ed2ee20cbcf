// txp::amqp against the real broker: confirmed publishing, consuming with acks, returns,
// cancel, and the topology (idempotent declare, the committed definitions file).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "amqp_support.hpp"

using namespace txp::amqp;
using namespace amqp_test;

TEST_CASE("2,000 confirmed messages arrive exactly once with their properties", "[amqp][integration]") {
    scratch_queue q("roundtrip");
    constexpr int n = 2000;
    std::vector<outgoing> msgs;
    for (int i = 0; i < n; ++i) {
        outgoing m = q.message("id-" + std::to_string(i), R"({"i":)" + std::to_string(i) + "}");
        m.props.correlation_id = "corr-" + std::to_string(i);
        m.props.type = "test.message.v1";
        m.props.app_id = "amqp_tests";
        m.props.timestamp = 1700000000 + i;
        m.props.headers["x-int"] = std::int64_t{i} * 1000000007LL;
        m.props.headers["x-text"] = "text " + std::to_string(i);
        m.props.headers["x-flag"] = i % 2 == 0;
        msgs.push_back(std::move(m));
    }

    publisher pub(options("amqp_test.roundtrip.pub"), q.topo);
    auto results = pub.publish(msgs, 60s);
    REQUIRE(results.size() == n);
    for (int i = 0; i < n; ++i) {
        INFO(i << ": " << results[i].detail);
        REQUIRE(results[i].status == publish_status::confirmed);
    }

    consumer con(options("amqp_test.roundtrip.con"), q.topo, q.name, 200);
    std::vector<int> seen(n, 0);
    int received = 0;
    const auto deadline = clock::now() + 60s;
    while (received < n && clock::now() < deadline) {
        auto batch = con.next_batch(100, 2s, 20ms);
        if (batch.empty()) continue;
        for (const auto& d : batch) {
            REQUIRE(d.props.message_id.rfind("id-", 0) == 0);
            int i = std::stoi(d.props.message_id.substr(3));
            REQUIRE(i >= 0);
            REQUIRE(i < n);
            ++seen[i];
            ++received;
            const outgoing& m = msgs[i];
            CHECK(d.body == m.body);
            CHECK(d.props.correlation_id == m.props.correlation_id);
            CHECK(d.props.type == "test.message.v1");
            CHECK(d.props.app_id == "amqp_tests");
            CHECK(d.props.content_type == "application/json");
            CHECK(d.props.timestamp == m.props.timestamp);
            CHECK(d.props.persistent);
            CHECK(d.props.headers == m.props.headers);
            CHECK(d.exchange == "txp.commands");
            CHECK(d.routing_key == q.routing_key);
            CHECK(d.queue == q.name);
            CHECK_FALSE(d.redelivered);
        }
        REQUIRE(con.ack_up_to(batch.back()));
    }
    CHECK(received == n);
    for (int i = 0; i < n; ++i) {
        INFO("message " << i);
        CHECK(seen[i] == 1);
    }
    CHECK_FALSE(con.next(300ms).has_value());
    con.close();

    admin a(options("amqp_test.roundtrip.admin"));
    // Acked for good: nothing comes back once the consumer's connection is gone.
    CHECK(eventually([&] { return a.queue_depth(q.name) == 0; }, 5s));
    CHECK_FALSE(a.get(q.name).has_value());
}

TEST_CASE("ack_all acks exactly the given deliveries, never one held back below them", "[amqp][integration]") {
    scratch_queue q("ackall");
    std::vector<outgoing> msgs;
    for (int i = 0; i < 10; ++i) msgs.push_back(q.message("id-" + std::to_string(i), "{}"));
    publisher pub(options("amqp_test.ackall.pub"), q.topo);
    for (const auto& r : pub.publish(msgs, 30s)) REQUIRE(r.status == publish_status::confirmed);

    consumer con(options("amqp_test.ackall.con"), q.topo, q.name, 50);
    std::vector<delivery> got;
    const auto deadline = clock::now() + 30s;
    while (got.size() < 10 && clock::now() < deadline) {
        auto b = con.next_batch(10, 2s, 50ms);
        got.insert(got.end(), b.begin(), b.end());
    }
    REQUIRE(got.size() == 10);
    // The 4th is held back (as the ledger-worker holds a message for its predecessor).
    CHECK(con.ack_all({got.begin(), got.begin() + 3}));  // everything below: one multiple ack
    CHECK(con.ack_all({got.begin() + 4, got.end()}));    // the held one lies below: one by one
    con.close();

    // Only the held one comes back.
    consumer again(options("amqp_test.ackall.again"), q.topo, q.name, 50);
    auto d = again.next(5s);
    REQUIRE(d.has_value());
    CHECK(d->props.message_id == got[3].props.message_id);
    CHECK(d->redelivered);
    CHECK(again.ack_all({*d}));
    CHECK_FALSE(again.next(300ms).has_value());
}

TEST_CASE("bodies larger than a frame and empty bodies arrive whole, in publish order", "[amqp][integration]") {
    // The publisher writes the frames itself: a body past the negotiated frame size (128 KiB)
    // is split into several body frames, an empty body has none.
    scratch_queue q("frames");
    std::vector<outgoing> msgs;
    for (std::size_t size : {std::size_t{300'000}, std::size_t{0}, std::size_t{131'064}, std::size_t{131'065}, std::size_t{7}}) {
        std::string body(size, ' ');
        for (std::size_t k = 0; k < size; ++k) body[k] = static_cast<char>('a' + (k * 7 + size) % 26);
        auto m = q.message("size-" + std::to_string(size), body);
        m.props.headers["x-size"] = static_cast<std::int64_t>(size);
        msgs.push_back(std::move(m));
    }
    publisher pub(options("amqp_test.frames.pub"), q.topo);
    for (const auto& r : pub.publish(msgs, 30s)) CHECK(r.status == publish_status::confirmed);
    consumer con(options("amqp_test.frames.con"), q.topo, q.name, 10);
    for (const auto& m : msgs) {
        auto d = con.next(10s);
        REQUIRE(d);
        CHECK(d->props.message_id == m.props.message_id);
        CHECK(d->body.size() == m.body.size());
        CHECK(d->body == m.body);
        CHECK(d->props.headers == m.props.headers);
        CHECK(con.ack(*d));
    }
}

TEST_CASE("an unroutable publish is returned, not confirmed", "[amqp][integration]") {
    scratch_queue q("returns");
    publisher pub(options("amqp_test.returns.pub"), q.topo);

    outgoing nowhere = q.message("lost-1", "{}");
    nowhere.routing_key = "amqp_test.nobody." + txp::testing::unique_suffix();
    std::vector<outgoing> msgs = {q.message("ok-1", "{}"), nowhere, q.message("ok-2", "{}")};
    auto r = pub.publish(msgs, 10s);
    REQUIRE(r.size() == 3);
    CHECK(r[0].status == publish_status::confirmed);
    CHECK(r[1].status == publish_status::returned);
    CHECK(r[1].detail.find("NO_ROUTE") != std::string::npos);
    CHECK(r[2].status == publish_status::confirmed);

    CHECK_THROWS_AS(pub.publish_one(nowhere), publish_error);

    // The publisher keeps working, and only the routable ones reached the queue.
    pub.publish_one(q.message("ok-3", "{}"));
    admin a(options("amqp_test.returns.admin"));
    CHECK(eventually([&] { return a.queue_depth(q.name) == 3; }, 5s));

    // Not mandatory (a broadcast nobody may be listening to): unroutable is confirmed.
    outgoing broadcast = nowhere;
    broadcast.mandatory = false;
    std::vector<outgoing> more = {broadcast, q.message("ok-4", "{}")};
    auto r2 = pub.publish(more, 10s);
    REQUIRE(r2.size() == 2);
    CHECK(r2[0].status == publish_status::confirmed);
    CHECK(r2[1].status == publish_status::confirmed);
    CHECK(eventually([&] { return a.queue_depth(q.name) == 4; }, 5s));
}

TEST_CASE("a publish to a missing exchange fails fast and the publisher recovers", "[amqp][integration]") {
    scratch_queue q("noexchange");
    publisher pub(options("amqp_test.noexchange.pub"), q.topo);
    outgoing bad = q.message("bad-1", "{}");
    bad.exchange = "amqp_test.no_such_exchange." + txp::testing::unique_suffix();
    std::vector<outgoing> msgs = {bad};
    const auto start = clock::now();
    auto r = pub.publish(msgs, 30s);
    CHECK(r[0].status == publish_status::failed);
    CHECK(r[0].detail.find("no exchange") != std::string::npos);
    CHECK(clock::now() - start < 25s);  // not by running into the timeout

    pub.publish_one(q.message("good-1", "{}"));
    admin a(options("amqp_test.noexchange.admin"));
    CHECK(eventually([&] { return a.queue_depth(q.name) == 1; }, 5s));
}

TEST_CASE("keep_alive keeps an idle publisher's connection open; without it the broker closes it", "[amqp][integration]") {
    scratch_queue q("idle");
    auto opts = options("amqp_test.idle.pub");
    opts.heartbeat = 1s;  // the broker closes a connection silent for two intervals
    publisher kept(opts, q.topo);
    publisher left(opts, q.topo);
    kept.publish_one(q.message("kept-1", "{}"));
    left.publish_one(q.message("left-1", "{}"));
    const auto until = clock::now() + 5s;
    while (clock::now() < until) {
        kept.keep_alive();
        std::this_thread::sleep_for(100ms);
    }
    kept.publish_one(q.message("kept-2", "{}"));
    left.publish_one(q.message("left-2", "{}"));  // finds its connection gone and publishes on a new one
    CHECK(kept.connections_opened() == 1);
    CHECK(left.connections_opened() == 2);
    admin a(options("amqp_test.idle.admin"));
    CHECK(eventually([&] { return a.queue_depth(q.name) == 4; }, 5s));
}

TEST_CASE("after cancel no new deliveries arrive and the held ones can still be acked", "[amqp][integration]") {
    scratch_queue q("cancel");
    publisher pub(options("amqp_test.cancel.pub"), q.topo);
    std::vector<outgoing> first;
    for (int i = 0; i < 20; ++i) first.push_back(q.message("before-" + std::to_string(i), "{}"));
    for (const auto& r : pub.publish(first, 10s)) REQUIRE(r.status == publish_status::confirmed);

    consumer con(options("amqp_test.cancel.con"), q.topo, q.name, 5);
    auto d = con.next(10s);
    REQUIRE(d.has_value());
    CHECK(con.ack(*d));
    con.cancel();

    // What the broker had already sent (at most the prefetch) is still handed out.
    std::vector<delivery> held;
    while (auto more = con.next(500ms)) held.push_back(std::move(*more));
    CHECK(held.size() <= 5);
    for (const auto& h : held) {
        CHECK(h.props.message_id.rfind("before-", 0) == 0);
        CHECK(con.ack(h));
    }

    std::vector<outgoing> later;
    for (int i = 0; i < 5; ++i) later.push_back(q.message("after-" + std::to_string(i), "{}"));
    for (const auto& r : pub.publish(later, 10s)) REQUIRE(r.status == publish_status::confirmed);
    CHECK_FALSE(con.next(1s).has_value());

    con.close();
    const std::uint32_t expected = 20 - 1 - static_cast<std::uint32_t>(held.size()) + 5;
    admin a(options("amqp_test.cancel.admin"));
    CHECK(eventually([&] { return a.queue_depth(q.name) == expected; }, 10s));
}

TEST_CASE("a stale delivery cannot be acked on a new connection", "[amqp][integration]") {
    scratch_queue q("stale");
    publisher pub(options("amqp_test.stale.pub"), q.topo);
    pub.publish_one(q.message("stale-1", "{}"));

    const std::string name = "amqp_test.stale.con." + txp::testing::unique_suffix();
    consumer con(options(name), q.topo, q.name, 10);
    auto d = con.next(10s);
    REQUIRE(d.has_value());
    const auto gen = con.generation();
    REQUIRE(eventually([&] { return close_connections_named(name) > 0; }, 30s, 250ms));

    // The broker requeues it; the consumer reconnects by itself and gets it again.
    auto again = con.next(20s);
    REQUIRE(again.has_value());
    CHECK(again->props.message_id == "stale-1");
    CHECK(again->redelivered);
    CHECK(con.generation() > gen);
    CHECK_FALSE(con.ack(*d));
    CHECK(con.ack(*again));
}

TEST_CASE("declaring the topology twice is harmless; a conflicting one is refused", "[amqp][integration]") {
    admin a(options("amqp_test.topology.admin"));
    REQUIRE_NOTHROW(a.declare(txp_topology()));
    REQUIRE_NOTHROW(a.declare(txp_topology()));

    topology changed = txp_topology();
    changed.queues[1].message_ttl_ms = 12345;  // ledger.transactions.retry.1s with another TTL
    REQUIRE(changed.queues[1].name == "ledger.transactions.retry.1s");
    CHECK_THROWS_WITH(a.declare(changed), Catch::Contains("PRECONDITION_FAILED"));
    // The admin stays usable after the channel error.
    CHECK_NOTHROW(a.queue_depth("ledger.transactions.retry.1s"));
    CHECK_THROWS(a.queue_depth("amqp_test.missing." + txp::testing::unique_suffix()));
    CHECK_NOTHROW(a.queue_depth("ledger.transactions"));
}

namespace {
// A queue's details from the management API once they include its policy fields (the broker
// reports a new queue's details every few seconds).
// With want_policy false, once they include the queue's effective policy (none, or one).
std::string queue_policy(const std::string& vhost, const std::string& queue, bool want_policy = true) {
    std::string body;
    for (int i = 0; i < 100; ++i) {
        body = txp::testing::rabbit_api_call("GET", "/queues/" + vhost + "/" + queue);
        if (!want_policy && body.find("\"effective_policy_definition\":") != std::string::npos) break;
        if (body.find("\"policy\":") != std::string::npos && body.find("\"policy\":null") == std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return body;
}
}  // namespace

TEST_CASE("the committed definitions files are the exported topology and RabbitMQ accepts them", "[amqp][integration]") {
    // Regenerate with: txp-export-definitions quorum > deploy/rabbitmq/definitions.json,
    // txp-export-definitions classic > deploy/rabbitmq/definitions-classic.json
    for (auto [type, path] : {std::pair{queue_type::quorum, std::string(TXP_AMQP_DEFINITIONS_DIR "/definitions.json")},
                              std::pair{queue_type::classic, std::string(TXP_AMQP_DEFINITIONS_DIR "/definitions-classic.json")}}) {
        INFO(path);
        std::ifstream in(path);
        REQUIRE(in.good());
        std::stringstream file;
        file << in.rdbuf();
        CHECK(file.str() == txp_topology(type).to_definitions_json());

        // Import it into a fresh vhost, then declare the topology the services declare: any
        // argument that differs would be refused with PRECONDITION_FAILED.
        const std::string vh = "amqp_defs_" + txp::testing::unique_suffix();
        int status = 0;
        txp::testing::rabbit_api_call("PUT", "/vhosts/" + vh, &status);
        REQUIRE((status == 201 || status == 204));
        struct vhost_guard {
            std::string vh;
            ~vhost_guard() { txp::testing::rabbit_api_call("DELETE", "/vhosts/" + vh); }
        } guard{vh};
        std::string out;
        txp::testing::run("curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'content-type: application/json' -d "
                          "'{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}' '" +
                              txp::testing::rabbit_api() + "/permissions/" + vh + "/guest'",
                          &out);
        REQUIRE((out == "201" || out == "204"));
        out.clear();
        txp::testing::run("curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' "
                          "--data-binary @" + path + " '" + txp::testing::rabbit_api() + "/definitions/" + vh + "'",
                          &out);
        REQUIRE((out == "201" || out == "204"));

        connection_options o = options("amqp_test.definitions");
        o.ep.vhost = vh;
        admin a(o);
        CHECK(a.queue_depth("ledger.transactions.retry.60s") == 0);  // imported
        CHECK_NOTHROW(a.declare(txp_topology(type)));
        auto queue = queue_policy(vh, "ledger.transactions", type == queue_type::classic);
        if (type == queue_type::classic) {
            // The policies came with it, and RabbitMQ applies them to the queues.
            CHECK(queue.find("\"policy\":\"txp-lazy-queues\"") != std::string::npos);
        } else {
            CHECK(queue.find("\"type\":\"quorum\"") != std::string::npos);
            CHECK(queue.find("\"x-delivery-limit\":20") != std::string::npos);
        }
    }
}

TEST_CASE("the vhost scripts/test prepared carries the definitions file's policies", "[amqp][integration]") {
    // bootstrap_vhost (scripts/lib/infra.sh) applies them natively, as docker-compose's
    // definitions import does, from the file of the queue type in use: a classic queue the
    // services declare here is lazy; a quorum queue is quorum, and no txp policy applies to it.
    admin a(options("amqp_test.policies"));
    a.declare(txp_topology());
    auto vh = txp::testing::vhost();
    const bool classic = queue_type_from_env() == queue_type::classic;
    auto queue = queue_policy(vh == "/" ? std::string("%2f") : vh, "notifier.events", classic);
    if (classic) {
        CHECK(queue.find("\"policy\":\"txp-lazy-queues\"") != std::string::npos);
        CHECK(queue.find("\"queue-mode\":\"lazy\"") != std::string::npos);
        CHECK(queue.find("\"queue-version\":2") != std::string::npos);
    } else {
        CHECK(queue.find("\"type\":\"quorum\"") != std::string::npos);
        CHECK(queue.find("\"effective_policy_definition\":{}") != std::string::npos);
        CHECK(queue.find("txp-lazy-queues") == std::string::npos);
    }
}

TEST_CASE("a refused publish goes out again on a new channel until it is confirmed", "[amqp][integration]") {
    // A quorum queue's publishers that opened their channel during a leader election kept
    // sending to the old leader (RabbitMQ 3.10) and had every publish nacked until they
    // reconnected, while a new channel's publishes were confirmed. A queue that refuses
    // everything (max-length 0, reject-publish, through a policy) stands in for it: a nacked
    // message is published again on new channels until the timeout, then reported nacked;
    // once the queue takes messages, the same publish call gets it confirmed.
    scratch_queue q("nacked");
    const std::string vh = txp::testing::vhost() == "/" ? std::string("%2f") : txp::testing::vhost();
    const std::string policy = "amqp_test_full_" + txp::testing::unique_suffix();
    auto set_policy = [&] {
        std::string out;
        txp::testing::run("curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'content-type: application/json' -d "
                          "'{\"pattern\":\"^" + q.name + "$\",\"apply-to\":\"queues\",\"priority\":100,"
                          "\"definition\":{\"max-length\":0,\"overflow\":\"reject-publish\"}}' '" +
                              txp::testing::rabbit_api() + "/policies/" + vh + "/" + policy + "'",
                          &out);
        return out == "201" || out == "204";
    };
    REQUIRE(set_policy());
    struct policy_guard {
        std::string path;
        ~policy_guard() { txp::testing::rabbit_api_call("DELETE", path); }
    } guard{"/policies/" + vh + "/" + policy};
    publisher pub(options("amqp_test.nacked"), q.topo);
    std::vector<outgoing> one{q.message("nacked-1", "{}")};
    // The broker applies a new policy to the queue asynchronously: wait until it refuses.
    REQUIRE(eventually([&] { return pub.publish(one, 1s)[0].status == publish_status::nacked; }, 20s, 100ms));
    const auto opened = pub.connections_opened();
    auto refused = pub.publish(one, 1500ms);
    CHECK(refused[0].status == publish_status::nacked);
    CHECK(pub.connections_opened() >= opened + 2);  // published again on new channels meanwhile

    // The queue takes messages again while a publish is being refused: it ends confirmed.
    std::thread lift([&] {
        std::this_thread::sleep_for(1s);
        txp::testing::rabbit_api_call("DELETE", "/policies/" + vh + "/" + policy);
    });
    auto later = pub.publish(one, 20s);
    lift.join();
    CHECK(later[0].status == publish_status::confirmed);
    CHECK(admin(options("amqp_test.nacked.depth")).queue_depth(q.name) == 1);
}

TEST_CASE("with a list of broker URLs, a node that does not answer is passed over", "[amqp][integration]") {
    // TXP_AMQP_URL names every node of a cluster; the first here has nothing listening (a node
    // that is down). The publisher, the consumer and the admin connect to the next one at once
    // instead of retrying the first with backoff until their time runs out.
    scratch_queue q("nodes");
    auto with_dead_first = [](const std::string& name) {
        connection_options o = options(name);
        o.set_endpoints("amqp://guest:guest@127.0.0.1:1/dead," + txp::testing::amqp_url());
        o.backoff_initial = 2s;  // a retry of the dead node would cost the test its time
        o.backoff_max = 2s;
        REQUIRE(o.node_count() == 2);
        return o;
    };
    publisher pub(with_dead_first("amqp_test.nodes.pub"), q.topo);
    std::vector<outgoing> one{q.message("nodes-1", "{}")};
    CHECK(pub.publish(one, 1500ms)[0].status == publish_status::confirmed);
    consumer con(with_dead_first("amqp_test.nodes.con"), q.topo, q.name, 10);
    auto d = con.next(1500ms);
    REQUIRE(d.has_value());
    CHECK(d->props.message_id == "nodes-1");
    CHECK(con.ack(*d));
    CHECK(broker_reachable(with_dead_first("amqp_test.nodes.ready"), q.name));
}
