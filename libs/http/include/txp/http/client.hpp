// A small synchronous HTTP/1.1 client (one connection per call) for webhooks, the Plaid
// API and tests. https verifies the peer against the system CA store and the host name.
#pragma once

#include "txp/http/message.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace txp::http {

struct url {
    std::string scheme;  // "http" or "https"
    std::string host;    // without brackets for IPv6 literals
    std::uint16_t port = 0;
    std::string target;  // path and query, at least "/"

    // http and https only; throws std::invalid_argument naming what is wrong.
    static url parse(std::string_view text);
};

struct client_request {
    std::string method = "GET";
    std::string url;
    std::vector<header> headers;
    std::string body;
    std::string content_type = "application/json";  // sent only with a body
    std::chrono::milliseconds timeout{10000};       // the whole exchange
    bool verify_tls = true;
};

struct client_response {
    unsigned status = 0;
    std::vector<header> headers;
    std::string body;
    std::optional<std::string_view> header_value(std::string_view name) const;  // case-insensitive
};

class client_error : public std::runtime_error {
public:
    enum class kind { connect, timeout, tls, protocol };
    client_error(kind k, const std::string& what) : std::runtime_error(what), k(k) {}
    kind k;
};

const char* to_string(client_error::kind k);

// Throws client_error (and std::invalid_argument for a bad URL). Response bodies over
// 16 MiB are a protocol error.
client_response fetch(const client_request& req);

// A kept-alive HTTP/1.1 connection to one http:// origin, for clients that send many requests
// in a row (gen_transactions, benchmarks): connects on first use, reuses the connection while
// the server keeps it open, and reconnects (retrying once) when a reused connection turns out
// to have been closed by the server before answering. One per thread; no https.
class connection {
public:
    // origin: "http://host:port"; throws std::invalid_argument for anything else.
    explicit connection(const std::string& origin);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    // req.url must be on this connection's origin. Throws like fetch().
    client_response fetch(const client_request& req);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Streams the body: on_chunk is called first with the status and an empty chunk once the
// header has arrived, then with each piece of body as it arrives, until the body ends or
// on_chunk returns false. Throws client_error, with kind timeout when req.timeout passes.
void fetch_stream(const client_request& req, const std::function<bool(unsigned status, std::string_view chunk)>& on_chunk);

}  // namespace txp::http
