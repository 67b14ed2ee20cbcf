// check_webhook_url: URL syntax, scheme and userinfo rules, then every resolved address
// against the allow policy (see webhook_url_policy.hpp).
#include "webhook_url_policy.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

namespace txp::notifier {

namespace {

using bytes16 = std::uint8_t[16];

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

// Textual IPv4 (strict dotted quad) or IPv6 to the 128-bit form (IPv4 as ::ffff:a.b.c.d).
bool to_bytes(std::string_view text, bytes16& out) {
    std::string t(text);
    in_addr v4{};
    in6_addr v6{};
    std::memset(out, 0, 16);
    if (::inet_pton(AF_INET, t.c_str(), &v4) == 1) {
        out[10] = 0xff;
        out[11] = 0xff;
        std::memcpy(out + 12, &v4, 4);
        return true;
    }
    if (::inet_pton(AF_INET6, t.c_str(), &v6) == 1) {
        std::memcpy(out, &v6, 16);
        return true;
    }
    return false;
}

bool is_v4_mapped(const bytes16& a) {
    for (int i = 0; i < 10; ++i) {
        if (a[i] != 0) return false;
    }
    return a[10] == 0xff && a[11] == 0xff;
}

bool in_prefix(const std::uint8_t* a, const std::uint8_t* net, int bits) {
    int full = bits / 8;
    if (std::memcmp(a, net, static_cast<std::size_t>(full)) != 0) return false;
    int rest = bits % 8;
    if (rest == 0) return true;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

bool public_v4(const std::uint8_t* b) {
    struct net {
        std::uint8_t a, b, c;
        int bits;
    };
    static const net refused[] = {
        {0, 0, 0, 8},        // "this network", unspecified
        {10, 0, 0, 8},       // private
        {100, 64, 0, 10},    // shared address space (CGNAT)
        {127, 0, 0, 8},      // loopback
        {169, 254, 0, 16},   // link-local, cloud metadata (169.254.169.254)
        {172, 16, 0, 12},    // private
        {192, 0, 0, 24},     // IETF protocol assignments
        {192, 0, 2, 24},     // TEST-NET-1
        {192, 88, 99, 24},   // 6to4 relay anycast
        {192, 168, 0, 16},   // private
        {198, 18, 0, 15},    // benchmarking
        {198, 51, 100, 24},  // TEST-NET-2
        {203, 0, 113, 24},   // TEST-NET-3
        {224, 0, 0, 4},      // multicast
        {240, 0, 0, 4},      // reserved, and the broadcast address
    };
    for (const auto& n : refused) {
        const std::uint8_t p[4] = {n.a, n.b, n.c, 0};
        if (in_prefix(b, p, n.bits)) return false;
    }
    return true;
}

bool public_bytes(const bytes16& a) {
    if (is_v4_mapped(a)) return public_v4(a + 12);
    static const std::uint8_t nat64[16] = {0x00, 0x64, 0xff, 0x9b};
    if (in_prefix(a, nat64, 96)) return public_v4(a + 12);  // 64:ff9b::/96 embeds an IPv4 address
    static const std::uint8_t sixto4[16] = {0x20, 0x02};
    if (in_prefix(a, sixto4, 16)) return public_v4(a + 2);  // 2002::/16 embeds one too
    static const std::uint8_t global[16] = {0x20};
    if (!in_prefix(a, global, 3)) return false;  // only 2000::/3 is global unicast
    static const std::uint8_t ietf[16] = {0x20, 0x01};
    if (in_prefix(a, ietf, 23)) return false;  // 2001::/23: Teredo, ORCHID, benchmarking...
    static const std::uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8};
    if (in_prefix(a, doc, 32)) return false;
    static const std::uint8_t doc2[16] = {0x3f, 0xff};
    if (in_prefix(a, doc2, 20)) return false;
    return true;
}

// Unicast: not unspecified, multicast or broadcast (what an allowed host name may resolve to).
bool unicast_bytes(const bytes16& a) {
    static const std::uint8_t zero[16] = {};
    if (std::memcmp(a, zero, 16) == 0) return false;
    if (is_v4_mapped(a)) {
        if (a[12] == 0) return false;
        if (a[12] >= 224) return false;
        return true;
    }
    return a[0] != 0xff;
}

bool host_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool host_name_allowed(const std::string& host, const std::vector<std::string>& allowed) {
    std::string h = host;
    if (!h.empty() && h.back() == '.') h.pop_back();
    for (const auto& a : allowed) {
        if (a.rfind("*.", 0) == 0) {
            std::string suffix = a.substr(1);  // ".hooks.example.com"
            if (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
        } else if (h == a) {
            return true;
        }
    }
    return false;
}

std::vector<std::string> system_resolve(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0) throw std::runtime_error(::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
    std::vector<std::string> out;
    for (auto* p = res; p; p = p->ai_next) {
        char buf[INET6_ADDRSTRLEN] = {};
        if (p->ai_family == AF_INET) {
            ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr, buf, sizeof buf);
        } else if (p->ai_family == AF_INET6) {
            ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr, buf, sizeof buf);
        } else {
            continue;
        }
        if (std::find(out.begin(), out.end(), buf) == out.end()) out.emplace_back(buf);
    }
    return out;
}

url_check refuse(url_check c, const char* reason, std::string detail) {
    c.ok = false;
    c.reason = reason;
    c.detail = std::move(detail);
    return c;
}

}  // namespace

ip_network ip_network::parse(std::string_view text) {
    ip_network n;
    n.text = trim(text);
    auto slash = n.text.find('/');
    std::string addr = n.text.substr(0, slash);
    bytes16 b;
    if (!to_bytes(addr, b)) throw std::invalid_argument("not an IP address or network: \"" + n.text + "\"");
    bool v4 = addr.find(':') == std::string::npos;
    int max = v4 ? 32 : 128;
    int prefix = max;
    if (slash != std::string::npos) {
        std::string p = n.text.substr(slash + 1);
        if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
            throw std::invalid_argument("bad prefix length in \"" + n.text + "\"");
        }
        prefix = std::stoi(p);
        if (prefix > max) throw std::invalid_argument("prefix length too long in \"" + n.text + "\"");
    }
    std::memcpy(n.addr, b, 16);
    n.prefix = v4 ? 96 + prefix : prefix;
    return n;
}

bool ip_network::contains(const std::uint8_t (&a)[16]) const { return in_prefix(a, addr, prefix); }

webhook_url_policy webhook_url_policy::parse(std::string_view allow_list) {
    webhook_url_policy p;
    std::string all = trim(allow_list);
    if (all.empty()) return p;  // public only
    p.allow_public = false;
    std::size_t start = 0;
    while (start <= all.size()) {
        auto comma = all.find(',', start);
        std::string item = lower(trim(std::string_view(all).substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
        start = comma == std::string::npos ? all.size() + 1 : comma + 1;
        if (item.empty()) continue;
        if (item == "public") {
            p.allow_public = true;
            continue;
        }
        bytes16 b;
        if (item.find('/') != std::string::npos || to_bytes(item, b)) {
            p.allowed_networks.push_back(ip_network::parse(item));
            continue;
        }
        std::string name = item.rfind("*.", 0) == 0 ? item.substr(2) : item;
        if (!name.empty() && name.back() == '.') name.pop_back();
        if (name.empty() || !std::all_of(name.begin(), name.end(), host_char)) {
            throw std::invalid_argument("not a host name, address or network: \"" + item + "\"");
        }
        p.allowed_hosts.push_back(item.rfind("*.", 0) == 0 ? "*." + name : name);
    }
    return p;
}

bool is_public_address(std::string_view address) {
    bytes16 b;
    return to_bytes(address, b) && public_bytes(b);
}

url_check check_webhook_url(std::string_view url, const webhook_url_policy& policy) {
    url_check c;
    if (url.empty() || url.size() > 2048) return refuse(c, "malformed_url", "the URL must be 1 to 2048 characters long");
    for (char ch : url) {
        auto u = static_cast<unsigned char>(ch);
        if (u <= 0x20 || u >= 0x7f) return refuse(c, "malformed_url", "the URL contains spaces, control or non-ASCII characters");
    }
    auto sep = url.find("://");
    auto colon = url.find(':');
    if (sep == std::string_view::npos || colon < sep) {
        if (colon != std::string_view::npos && colon > 0) {
            return refuse(c, "scheme_not_allowed", "only http and https URLs are allowed");
        }
        return refuse(c, "malformed_url", "not an absolute URL (expected https://host/path)");
    }
    c.scheme = lower(url.substr(0, sep));
    if (c.scheme != "http" && c.scheme != "https") {
        return refuse(c, "scheme_not_allowed", "only http and https URLs are allowed, not " + c.scheme.substr(0, 16));
    }
    auto rest = url.substr(sep + 3);
    if (rest.find('#') != std::string_view::npos) return refuse(c, "malformed_url", "the URL must not have a fragment (#...)");
    auto end = rest.find_first_of("/?");
    auto authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) {
        return refuse(c, "userinfo_not_allowed", "the URL must not contain a user name or password");
    }
    if (authority.find('\\') != std::string_view::npos || authority.find('%') != std::string_view::npos) {
        return refuse(c, "malformed_url", "the host part contains characters that are not allowed");
    }
    std::string_view host, port;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return refuse(c, "malformed_url", "unterminated IPv6 address");
        host = authority.substr(1, close - 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return refuse(c, "malformed_url", "unexpected text after the IPv6 address");
            port = after.substr(1);
            if (port.empty()) return refuse(c, "malformed_url", "empty port");
        }
        bytes16 b;
        if (!to_bytes(host, b) || host.find(':') == std::string_view::npos) {
            return refuse(c, "malformed_url", "not a valid IPv6 address in brackets");
        }
    } else {
        auto pc = authority.find(':');
        host = authority.substr(0, pc);
        if (pc != std::string_view::npos) {
            port = authority.substr(pc + 1);
            if (port.empty()) return refuse(c, "malformed_url", "empty port");
        }
        if (!std::all_of(host.begin(), host.end(), host_char)) {
            return refuse(c, "malformed_url", "the host name contains characters that are not allowed");
        }
    }
    if (host.empty()) return refuse(c, "malformed_url", "the URL has no host");
    c.host = lower(host);
    if (!port.empty()) {
        if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); })) {
            return refuse(c, "malformed_url", "the port is not a number");
        }
        int p = std::stoi(std::string(port));
        if (p < 1 || p > 65535) return refuse(c, "malformed_url", "the port is out of range");
        c.port = static_cast<std::uint16_t>(p);
    } else {
        c.port = c.scheme == "https" ? 443 : 80;
    }

    bytes16 literal;
    if (to_bytes(c.host, literal)) {
        c.addresses.push_back(c.host);
    } else {
        try {
            c.addresses = policy.resolve ? policy.resolve(c.host) : system_resolve(c.host);
        } catch (const std::exception& e) {
            return refuse(c, "host_unresolvable", "the host " + c.host + " cannot be resolved: " + e.what());
        }
        if (c.addresses.empty()) return refuse(c, "host_unresolvable", "the host " + c.host + " has no address");
    }
    bool named = host_name_allowed(c.host, policy.allowed_hosts);
    for (const auto& a : c.addresses) {
        bytes16 b;
        if (!to_bytes(a, b)) return refuse(c, "host_unresolvable", "the host " + c.host + " resolved to an unusable address");
        bool ok = false;
        for (const auto& n : policy.allowed_networks) {
            if (n.contains(b)) {
                ok = true;
                break;
            }
        }
        if (!ok && named) ok = unicast_bytes(b);
        if (!ok && policy.allow_public) ok = public_bytes(b);
        if (!ok) {
            std::string where = a == c.host ? "" : " (" + c.host + ")";
            return refuse(c, "address_not_allowed",
                          "webhooks may not reach " + a + where +
                              ": private, loopback, link-local and reserved addresses are refused unless "
                              "TXP_WEBHOOK_ALLOW lists them");
        }
    }
    c.ok = true;
    return c;
}

}  // namespace txp::notifier
