// See event_streams.hpp.
#include "event_streams.hpp"

#include "txp/common/json.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <algorithm>

namespace txp::gateway {

namespace {

// At most this many sent seqs above the contiguous floor are remembered; beyond it the floor
// jumps (a gap that large means the older ones are not coming).
constexpr std::size_t max_sent_above = 1024;
// Entries buffered while one stream replays; past it the stream is closed (the client
// reconnects with its Last-Event-ID and loses nothing).
constexpr std::size_t max_buffered = 10000;

struct stream_metrics {
    metrics::counter& events = metrics::global().get_counter(
        "txp_gateway_sse_events_total", "Feed entries written to Server-Sent Events streams");
    metrics::counter& dropped = metrics::global().get_counter(
        "txp_gateway_sse_streams_dropped_total", "SSE streams closed because the client was gone or too slow");
};

stream_metrics& sm() {
    static stream_metrics m;
    return m;
}

}  // namespace

event_stream::event_stream(std::int64_t user_id, std::shared_ptr<http::response_writer> writer, std::string token_hash,
                           std::chrono::system_clock::time_point expires_at)
    : user_id_(user_id), writer_(std::move(writer)), token_hash_(std::move(token_hash)), expires_at_(expires_at) {}

std::string event_stream::frame(std::int64_t seq, const std::string& type, const std::string& data) {
    // data is one line of JSON (no raw newlines); type comes from the notifier's schema.
    std::string out;
    out.reserve(data.size() + type.size() + 40);
    out += "id: ";
    out += std::to_string(seq);
    out += "\nevent: ";
    for (char ch : type) out += (ch == '\n' || ch == '\r') ? ' ' : ch;
    out += "\ndata: ";
    out += data;
    out += "\n\n";
    return out;
}

bool event_stream::write_locked(std::string chunk) {
    if (closed_) return false;
    if (!writer_->write(std::move(chunk))) {
        closed_ = true;
        sm().dropped.inc();
        writer_->finish();
        return false;
    }
    return true;
}

bool event_stream::send_locked(std::int64_t seq, const std::string& type, const std::string& data) {
    if (seq <= floor_ || sent_above_.count(seq) != 0) return !closed_;  // the client has it
    if (!write_locked(frame(seq, type, data))) return false;
    sm().events.inc();
    sent_above_.insert(seq);
    while (!sent_above_.empty() && *sent_above_.begin() == floor_ + 1) {
        floor_ = *sent_above_.begin();
        sent_above_.erase(sent_above_.begin());
    }
    while (sent_above_.size() > max_sent_above) {
        floor_ = *sent_above_.begin();
        sent_above_.erase(sent_above_.begin());
    }
    return true;
}

bool event_stream::replay(std::int64_t seq, const std::string& type, const std::string& data) {
    std::lock_guard lk(mu_);
    return send_locked(seq, type, data);
}

bool event_stream::go_live(std::int64_t resume_point) {
    std::lock_guard lk(mu_);
    // The replay read a committed prefix of the user's feed (seq is assigned in commit order),
    // so everything up to the last replayed entry, or the head when there was no resume, is
    // the client's.
    if (resume_point > floor_) {
        floor_ = resume_point;
        sent_above_.erase(sent_above_.begin(), sent_above_.upper_bound(floor_));
    }
    std::sort(buffered_.begin(), buffered_.end(), [](const pending& a, const pending& b) { return a.seq < b.seq; });
    for (const auto& p : buffered_) {
        if (!send_locked(p.seq, p.type, p.data)) break;
    }
    buffered_.clear();
    buffered_.shrink_to_fit();
    live_ = true;
    return !closed_;
}

bool event_stream::offer(std::int64_t seq, const std::string& type, const std::string& data) {
    std::lock_guard lk(mu_);
    if (closed_) return false;
    if (!live_) {
        if (buffered_.size() >= max_buffered) {
            closed_ = true;
            sm().dropped.inc();
            writer_->finish();
            return false;
        }
        buffered_.push_back({seq, type, data});
        return true;
    }
    return send_locked(seq, type, data);
}

bool event_stream::heartbeat() {
    std::lock_guard lk(mu_);
    // Not before go_live: the handler may not have started the response yet (a write then
    // would fail and close a healthy stream), and while it replays it writes anyway.
    if (!live_) return !closed_;
    if (!closed_ && writer_->client_gone()) {
        closed_ = true;
        writer_->finish();
        return false;
    }
    return write_locked(": keep-alive\n\n");
}

bool event_stream::closed() const {
    std::lock_guard lk(mu_);
    return closed_ || writer_->client_gone();
}

void event_stream::close(bool finish_writer) {
    std::lock_guard lk(mu_);
    if (closed_) return;
    closed_ = true;
    if (finish_writer) writer_->finish();
}

event_streams::event_streams(limits l) : limits_(l) {
    heartbeat_ = std::thread([this] { run(); });
}

event_streams::~event_streams() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
    std::unordered_map<std::int64_t, std::vector<std::shared_ptr<event_stream>>> all;
    {
        std::lock_guard lk(mu_);
        all.swap(by_user_);
        total_ = 0;
    }
    for (auto& [user, streams] : all) {
        for (auto& s : streams) s->close();
    }
}

std::pair<std::shared_ptr<event_stream>, event_streams::refusal> event_streams::open(
    std::int64_t user_id, std::shared_ptr<http::response_writer> writer, std::string token_hash,
    std::chrono::system_clock::time_point expires_at) {
    std::lock_guard lk(mu_);
    auto& mine = by_user_[user_id];
    // Clients that went away without a heartbeat noticing yet do not count against the limit.
    auto before = mine.size();
    std::erase_if(mine, [](const std::shared_ptr<event_stream>& s) { return s->closed(); });
    total_ -= before - mine.size();
    if (mine.size() >= limits_.per_user) return {nullptr, refusal::user_limit};
    if (total_ >= limits_.total) {
        if (mine.empty()) by_user_.erase(user_id);
        return {nullptr, refusal::total_limit};
    }
    auto s = std::make_shared<event_stream>(user_id, std::move(writer), std::move(token_hash), expires_at);
    mine.push_back(s);
    ++total_;
    return {s, refusal::none};
}

void event_streams::dispatch(const std::string& body) {
    rapidjson::Document doc;
    try {
        doc = json::parse(body);
    } catch (const std::exception& e) {
        log::warn("notify.created announcement is not JSON; dropped", {{"error", e.what()}});
        return;
    }
    if (!doc.IsObject() || !doc.HasMember("entries") || !doc["entries"].IsArray()) {
        log::warn("notify.created announcement without entries; dropped");
        return;
    }
    for (const auto& e : doc["entries"].GetArray()) {
        if (!e.IsObject() || !e.HasMember("user_id") || !e["user_id"].IsInt64() || !e.HasMember("seq") ||
            !e["seq"].IsInt64() || !e.HasMember("type") || !e["type"].IsString()) {
            log::warn("notify.created entry without user_id, seq or type; dropped");
            continue;
        }
        auto user = e["user_id"].GetInt64();
        std::vector<std::shared_ptr<event_stream>> targets;
        {
            std::lock_guard lk(mu_);
            auto it = by_user_.find(user);
            if (it == by_user_.end()) continue;
            targets = it->second;
        }
        auto data = json::to_string(e);
        std::string type = e["type"].GetString();
        for (auto& s : targets) s->offer(e["seq"].GetInt64(), type, data);
    }
}

std::size_t event_streams::close_token(const std::string& token_hash) {
    if (token_hash.empty()) return 0;
    std::vector<std::shared_ptr<event_stream>> ending;
    {
        std::lock_guard lk(mu_);
        for (auto& [user, streams] : by_user_) {
            for (auto& s : streams) {
                if (s->token_hash() == token_hash && !s->closed()) ending.push_back(s);
            }
        }
    }
    for (auto& s : ending) s->close();  // the next sweep drops them
    return ending.size();
}

void event_streams::sweep(bool beat) {
    std::vector<std::shared_ptr<event_stream>> all;
    {
        std::lock_guard lk(mu_);
        for (auto& [user, streams] : by_user_) all.insert(all.end(), streams.begin(), streams.end());
    }
    auto now = std::chrono::system_clock::now();
    for (auto& s : all) {
        if (s->expires_at() <= now && !s->closed()) s->close();
    }
    // Writes happen outside the registry lock: a stream's own lock orders them.
    if (beat) {
        for (auto& s : all) s->heartbeat();
    }
    std::lock_guard lk(mu_);
    for (auto it = by_user_.begin(); it != by_user_.end();) {
        auto before = it->second.size();
        std::erase_if(it->second, [](const std::shared_ptr<event_stream>& s) { return s->closed(); });
        total_ -= before - it->second.size();
        it = it->second.empty() ? by_user_.erase(it) : std::next(it);
    }
}

std::size_t event_streams::open_streams() const {
    std::lock_guard lk(mu_);
    return total_;
}

void event_streams::run() {
    log::scope tag("", "sse-heartbeat");
    // Sweeps every second (so closed streams free their slots soon), heartbeats at the interval.
    auto tick = std::min<std::chrono::milliseconds>(limits_.heartbeat, std::chrono::seconds(1));
    auto next_beat = std::chrono::steady_clock::now() + limits_.heartbeat;
    for (;;) {
        {
            std::unique_lock lk(mu_);
            if (cv_.wait_for(lk, tick, [&] { return stopping_; })) return;
        }
        auto now = std::chrono::steady_clock::now();
        bool beat = now >= next_beat;
        if (beat) next_beat = now + limits_.heartbeat;
        try {
            sweep(beat);
        } catch (const std::exception& e) {
            log::error("sse sweep failed", {{"error", e.what()}});
        }
    }
}

}  // namespace txp::gateway
