// HTTP messages as the services see them: plain structs with no Boost in sight, the
// problem+json error shape (RFC 9457), and the writer a handler answers through.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace txp::http {

struct header {
    std::string name;
    std::string value;
};

struct request {
    std::string method;          // as sent, e.g. "GET"; HEAD reaches the handler as "HEAD"
    std::string target;          // raw request target, e.g. "/v1/wallets/7?limit=10"
    std::string path;            // percent-decoded path without the query
    std::string query;           // raw query string (after '?'), not decoded
    std::vector<header> headers;
    std::string body;
    std::string remote_address;  // peer IP
    // X-Request-Id from the client when it is a sane token (<= 64 chars of [A-Za-z0-9._-]),
    // else a fresh UUIDv4. Echoed back as X-Request-Id on every response.
    std::string request_id;

    // Case-insensitive; the first occurrence.
    std::optional<std::string_view> header_value(std::string_view name) const;
    // How often the header occurs (case-insensitive): for headers that must come once.
    std::size_t header_count(std::string_view name) const;
    // Percent-decoded, '+' read as a space; the first occurrence; nullopt when absent.
    std::optional<std::string> query_param(std::string_view name) const;
};

struct response {
    unsigned status = 200;
    std::vector<header> headers;
    std::string body;
    std::string content_type = "application/json";
};

// A member added to a problem body: its name and its value as JSON text (e.g. "\"x\"", "42",
// "[{...}]"). Text that is not valid JSON is sent as a JSON string instead.
struct problem_member {
    std::string name;
    std::string json;
};

// RFC 9457 problem+json: {"type": "https://txp.dev/problems/<type>", "title", "status",
// "detail", "request_id", ...extra}. Content type application/problem+json.
response problem(unsigned status, std::string_view type, std::string_view title, std::string_view detail,
                 std::string_view request_id, const std::vector<problem_member>& extra = {});

// Handed to the handler; thread-safe, and may be used from any thread, later (long-poll).
// If the last reference is dropped without a response, the client gets a 500 (and an error
// is logged); a stream that was started and not finished is finished.
class response_writer {
public:
    virtual ~response_writer() = default;
    // Exactly once for a normal response; further calls are ignored. After the client has
    // gone it is a harmless no-op.
    virtual void send(response r) = 0;
    // Streaming (Server-Sent Events, long downloads): status and headers first, sent with
    // chunked transfer encoding; then chunks; then finish(). write() returns false once the
    // client is gone, the server is stopping, or the client reads too slowly to keep up.
    virtual void start_stream(unsigned status, std::vector<header> headers, std::string content_type) = 0;
    virtual bool write(std::string chunk) = 0;
    virtual void finish() = 0;
    virtual bool client_gone() const = 0;
};

using handler = std::function<void(request&&, std::shared_ptr<response_writer>)>;

// A sane client-supplied request id: 1..64 chars of [A-Za-z0-9._-].
bool is_valid_request_id(std::string_view id);

// Percent-decoding; with plus_as_space '+' becomes ' ' (query strings). Invalid escapes are
// kept literally.
std::string percent_decode(std::string_view s, bool plus_as_space);

}  // namespace txp::http
