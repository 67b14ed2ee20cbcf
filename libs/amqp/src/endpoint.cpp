// Parsing amqp:// URLs without ever echoing the password into an error message.
#include <charconv>
#include <stdexcept>
#include <string>

#include "txp/amqp/message.hpp"

namespace txp::amqp {
namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s, const char* what) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) throw std::invalid_argument(std::string("AMQP URL: bad percent-encoding in the ") + what);
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

}  // namespace

endpoint endpoint::parse(std::string_view url) {
    constexpr std::string_view scheme = "amqp://";
    if (url.substr(0, scheme.size()) != scheme) {
        throw std::invalid_argument("AMQP URL must start with amqp:// (amqps is not supported)");
    }
    std::string_view rest = url.substr(scheme.size());
    endpoint ep;

    std::string_view authority = rest;
    std::string_view path;
    bool has_path = false;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        authority = rest.substr(0, slash);
        path = rest.substr(slash + 1);
        has_path = true;
    }
    if (auto q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);

    // The password may contain '@' only percent-encoded; the last '@' ends the user info.
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
            ep.user = percent_decode(userinfo.substr(0, colon), "user");
            ep.password = percent_decode(userinfo.substr(colon + 1), "password");
        } else {
            ep.user = percent_decode(userinfo, "user");
        }
    }

    std::string_view hostport = authority;
    std::string_view port_text;
    if (!hostport.empty() && hostport.front() == '[') {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) throw std::invalid_argument("AMQP URL: unterminated [IPv6] host");
        ep.host = std::string(hostport.substr(1, close - 1));
        std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw std::invalid_argument("AMQP URL: junk after [IPv6] host");
            port_text = after.substr(1);
        }
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        ep.host = std::string(hostport.substr(0, colon));
        port_text = hostport.substr(colon + 1);
    } else {
        ep.host = std::string(hostport);
    }
    if (ep.host.empty()) throw std::invalid_argument("AMQP URL: missing host");
    if (!port_text.empty()) {
        int port = 0;
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || p != port_text.data() + port_text.size() || port <= 0 || port > 65535) {
            throw std::invalid_argument("AMQP URL: bad port for host " + ep.host);
        }
        ep.port = port;
    }
    if (has_path && !path.empty()) ep.vhost = percent_decode(path, "vhost");
    return ep;
}

std::vector<endpoint> parse_endpoints(std::string_view urls) {
    std::vector<endpoint> out;
    while (true) {
        auto comma = urls.find(',');
        std::string_view one = urls.substr(0, comma);
        while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
        while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
        if (one.empty()) throw std::invalid_argument("AMQP URL list: an empty entry (URLs are separated by single commas)");
        out.push_back(endpoint::parse(one));
        if (comma == std::string_view::npos) break;
        urls.remove_prefix(comma + 1);
    }
    return out;
}

void connection_options::set_endpoints(std::string_view urls) {
    auto all = parse_endpoints(urls);
    ep = all.front();
    others.assign(all.begin() + 1, all.end());
}

std::string endpoint::describe() const { return host + ":" + std::to_string(port) + "/" + vhost; }

}  // namespace txp::amqp
