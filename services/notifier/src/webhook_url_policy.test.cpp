// check_webhook_url: schemes, userinfo, malformed URLs, and every forbidden address family,
// with a fake resolver so that no test depends on DNS.
#include "webhook_url_policy.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace txp::notifier;

namespace {

webhook_url_policy with_dns(webhook_url_policy p, std::map<std::string, std::vector<std::string>> names) {
    p.resolve = [names](const std::string& host) {
        auto it = names.find(host);
        if (it == names.end()) throw std::runtime_error("Name or service not known");
        return it->second;
    };
    return p;
}

std::string reason(std::string_view url, const webhook_url_policy& p) {
    auto c = check_webhook_url(url, p);
    return c.ok ? "ok" : c.reason;
}

}  // namespace

TEST_CASE("public https and http URLs are allowed by default", "[notifier][url]") {
    auto p = with_dns({}, {{"hooks.example.com", {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"}}});
    auto c = check_webhook_url("https://hooks.example.com/txp?token=abc", p);
    REQUIRE(c.ok);
    CHECK(c.scheme == "https");
    CHECK(c.host == "hooks.example.com");
    CHECK(c.port == 443);
    CHECK(c.addresses.size() == 2);
    CHECK(reason("HTTP://Hooks.Example.COM:8080/x", p) == "ok");
    CHECK(check_webhook_url("HTTP://Hooks.Example.COM:8080/x", p).port == 8080);
    CHECK(reason("https://93.184.216.34/", p) == "ok");
    CHECK(reason("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/", p) == "ok");
}

TEST_CASE("only http and https schemes", "[notifier][url]") {
    webhook_url_policy p;
    CHECK(reason("file:///etc/passwd", p) == "scheme_not_allowed");
    CHECK(reason("ftp://93.184.216.34/x", p) == "scheme_not_allowed");
    CHECK(reason("gopher://93.184.216.34/", p) == "scheme_not_allowed");
    CHECK(reason("javascript:alert(1)", p) == "scheme_not_allowed");
    CHECK(reason("mailto:a@b.c", p) == "scheme_not_allowed");
    CHECK(reason("//93.184.216.34/", p) == "malformed_url");
    CHECK(reason("93.184.216.34/", p) == "malformed_url");
    CHECK_FALSE(check_webhook_url("file:///etc/passwd", p).detail.empty());
}

TEST_CASE("userinfo, fragments and odd characters are refused", "[notifier][url]") {
    webhook_url_policy p;
    CHECK(reason("https://user:pass@93.184.216.34/", p) == "userinfo_not_allowed");
    CHECK(reason("https://93.184.216.34@127.0.0.1/", p) == "userinfo_not_allowed");
    CHECK(reason("https://93.184.216.34/#frag", p) == "malformed_url");
    CHECK(reason("https://93.184.216.34/a b", p) == "malformed_url");
    CHECK(reason("https://93.184.216.34\\@evil/", p) == "userinfo_not_allowed");
    CHECK(reason("https://evil.example\\.93.184.216.34/", p) == "malformed_url");
    CHECK(reason("https://%31%32%37.0.0.1/", p) == "malformed_url");
    CHECK(reason("https://93.184.216.34:0/", p) == "malformed_url");
    CHECK(reason("https://93.184.216.34:65536/", p) == "malformed_url");
    CHECK(reason("https://93.184.216.34:/", p) == "malformed_url");
    CHECK(reason("https:///path", p) == "malformed_url");
    CHECK(reason("https://[::1/", p) == "malformed_url");
    CHECK(reason("https://[nothex]/", p) == "malformed_url");
    CHECK(reason("", p) == "malformed_url");
    CHECK(reason("https://x.example/" + std::string(3000, 'a'), p) == "malformed_url");
    CHECK(reason("https://caf\xc3\xa9.example/", p) == "malformed_url");
}

TEST_CASE("internal addresses are refused by default", "[notifier][url]") {
    webhook_url_policy p;
    for (const char* url : {
             "http://127.0.0.1/", "http://127.0.0.1:8080/x", "http://127.255.255.254/",
             "http://10.0.0.1/", "http://10.255.1.1/", "http://172.16.0.1/", "http://172.31.255.255/",
             "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://169.254.0.1/",
             "http://0.0.0.0/", "http://0.1.2.3/", "http://100.64.0.1/", "http://100.127.255.255/",
             "http://192.0.2.1/", "http://198.18.0.1/", "http://198.51.100.7/", "http://203.0.113.9/",
             "http://224.0.0.1/", "http://239.255.255.250/", "http://255.255.255.255/", "http://240.0.0.1/",
             "http://[::1]/", "http://[::]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/",
             "http://[::ffff:169.254.169.254]/", "http://[fe80::1]/", "http://[fc00::1]/", "http://[fd00:ec2::254]/",
             "http://[ff02::1]/", "http://[64:ff9b::a00:1]/", "http://[2002:7f00:1::]/", "http://[2001:db8::1]/",
             "http://[2001::1]/", "http://[::127.0.0.1]/", "http://[100::1]/"}) {
        INFO(url);
        CHECK(reason(url, p) == "address_not_allowed");
    }
    CHECK(reason("http://[64:ff9b::5db8:d822]/", p) == "ok");  // NAT64 of a public address
    CHECK(reason("http://172.32.0.1/", p) == "ok");             // just outside 172.16.0.0/12
    CHECK(reason("http://100.128.0.1/", p) == "ok");            // just outside 100.64.0.0/10
}

TEST_CASE("names are judged by what they resolve to, every address of them", "[notifier][url]") {
    auto p = with_dns({}, {{"localhost", {"127.0.0.1", "::1"}},
                           {"metadata.internal", {"169.254.169.254"}},
                           {"mixed.example.com", {"93.184.216.34", "10.0.0.5"}},
                           {"rebind.example.com", {"192.168.0.10"}}});
    CHECK(reason("http://localhost:9000/", p) == "address_not_allowed");
    CHECK(reason("http://metadata.internal/", p) == "address_not_allowed");
    CHECK(reason("https://mixed.example.com/", p) == "address_not_allowed");
    CHECK(reason("https://rebind.example.com/", p) == "address_not_allowed");
    CHECK(reason("https://nowhere.invalid/", p) == "host_unresolvable");
    auto c = check_webhook_url("https://mixed.example.com/?secret=1", p);
    CHECK(c.detail.find("10.0.0.5") != std::string::npos);
    CHECK(c.detail.find("secret") == std::string::npos);
}

TEST_CASE("numeric host spellings that resolve to loopback are caught", "[notifier][url]") {
    webhook_url_policy p;  // the system resolver: getaddrinfo turns these into 127.0.0.1
    CHECK(reason("http://2130706433/", p) == "address_not_allowed");
    CHECK(reason("http://0x7f000001/", p) == "address_not_allowed");
    CHECK(reason("http://127.1/", p) == "address_not_allowed");
    CHECK(reason("http://localhost/", p) == "address_not_allowed");
}

TEST_CASE("TXP_WEBHOOK_ALLOW lists networks and host names", "[notifier][url]") {
    auto loop = webhook_url_policy::parse("127.0.0.0/8");
    CHECK_FALSE(loop.allow_public);
    CHECK(reason("http://127.0.0.1:4000/hook", loop) == "ok");
    CHECK(reason("http://10.0.0.1/", loop) == "address_not_allowed");
    CHECK(reason("http://169.254.169.254/", loop) == "address_not_allowed");
    CHECK(reason("http://93.184.216.34/", loop) == "address_not_allowed");  // loopback only
    CHECK(reason("http://[::1]/", loop) == "address_not_allowed");
    CHECK(reason("ftp://127.0.0.1/", loop) == "scheme_not_allowed");

    auto both = webhook_url_policy::parse(" public , 127.0.0.0/8, ::1 ");
    CHECK(reason("http://127.0.0.1/", both) == "ok");
    CHECK(reason("http://[::1]:81/", both) == "ok");
    CHECK(reason("http://93.184.216.34/", both) == "ok");
    CHECK(reason("http://10.0.0.1/", both) == "address_not_allowed");

    auto named = with_dns(webhook_url_policy::parse("public,partner.internal,*.hooks.corp"),
                          {{"partner.internal", {"10.1.2.3"}}, {"a.hooks.corp", {"10.9.9.9"}}, {"hooks.corp", {"10.9.9.8"}},
                           {"evil.internal", {"10.1.2.4"}}, {"zero.hooks.corp", {"0.0.0.0"}}});
    CHECK(reason("https://partner.internal/x", named) == "ok");
    CHECK(reason("https://a.hooks.corp/x", named) == "ok");
    CHECK(reason("https://hooks.corp/x", named) == "address_not_allowed");  // *. needs a subdomain
    CHECK(reason("https://evil.internal/x", named) == "address_not_allowed");
    CHECK(reason("https://zero.hooks.corp/x", named) == "address_not_allowed");  // never the unspecified address

    CHECK(webhook_url_policy::parse("").allow_public);
    CHECK_THROWS_AS(webhook_url_policy::parse("10.0.0.0/33"), std::invalid_argument);
    CHECK_THROWS_AS(webhook_url_policy::parse("not a host!"), std::invalid_argument);
    CHECK_THROWS_AS(webhook_url_policy::parse("300.1.1.1/8"), std::invalid_argument);
}

TEST_CASE("networks contain what they should", "[notifier][url]") {
    CHECK(is_public_address("8.8.8.8"));
    CHECK(is_public_address("2606:4700:4700::1111"));
    CHECK_FALSE(is_public_address("127.0.0.1"));
    CHECK_FALSE(is_public_address("not an address"));
    auto n = ip_network::parse("10.1.0.0/16");
    auto wide = ip_network::parse("::/0");
    CHECK(n.prefix == 96 + 16);
    CHECK(wide.prefix == 0);
}
