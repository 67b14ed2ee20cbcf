// GET /v1/events: the open Server-Sent Events streams of this gateway instance, by user.
// The events thread hands every notify.created announcement to dispatch(), which writes each
// entry to its own user's streams only; a heartbeat thread keeps idle streams alive and
// drops the ones whose client has gone.
#pragma once

#include "txp/http/message.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace txp::gateway {

// One SSE connection. Until go_live() it is replaying from the database and only buffers
// what is announced; after it, announced entries are written at once. Entries the client
// already has are never written twice (seq at or below the resume point, or already sent).
class event_stream {
public:
    event_stream(std::int64_t user_id, std::shared_ptr<http::response_writer> writer, std::string token_hash = {},
                 std::chrono::system_clock::time_point expires_at = std::chrono::system_clock::time_point::max());

    std::int64_t user_id() const { return user_id_; }
    // The token that opened it: the stream ends when that token is logged out or expires.
    const std::string& token_hash() const { return token_hash_; }
    std::chrono::system_clock::time_point expires_at() const { return expires_at_; }
    // Replay: writes an entry read from the feed (oldest first); false when the client is gone.
    bool replay(std::int64_t seq, const std::string& type, const std::string& data);
    // Sets the resume point (everything at or below it is the client's already), flushes what
    // was buffered during the replay, in seq order, and goes live.
    bool go_live(std::int64_t resume_point);
    // An announced entry: buffered while replaying, written when live.
    bool offer(std::int64_t seq, const std::string& type, const std::string& data);
    // A comment line that keeps proxies and the client from timing out.
    bool heartbeat();
    bool closed() const;
    // finish_writer false: the stream never started (the handler answers with a problem instead).
    void close(bool finish_writer = true);

    // The SSE frame of one entry.
    static std::string frame(std::int64_t seq, const std::string& type, const std::string& data);

private:
    bool write_locked(std::string chunk);
    bool send_locked(std::int64_t seq, const std::string& type, const std::string& data);

    struct pending {
        std::int64_t seq;
        std::string type;
        std::string data;
    };
    const std::int64_t user_id_;
    const std::shared_ptr<http::response_writer> writer_;
    const std::string token_hash_;
    const std::chrono::system_clock::time_point expires_at_;
    mutable std::mutex mu_;
    bool live_ = false;
    bool closed_ = false;
    std::int64_t floor_ = 0;           // every seq at or below it was sent (or predates the stream)
    std::set<std::int64_t> sent_above_; // sent seqs above floor_ (announcements may come out of order)
    std::vector<pending> buffered_;
};

class event_streams {
public:
    struct limits {
        std::size_t per_user = 5;
        std::size_t total = 2000;
        std::chrono::milliseconds heartbeat{15000};
    };
    explicit event_streams(limits l);
    ~event_streams();  // closes every stream, joins the heartbeat thread
    event_streams(const event_streams&) = delete;
    event_streams& operator=(const event_streams&) = delete;

    enum class refusal { none, user_limit, total_limit };
    // Registers a stream (replaying) for the user, or says which limit refuses it.
    // token_hash and expires_at: of the token that opened it (see close_token, sweep).
    std::pair<std::shared_ptr<event_stream>, refusal> open(
        std::int64_t user_id, std::shared_ptr<http::response_writer> writer, std::string token_hash = {},
        std::chrono::system_clock::time_point expires_at = std::chrono::system_clock::time_point::max());
    // The token was logged out (here or, through auth.token_revoked, on another replica): its
    // streams end, as its requests are refused. Returns how many it ended (0 when they had
    // ended already: the replica that logged it out hears the broadcast too).
    std::size_t close_token(const std::string& token_hash);

    // A notify.created body: {"entries":[feed_entry, ...]}. Malformed ones are logged and dropped.
    void dispatch(const std::string& body);
    // Ends the streams whose token expired, drops closed ones; heartbeats the others when `beat`.
    void sweep(bool beat);

    std::size_t open_streams() const;

private:
    void run();

    const limits limits_;
    mutable std::mutex mu_;
    std::unordered_map<std::int64_t, std::vector<std::shared_ptr<event_stream>>> by_user_;
    std::size_t total_ = 0;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread heartbeat_;
};

}  // namespace txp::gateway
