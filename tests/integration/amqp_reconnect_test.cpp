// txp::amqp survives broker loss: connections killed mid-stream, and (run serially, as it
// stops the whole broker) a broker stop_app/start_app.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <mutex>
#include <set>

#include "amqp_support.hpp"

using namespace txp::amqp;
using namespace amqp_test;

namespace {

struct stream_outcome {
    std::set<std::string> confirmed;
    std::set<std::string> received;
    std::size_t failed = 0;  // neither confirmed nor nacked
    std::size_t nacked = 0;
    std::string first_problem;  // status and detail of the first non-confirmed message
    std::uint64_t consumer_generation = 0;
    bool publisher_done = false;
};

// Publishes in batches from one thread while another consumes and acks. After the first
// batch the publisher waits for `prepare` (run on the calling thread); `disrupt` runs on
// the calling thread once `disrupt_after` messages are confirmed, while the publisher keeps
// going: it stops only when it has published at least `total` and `tail` more after the
// disruption finished, so the disruption always lands in the middle of the stream.
template <typename Prepare, typename Disrupt>
stream_outcome stream_through(const scratch_queue& q, const std::string& name, int total, int disrupt_after,
                              Prepare prepare, Disrupt disrupt, std::chrono::seconds limit) {
    constexpr int tail = 1000;
    stream_outcome out;
    std::mutex mu;
    std::atomic<int> confirmed_count{0};
    std::atomic<bool> publisher_done{false};
    std::atomic<bool> stop{false};
    std::atomic<bool> go{false};
    std::atomic<bool> disruption_over{false};
    const auto deadline = clock::now() + limit;

    std::thread publishing([&] {
        publisher pub(options(name + ".pub"), q.topo);
        constexpr int batch = 250;
        int next = 0;
        int after = 0;
        while (!stop && clock::now() < deadline && !(next >= total && disruption_over && after >= tail)) {
            const bool counts_as_after = disruption_over;
            std::vector<outgoing> msgs;
            for (int i = 0; i < batch; ++i, ++next) {
                msgs.push_back(q.message("m-" + std::to_string(next), std::string(200, 'x')));
            }
            auto results = pub.publish(msgs, 60s);
            if (counts_as_after) after += batch;
            {
                std::lock_guard lock(mu);
                for (std::size_t i = 0; i < msgs.size(); ++i) {
                    const publish_result& r = results[i];
                    if (r.status == publish_status::confirmed) {
                        out.confirmed.insert(msgs[i].props.message_id);
                        ++confirmed_count;
                        continue;
                    }
                    if (out.first_problem.empty()) out.first_problem = std::string(to_string(r.status)) + ": " + r.detail;
                    if (r.status == publish_status::nacked) {
                        ++out.nacked;
                    } else {
                        ++out.failed;
                    }
                }
            }
            while (!go && !stop) std::this_thread::sleep_for(10ms);
        }
        publisher_done = true;
    });

    std::thread consuming([&] {
        consumer con(options(name + ".con"), q.topo, q.name, 100);
        while (clock::now() < deadline) {
            auto batch = con.next_batch(50, 200ms, 10ms);
            if (!batch.empty()) {
                std::lock_guard lock(mu);
                for (const auto& d : batch) out.received.insert(d.props.message_id);
                // A failed ack (stale generation) is fine: the message comes again.
                con.ack_up_to(batch.back());
                continue;
            }
            if (publisher_done) {
                std::lock_guard lock(mu);
                bool all = std::includes(out.received.begin(), out.received.end(), out.confirmed.begin(),
                                         out.confirmed.end());
                if (all) break;
            }
        }
        out.consumer_generation = con.generation();
    });

    // Until the first batch is through, nothing disrupts the stream.
    if (eventually([&] { return confirmed_count > 0; }, 60s)) prepare();
    go = true;
    bool disrupted = eventually([&] { return confirmed_count >= disrupt_after; }, limit);
    if (disrupted) disrupt();
    else stop = true;
    disruption_over = true;
    publishing.join();
    consuming.join();
    out.publisher_done = publisher_done;
    return out;
}

}  // namespace

TEST_CASE("killing the connections mid-stream loses no confirmed message", "[amqp][integration]") {
    scratch_queue q("kill");
    const std::string name = "amqp_test.kill." + txp::testing::unique_suffix();
    int killed = 0;
    bool listed = false;
    auto outcome = stream_through(q, name, 5000, 1000, [&] {
        // The management API lists new connections with a few seconds' delay: wait for
        // them before the stream goes on, so that the kill lands in the middle of it.
        listed = eventually([&] { return connections_named(name).size() >= 2; }, 30s, 250ms);
    }, [&] {
        killed = close_connections_named(name);
    }, 180s);

    REQUIRE(listed);
    INFO("first non-confirmed: " << outcome.first_problem);
    CHECK(killed >= 2);
    CHECK(outcome.publisher_done);
    CHECK(outcome.failed == 0);
    CHECK(outcome.nacked == 0);
    CHECK(outcome.confirmed.size() >= 5000);
    // The consumer came back by itself on a new connection...
    CHECK(outcome.consumer_generation >= 2);
    // ...and every confirmed message arrived (duplicates are allowed: at-least-once).
    std::vector<std::string> missing;
    std::set_difference(outcome.confirmed.begin(), outcome.confirmed.end(), outcome.received.begin(),
                        outcome.received.end(), std::back_inserter(missing));
    INFO("first missing: " << (missing.empty() ? std::string("-") : missing.front()));
    CHECK(missing.empty());
}

// Stops the whole broker for a few seconds: hidden from the default run, registered with
// ctest separately as RUN_SERIAL (see tests/integration/amqp.cmake).
TEST_CASE("a broker stop_app/start_app loses no confirmed message", "[.][broker-restart][amqp][integration]") {
    scratch_queue q("restart");
    const std::string name = "amqp_test.restart." + txp::testing::unique_suffix();
    int stop_rc = -1, start_rc = -1;
    auto outcome = stream_through(q, name, 3000, 600, [] {}, [&] {
        stop_rc = txp::testing::run("rabbitmqctl -q stop_app >/dev/null 2>&1");
        // Always try to bring it back, whatever happened to the stop.
        start_rc = txp::testing::run("rabbitmqctl -q start_app >/dev/null 2>&1 && rabbitmqctl -q await_startup >/dev/null 2>&1");
    }, 240s);

    REQUIRE(stop_rc == 0);
    REQUIRE(start_rc == 0);
    INFO("first non-confirmed: " << outcome.first_problem);
    CHECK(outcome.publisher_done);
    // Every message got an answer in time. A stopping queue may nack what it was handed
    // (the publisher reports it; the caller retries): those are the only non-confirms.
    CHECK(outcome.failed == 0);
    if (outcome.nacked > 0) WARN("nacked during the restart: " << outcome.nacked << " (" << outcome.first_problem << ")");
    CHECK(outcome.confirmed.size() >= 3000);
    CHECK(outcome.consumer_generation >= 2);
    std::vector<std::string> missing;
    std::set_difference(outcome.confirmed.begin(), outcome.confirmed.end(), outcome.received.begin(),
                        outcome.received.end(), std::back_inserter(missing));
    INFO("first missing: " << (missing.empty() ? std::string("-") : missing.front()));
    CHECK(missing.empty());
}
