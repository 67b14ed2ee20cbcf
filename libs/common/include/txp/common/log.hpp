// Structured log lines through spdlog: one JSON object per line (or a readable text form
// for terminals), always with time, level, service and replica, plus the message id and
// correlation id of the message or request being handled on this thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace txp::log {

enum class level { debug, info, warn, error };
enum class format { json, text };

// Call once from main. TXP_LOG_LEVEL and TXP_LOG_FORMAT are read by init_from_env.
void init(std::string service, std::string replica, level min_level, format fmt);
void init_from_env(std::string service);

const std::string& service();
const std::string& replica();

// A key and a value; values are strings, integers or booleans (never money as a double).
struct field {
    enum class kind { str, i64, u64, boolean };
    std::string_view key;
    kind k;
    std::string_view s{};
    std::int64_t i = 0;
    std::uint64_t u = 0;
    bool b = false;

    field(std::string_view key_, std::string_view v) : key(key_), k(kind::str), s(v) {}
    field(std::string_view key_, const char* v) : key(key_), k(kind::str), s(v ? v : "") {}
    field(std::string_view key_, const std::string& v) : key(key_), k(kind::str), s(v) {}
    field(std::string_view key_, bool v) : key(key_), k(kind::boolean), b(v) {}
    template <typename T, std::enable_if_t<std::is_integral_v<T> && std::is_signed_v<T> && !std::is_same_v<T, bool>, int> = 0>
    field(std::string_view key_, T v) : key(key_), k(kind::i64), i(v) {}
    template <typename T, std::enable_if_t<std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>, int> = 0>
    field(std::string_view key_, T v) : key(key_), k(kind::u64), u(v) {}
};

using fields = std::initializer_list<field>;

void write(level lvl, std::string_view msg, fields f = {});
inline void debug(std::string_view msg, fields f = {}) { write(level::debug, msg, f); }
inline void info(std::string_view msg, fields f = {}) { write(level::info, msg, f); }
inline void warn(std::string_view msg, fields f = {}) { write(level::warn, msg, f); }
inline void error(std::string_view msg, fields f = {}) { write(level::error, msg, f); }
bool enabled(level lvl);

// Lines are written in batches (every 100 ms, at once from warn up, and at exit); this
// writes what is waiting now, e.g. before a process replaces or kills itself.
void flush();

// While alive, every line written on this thread carries these ids.
class scope {
public:
    scope(std::string_view message_id, std::string_view correlation_id);
    ~scope();
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

private:
    std::string prev_message_id_;
    std::string prev_correlation_id_;
};

// Renders one line (exposed for tests).
std::string render(format fmt, level lvl, std::string_view msg, fields f);

}  // namespace txp::log
