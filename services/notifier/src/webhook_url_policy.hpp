// Outbound URL policy for webhooks: which URLs a subscription may point at, so that a
// webhook cannot be aimed at internal services. Checked when a subscription is created (the
// gateway) and again before every delivery attempt (the notifier), against DNS rebinding.
// Deliberately light: no Boost, no OpenSSL, no database in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace txp::notifier {

// An IPv4 or IPv6 network (IPv4 is kept as an IPv4-mapped IPv6 address internally).
struct ip_network {
    std::uint8_t addr[16] = {};
    int prefix = 0;  // in bits, over the 128-bit form
    std::string text;

    // "10.0.0.0/8", "::1/128", "fd00::/8", or a bare address (a /32 or /128). Throws
    // std::invalid_argument.
    static ip_network parse(std::string_view text);
    bool contains(const std::uint8_t (&a)[16]) const;
};

struct webhook_url_policy {
    // Any publicly routable address (the default): everything but loopback, private,
    // shared (CGNAT), link-local (cloud metadata), unspecified, multicast, documentation
    // and reserved ranges, and their IPv6 equivalents (including IPv4-mapped forms).
    bool allow_public = true;
    // Networks allowed whatever they are (e.g. 127.0.0.0/8 for the demo and the tests).
    std::vector<ip_network> allowed_networks;
    // Host names allowed whatever they resolve to (exact, case-insensitive), or a suffix
    // with a leading "*." ("*.hooks.example.com"). Their addresses must still be unicast.
    std::vector<std::string> allowed_hosts;
    // Name resolution; empty: getaddrinfo. Returns textual addresses; throws on failure.
    std::function<std::vector<std::string>(const std::string& host)> resolve;

    // The TXP_WEBHOOK_ALLOW syntax: a comma list of host names, CIDRs or addresses, and the
    // word "public". Unset or empty: "public". "127.0.0.0/8" alone allows loopback only.
    // Throws std::invalid_argument naming the bad entry.
    static webhook_url_policy parse(std::string_view allow_list);
};

struct url_check {
    bool ok = false;
    // Stable codes when refused: malformed_url, scheme_not_allowed, userinfo_not_allowed,
    // host_unresolvable, address_not_allowed.
    std::string reason;
    std::string detail;  // one human sentence, safe to show the user (no query string)
    std::string scheme;
    std::string host;  // lower case; IPv6 without brackets
    std::uint16_t port = 0;
    std::vector<std::string> addresses;  // what the host resolved to
};

// http/https only, no userinfo, no fragment, at most 2048 characters; the host is resolved
// and every address it resolves to must be allowed by the policy.
url_check check_webhook_url(std::string_view url, const webhook_url_policy& policy);

// True for an address that is publicly routable (the policy's "public").
bool is_public_address(std::string_view address);

}  // namespace txp::notifier
