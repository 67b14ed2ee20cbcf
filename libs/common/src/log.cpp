// spdlog-backed structured logging; the line is rendered here and spdlog only writes it.
#include "txp/common/log.hpp"

#include "txp/common/config.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

namespace txp::log {

namespace {

struct state {
    std::string service = "txp";
    std::string replica = "0";
    level min_level = level::info;
    format fmt = format::json;
    std::shared_ptr<spdlog::logger> logger;
    std::shared_ptr<spdlog::sinks::sink> sink;  // one for the process, whatever init is called again
    std::jthread flusher;                       // writes the waiting lines every 100 ms
};

state& st() {
    static state s;
    return s;
}

// Gathers whole lines and writes them to stderr (fd 2) with one write(2) per flush, so that
// a line per transaction costs no system call of its own (thousands per second on a busy
// worker or gateway). Flushed every 100 ms, at once for warnings and errors, when 64 KiB
// wait, and at exit; a SIGKILL loses at most the last 100 ms of info lines.
class line_buffer_sink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& m) override {
        buf_.append(m.payload.data(), m.payload.size());
        buf_.push_back('\n');
        if (buf_.size() >= 64 * 1024) flush_();
    }
    void flush_() override {
        const char* p = buf_.data();
        std::size_t left = buf_.size();
        while (left > 0) {
            auto n = ::write(2, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // stderr is gone: nothing else to do with the lines
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        buf_.clear();
    }

private:
    std::string buf_;
};

spdlog::level::level_enum spdlog_level(level l) {
    switch (l) {
        case level::debug: return spdlog::level::debug;
        case level::info: return spdlog::level::info;
        case level::warn: return spdlog::level::warn;
        case level::error: return spdlog::level::err;
    }
    return spdlog::level::info;
}

thread_local std::string tl_message_id;
thread_local std::string tl_correlation_id;

const char* level_name(level l) {
    switch (l) {
        case level::debug: return "debug";
        case level::info: return "info";
        case level::warn: return "warn";
        case level::error: return "error";
    }
    return "info";
}

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

void append_value(std::string& out, const field& f, bool json) {
    switch (f.k) {
        case field::kind::str:
            if (json) append_json_string(out, f.s);
            else if (f.s.find(' ') != std::string_view::npos || f.s.empty()) append_json_string(out, f.s);
            else out += f.s;
            break;
        case field::kind::i64: out += std::to_string(f.i); break;
        case field::kind::u64: out += std::to_string(f.u); break;
        case field::kind::boolean: out += f.b ? "true" : "false"; break;
    }
}

std::string timestamp(bool full) {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    if (full) {
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        char out[48];
        std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(ms));
        return out;
    }
    std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    char out[24];
    std::snprintf(out, sizeof out, "%s.%03lld", buf, static_cast<long long>(ms));
    return out;
}

}  // namespace

void init(std::string service, std::string replica, level min_level, format fmt) {
    auto& s = st();
    s.service = std::move(service);
    s.replica = std::move(replica);
    s.min_level = min_level;
    s.fmt = fmt;
    // stderr, so stdout stays free for command output (reconcile, gen_transactions).
    bool first = !s.sink;
    if (first) s.sink = std::make_shared<line_buffer_sink>();
    s.logger = std::make_shared<spdlog::logger>("txp." + s.service + "." + s.replica, s.sink);
    s.logger->set_pattern("%v");
    s.logger->set_level(spdlog::level::trace);
    s.logger->flush_on(spdlog::level::warn);
    if (first) {
        // The flusher takes no signals: services wait for SIGTERM/SIGINT on a thread of their
        // own (signals blocked in the others), and a thread created here, before that, must
        // not be where the kernel delivers them (the default action would end the process).
        sigset_t all, before;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &before);
        s.flusher = std::jthread([](std::stop_token stop) {
            std::mutex m;
            std::condition_variable_any cv;
            std::unique_lock lk(m);
            while (!stop.stop_requested()) {
                cv.wait_for(lk, stop, std::chrono::milliseconds(100), [] { return false; });
                flush();
            }
        });
        pthread_sigmask(SIG_SETMASK, &before, nullptr);
        std::atexit([] { flush(); });
    }
}

void init_from_env(std::string service) {
    auto lvl_text = config::get_string("TXP_LOG_LEVEL", "info");
    level lvl;
    if (lvl_text == "debug") lvl = level::debug;
    else if (lvl_text == "info") lvl = level::info;
    else if (lvl_text == "warn") lvl = level::warn;
    else if (lvl_text == "error") lvl = level::error;
    else throw config::config_error("configuration: TXP_LOG_LEVEL must be one of debug, info, warn, error (got \"" + lvl_text + "\")");
    auto fmt_text = config::get_string("TXP_LOG_FORMAT", "json");
    format fmt;
    if (fmt_text == "json") fmt = format::json;
    else if (fmt_text == "text") fmt = format::text;
    else throw config::config_error("configuration: TXP_LOG_FORMAT must be json or text (got \"" + fmt_text + "\")");
    init(std::move(service), config::replica_id(), lvl, fmt);
}

const std::string& service() { return st().service; }
const std::string& replica() { return st().replica; }

bool enabled(level lvl) { return static_cast<int>(lvl) >= static_cast<int>(st().min_level); }

std::string render(format fmt, level lvl, std::string_view msg, fields f) {
    auto& s = st();
    std::string out;
    out.reserve(160 + msg.size());
    if (fmt == format::json) {
        out += "{\"ts\":\"";
        out += timestamp(true);
        out += "\",\"level\":\"";
        out += level_name(lvl);
        out += "\",\"service\":";
        append_json_string(out, s.service);
        out += ",\"replica\":";
        append_json_string(out, s.replica);
        out += ",\"msg\":";
        append_json_string(out, msg);
        if (!tl_message_id.empty()) {
            out += ",\"message_id\":";
            append_json_string(out, tl_message_id);
        }
        if (!tl_correlation_id.empty()) {
            out += ",\"correlation_id\":";
            append_json_string(out, tl_correlation_id);
        }
        for (const auto& x : f) {
            out += ',';
            append_json_string(out, x.key);
            out += ':';
            append_value(out, x, true);
        }
        out += '}';
    } else {
        out += timestamp(false);
        out += ' ';
        char lv[8];
        std::snprintf(lv, sizeof lv, "%-5s", level_name(lvl));
        out += lv;
        out += ' ';
        out += s.service;
        out += '/';
        out += s.replica;
        out += "  ";
        out += msg;
        for (const auto& x : f) {
            out += ' ';
            out += x.key;
            out += '=';
            append_value(out, x, false);
        }
        if (!tl_correlation_id.empty()) {
            out += " corr=";
            out += tl_correlation_id;
        }
    }
    return out;
}

void write(level lvl, std::string_view msg, fields f) {
    if (!enabled(lvl)) return;
    auto& s = st();
    auto line = render(s.fmt, lvl, msg, f);
    if (s.logger) s.logger->log(spdlog_level(lvl), line);
    else std::fprintf(stderr, "%s\n", line.c_str());
}

void flush() {
    // The sink, not the logger: it is set once, so the flusher thread never reads a pointer
    // that init (called again) is replacing.
    if (auto& k = st().sink) k->flush();
}

scope::scope(std::string_view message_id, std::string_view correlation_id)
    : prev_message_id_(std::move(tl_message_id)), prev_correlation_id_(std::move(tl_correlation_id)) {
    tl_message_id = message_id;
    tl_correlation_id = correlation_id;
}

scope::~scope() {
    tl_message_id = std::move(prev_message_id_);
    tl_correlation_id = std::move(prev_correlation_id_);
}

}  // namespace txp::log
