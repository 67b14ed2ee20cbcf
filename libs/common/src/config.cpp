// Environment-variable configuration with one-line, variable-naming errors.
#include "txp/common/config.hpp"

#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <unistd.h>

namespace txp::config {

namespace {

[[noreturn]] void fail(std::string_view name, std::string_view expected, std::string_view got) {
    std::string msg = "configuration: ";
    msg += name;
    msg += " must be ";
    msg += expected;
    if (!got.empty()) {
        msg += " (got \"";
        // Never echo long values whole: they may be secrets pasted in the wrong place.
        msg += got.size() > 24 ? std::string(got.substr(0, 8)) + "..." : std::string(got);
        msg += "\")";
    } else {
        msg += " (it is not set)";
    }
    throw config_error(msg);
}

}  // namespace

std::optional<std::string> get(std::string_view name) {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
}

std::string require_string(std::string_view name) {
    auto v = get(name);
    if (!v) fail(name, "set", "");
    return *v;
}

std::string get_string(std::string_view name, std::string_view fallback) {
    auto v = get(name);
    return v ? *v : std::string(fallback);
}

namespace {
std::int64_t parse_int_in(std::string_view name, const std::string& text, std::int64_t min, std::int64_t max) {
    std::int64_t out = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc{} || p != text.data() + text.size() || out < min || out > max) {
        fail(name, "an integer from " + std::to_string(min) + " to " + std::to_string(max), text);
    }
    return out;
}
}  // namespace

std::int64_t get_int(std::string_view name, std::int64_t fallback, std::int64_t min, std::int64_t max) {
    auto v = get(name);
    if (!v) return fallback;
    return parse_int_in(name, *v, min, max);
}

std::int64_t require_int(std::string_view name, std::int64_t min, std::int64_t max) {
    auto v = get(name);
    if (!v) fail(name, "an integer from " + std::to_string(min) + " to " + std::to_string(max), "");
    return parse_int_in(name, *v, min, max);
}

bool get_bool(std::string_view name, bool fallback) {
    auto v = get(name);
    if (!v) return fallback;
    if (*v == "1" || *v == "true" || *v == "yes" || *v == "on") return true;
    if (*v == "0" || *v == "false" || *v == "no" || *v == "off") return false;
    fail(name, "a boolean (true/false, 1/0, yes/no, on/off)", *v);
}

std::chrono::milliseconds parse_duration(std::string_view text) {
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || n < 0) throw std::invalid_argument("not a duration");
    std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
    if (unit.empty() || unit == "ms") return std::chrono::milliseconds(n);
    if (unit == "s") return std::chrono::seconds(n);
    if (unit == "m") return std::chrono::minutes(n);
    if (unit == "h") return std::chrono::hours(n);
    throw std::invalid_argument("unknown duration unit");
}

std::chrono::milliseconds get_duration(std::string_view name, std::chrono::milliseconds fallback) {
    auto v = get(name);
    if (!v) return fallback;
    try {
        return parse_duration(*v);
    } catch (const std::invalid_argument&) {
        fail(name, "a duration such as 500ms, 5s, 2m or 1h", *v);
    }
}

std::string require_url(std::string_view name, std::string_view schemes) {
    auto v = get(name);
    std::string expected = "a URL with scheme ";
    expected += schemes;
    if (!v) fail(name, expected, "");
    auto colon = v->find("://");
    if (colon == std::string::npos || colon == 0) fail(name, expected, "");
    std::string scheme = v->substr(0, colon);
    std::string_view list = schemes;
    while (!list.empty()) {
        auto comma = list.find(',');
        auto one = list.substr(0, comma);
        if (one == scheme) return *v;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    // Do not echo the URL: it carries a password.
    fail(name, expected, scheme + "://...");
}

std::string replica_id() {
    if (auto v = get("TXP_REPLICA_ID")) return *v;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    return std::string(host[0] ? host : "host") + "-" + std::to_string(getpid());
}

}  // namespace txp::config
