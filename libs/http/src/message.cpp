// Request accessors, problem+json bodies, request ids, URL parsing: the Boost-free parts.
#include "txp/http/client.hpp"
#include "txp/http/message.hpp"

#include "detail.hpp"
#include "txp/common/json.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace txp::http {

namespace detail {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::optional<std::string_view> find_header(const std::vector<header>& headers, std::string_view name) {
    for (const auto& h : headers) {
        if (iequals(h.name, name)) return std::string_view(h.value);
    }
    return std::nullopt;
}

bool is_json_content_type(std::string_view ct) {
    auto semi = ct.find(';');
    auto base = ct.substr(0, semi);
    while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
    return iequals(base, "application/json") || iequals(base, "application/problem+json");
}

}  // namespace detail

std::optional<std::string_view> request::header_value(std::string_view name) const {
    return detail::find_header(headers, name);
}

std::size_t request::header_count(std::string_view name) const {
    return static_cast<std::size_t>(
        std::count_if(headers.begin(), headers.end(), [&](const header& h) { return detail::iequals(h.name, name); }));
}

std::optional<std::string_view> client_response::header_value(std::string_view name) const {
    return detail::find_header(headers, name);
}

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_as_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%' && i + 2 < s.size()) {
            int hi = hex_value(s[i + 1]);
            int lo = hex_value(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(plus_as_space && c == '+' ? ' ' : c);
    }
    return out;
}

std::optional<std::string> request::query_param(std::string_view name) const {
    std::string_view rest = query;
    while (!rest.empty()) {
        auto amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        std::string_view key = pair.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        if (percent_decode(key, true) == name) return percent_decode(value, true);
    }
    return std::nullopt;
}

bool is_valid_request_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

response problem(unsigned status, std::string_view type, std::string_view title, std::string_view detail,
                 std::string_view request_id, const std::vector<problem_member>& extra) {
    json::writer w;
    w.start_object();
    w.kv("type", "https://txp.dev/problems/" + std::string(type));
    w.kv("title", title);
    w.kv("status", static_cast<std::int64_t>(status));
    w.kv("detail", detail);
    w.kv("request_id", request_id);
    for (const auto& m : extra) {
        rapidjson::Document probe;
        probe.Parse(m.json.data(), m.json.size());
        if (probe.HasParseError()) {
            w.kv(m.name, m.json);
        } else {
            w.key(m.name);
            probe.Accept(w.w());
        }
    }
    w.end_object();
    response r;
    r.status = status;
    r.content_type = "application/problem+json";
    r.body = w.str();
    return r;
}

url url::parse(std::string_view text) {
    url u;
    auto sep = text.find("://");
    if (sep == std::string_view::npos) throw std::invalid_argument("url has no scheme: " + std::string(text));
    std::string scheme(text.substr(0, sep));
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "http" && scheme != "https") throw std::invalid_argument("url scheme must be http or https: " + std::string(text));
    u.scheme = scheme;
    std::string_view rest = text.substr(sep + 3);
    auto slash = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, slash);
    std::string_view target = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    if (auto hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
    if (authority.find('@') != std::string_view::npos) throw std::invalid_argument("url with user info is not supported");
    std::string_view host;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) throw std::invalid_argument("url has an unclosed IPv6 literal");
        host = authority.substr(1, close - 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw std::invalid_argument("url has garbage after the IPv6 literal");
            port = after.substr(1);
        }
    } else {
        auto colon = authority.rfind(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    }
    if (host.empty()) throw std::invalid_argument("url has no host: " + std::string(text));
    for (char c : host) {
        if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '\\') throw std::invalid_argument("url host is invalid");
    }
    u.host = std::string(host);
    u.port = scheme == "https" ? 443 : 80;
    if (!port.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
            throw std::invalid_argument("url port is invalid: " + std::string(port));
        }
        u.port = static_cast<std::uint16_t>(v);
    }
    u.target = target.empty() ? "/" : std::string(target);
    if (u.target.front() == '?') u.target = "/" + u.target;
    for (char c : u.target) {
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) throw std::invalid_argument("url target has spaces or control characters");
    }
    return u;
}

const char* to_string(client_error::kind k) {
    switch (k) {
        case client_error::kind::connect: return "connect";
        case client_error::kind::timeout: return "timeout";
        case client_error::kind::tls: return "tls";
        case client_error::kind::protocol: return "protocol";
    }
    return "unknown";
}

}  // namespace txp::http
