// End-to-end throughput of txp::amqp (one publisher thread with confirms, one consumer
// thread with acks, persistent 300-byte messages through a durable queue), next to a
// minimal raw rabbitmq-c program of the same shape measured in the same run, into a classic
// queue as txp declares them (lazy, version 2) and into a quorum queue.
//   amqp_bench [N=100000] [classic|quorum|both=both]
// broker: TXP_BENCH_AMQP_URL, else TXP_TEST_AMQP_URL, else local "/" (the first URL of a list)
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "txp/amqp/amqp.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t body_size = 300;
constexpr std::size_t publish_batch = 1000;      // raw: publish this many, then await their confirms
constexpr std::size_t library_batch = 5000;      // library: one publish() call (1,000 in flight inside)

std::string broker_url() {
    for (const char* name : {"TXP_BENCH_AMQP_URL", "TXP_TEST_AMQP_URL"}) {
        if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return v;
    }
    return "amqp://guest:guest@127.0.0.1:5672/%2f";
}

txp::amqp::connection_options options(const txp::amqp::endpoint& ep, const char* name) {
    txp::amqp::connection_options o;
    o.ep = ep;
    o.connection_name = name;
    return o;
}

// The queue is declared by the raw setup connection (declare_queue): the library's publisher
// and consumer declare nothing.
double library_run(const txp::amqp::endpoint& ep, const std::string& queue, long n) {
    txp::amqp::topology topo;

    std::atomic<long> failed{0};
    long received = 0;
    const auto start = clock_type::now();
    std::thread consuming([&] {
        txp::amqp::consumer con(options(ep, "amqp_bench.library.con"), topo, queue, 2000);
        const auto give_up = clock_type::now() + std::chrono::minutes(10);
        while (received < n && clock_type::now() < give_up) {
            auto batch = con.next_batch(500, std::chrono::seconds(1), std::chrono::milliseconds(0));
            if (batch.empty()) continue;
            received += static_cast<long>(batch.size());
            con.ack_up_to(batch.back());
        }
    });
    {
        txp::amqp::publisher pub(options(ep, "amqp_bench.library.pub"), topo);
        std::vector<txp::amqp::outgoing> batch;
        for (long sent = 0; sent < n;) {
            batch.clear();
            for (; sent < n && batch.size() < library_batch; ++sent) {
                txp::amqp::outgoing m;
                m.routing_key = queue;  // the default exchange
                m.body.assign(body_size, 'x');
                m.props.message_id = std::to_string(sent);
                batch.push_back(std::move(m));
            }
            for (const auto& r : pub.publish(batch, std::chrono::seconds(60))) {
                if (r.status != txp::amqp::publish_status::confirmed) ++failed;
            }
        }
    }
    consuming.join();
    const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
    txp::amqp::admin(options(ep, "amqp_bench.cleanup")).delete_queue(queue);
    if (failed != 0 || received < n) {
        std::fprintf(stderr, "library run incomplete: %ld not confirmed, %ld of %ld received\n", failed.load(),
                     received, n);
    }
    return static_cast<double>(n) / secs;
}

// The raw baseline: as little code as rabbitmq-c allows, errors end the program.
void die_on(amqp_rpc_reply_t r, const char* what) {
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        std::fprintf(stderr, "raw: %s failed (reply type %d)\n", what, static_cast<int>(r.reply_type));
        std::exit(2);
    }
}

amqp_connection_state_t raw_connect(const txp::amqp::endpoint& ep) {
    amqp_connection_state_t st = amqp_new_connection();
    amqp_socket_t* sock = amqp_tcp_socket_new(st);
    if (sock == nullptr || amqp_socket_open(sock, ep.host.c_str(), ep.port) != AMQP_STATUS_OK) {
        std::fprintf(stderr, "raw: cannot connect\n");
        std::exit(2);
    }
    die_on(amqp_login(st, ep.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, ep.user.c_str(),
                      ep.password.c_str()),
           "login");
    amqp_channel_open(st, 1);
    die_on(amqp_get_rpc_reply(st), "channel.open");
    return st;
}

void raw_close(amqp_connection_state_t st) {
    amqp_channel_close(st, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(st, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(st);
}

// A durable queue of the given type: classic as txp's policy makes them (lazy, version 2),
// or quorum.
void declare_queue(const txp::amqp::endpoint& ep, const std::string& queue, txp::amqp::queue_type type) {
    amqp_connection_state_t setup = raw_connect(ep);
    amqp_table_entry_t args[2];
    args[0].key = amqp_cstring_bytes("x-queue-type");
    args[0].value.kind = AMQP_FIELD_KIND_UTF8;
    args[0].value.value.bytes = amqp_cstring_bytes("quorum");
    int n = 1;
    if (type == txp::amqp::queue_type::classic) {
        args[0].key = amqp_cstring_bytes("x-queue-mode");
        args[0].value.value.bytes = amqp_cstring_bytes("lazy");
        args[1].key = amqp_cstring_bytes("x-queue-version");
        args[1].value.kind = AMQP_FIELD_KIND_I64;
        args[1].value.value.i64 = 2;
        n = 2;
    }
    amqp_queue_declare(setup, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, amqp_table_t{n, args});
    die_on(amqp_get_rpc_reply(setup), "queue.declare");
    raw_close(setup);
}

double raw_run(const txp::amqp::endpoint& ep, const std::string& queue, long n) {
    amqp_connection_state_t setup = raw_connect(ep);

    long received = 0;
    const auto start = clock_type::now();
    std::thread consuming([&] {
        amqp_connection_state_t st = raw_connect(ep);
        amqp_basic_qos(st, 1, 0, 2000, 0);
        die_on(amqp_get_rpc_reply(st), "basic.qos");
        amqp_basic_consume(st, 1, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        die_on(amqp_get_rpc_reply(st), "basic.consume");
        while (received < n) {
            amqp_maybe_release_buffers(st);
            amqp_envelope_t env;
            die_on(amqp_consume_message(st, &env, nullptr, 0), "consume");
            ++received;
            if (received % 100 == 0 || received == n) amqp_basic_ack(st, 1, env.delivery_tag, 1);
            amqp_destroy_envelope(&env);
        }
        raw_close(st);
    });

    amqp_connection_state_t st = raw_connect(ep);
    amqp_confirm_select(st, 1);
    die_on(amqp_get_rpc_reply(st), "confirm.select");
    std::string body(body_size, 'x');
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.content_type = amqp_cstring_bytes("application/json");
    amqp_bytes_t body_bytes{body.size(), body.data()};
    std::uint64_t published = 0, confirmed = 0;
    while (confirmed < static_cast<std::uint64_t>(n)) {
        for (std::size_t i = 0; i < publish_batch && published < static_cast<std::uint64_t>(n); ++i) {
            if (amqp_basic_publish(st, 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 1, 0, &props,
                                   body_bytes) != AMQP_STATUS_OK) {
                std::fprintf(stderr, "raw: publish failed\n");
                std::exit(2);
            }
            ++published;
        }
        while (confirmed < published) {
            amqp_frame_t frame;
            struct timeval tv{10, 0};
            if (amqp_simple_wait_frame_noblock(st, &frame, &tv) != AMQP_STATUS_OK) {
                std::fprintf(stderr, "raw: no confirm\n");
                std::exit(2);
            }
            if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
                const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
                confirmed = ack->multiple ? ack->delivery_tag : confirmed + 1;
            }
        }
        amqp_maybe_release_buffers(st);
    }
    raw_close(st);
    consuming.join();
    const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
    amqp_queue_delete(setup, 1, amqp_cstring_bytes(queue.c_str()), 0, 0);
    die_on(amqp_get_rpc_reply(setup), "queue.delete");
    raw_close(setup);
    return static_cast<double>(n) / secs;
}

}  // namespace

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::atol(argv[1]) : 100000;
    const std::string which = argc > 2 ? argv[2] : "both";
    if (n <= 0 || (which != "classic" && which != "quorum" && which != "both")) {
        std::fprintf(stderr, "usage: amqp_bench [messages > 0] [classic|quorum|both]\n");
        return 2;
    }
    try {
        const auto ep = txp::amqp::parse_endpoints(broker_url()).front();
        const std::string suffix = std::to_string(static_cast<long>(::getpid()));
        std::printf("amqp_bench: %ld persistent %zu-byte messages, confirms and acks, broker %s\n", n, body_size,
                    ep.describe().c_str());
        std::fflush(stdout);
        for (auto type : {txp::amqp::queue_type::classic, txp::amqp::queue_type::quorum}) {
            const std::string name = txp::amqp::to_string(type);
            if (which != "both" && which != name) continue;
            const char* label = type == txp::amqp::queue_type::classic ? "classic queue (lazy, version 2)" : "quorum queue";
            const std::string lib_queue = "amqp_bench.library." + name + "." + suffix;
            declare_queue(ep, lib_queue, type);
            const double lib = library_run(ep, lib_queue, n);
            std::printf("%s: library %.0f msg/s\n", label, lib);
            std::fflush(stdout);
            const std::string raw_queue = "amqp_bench.raw." + name + "." + suffix;
            declare_queue(ep, raw_queue, type);
            const double raw = raw_run(ep, raw_queue, n);
            std::printf("%s: raw rabbitmq-c %.0f msg/s\n", label, raw);
            std::fflush(stdout);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "amqp_bench: %s\n", e.what());
        return 1;
    }
}
