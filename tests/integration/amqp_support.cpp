// Management API helpers for the txp::amqp integration tests.
#include "amqp_support.hpp"

#include <rapidjson/document.h>

#include <cstdio>

namespace amqp_test {

std::string url_encode(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

std::vector<std::string> connections_named(const std::string& prefix) {
    int status = 0;
    std::string body = txp::testing::rabbit_api_call(
        "GET", "/vhosts/" + url_encode(txp::testing::vhost()) + "/connections", &status);
    std::vector<std::string> names;
    if (status != 200) return names;
    rapidjson::Document doc;
    doc.Parse(body.c_str());
    if (doc.HasParseError() || !doc.IsArray()) return names;
    for (const auto& c : doc.GetArray()) {
        if (!c.IsObject() || !c.HasMember("name") || !c.HasMember("client_properties")) continue;
        const auto& props = c["client_properties"];
        if (!props.IsObject() || !props.HasMember("connection_name") || !props["connection_name"].IsString()) continue;
        std::string cname = props["connection_name"].GetString();
        if (cname.rfind(prefix, 0) == 0) names.push_back(c["name"].GetString());
    }
    return names;
}

int close_connections_named(const std::string& prefix) {
    int closed = 0;
    for (const auto& name : connections_named(prefix)) {
        int status = 0;
        txp::testing::rabbit_api_call("DELETE", "/connections/" + url_encode(name), &status);
        if (status == 204 || status == 200) ++closed;
    }
    return closed;
}

}  // namespace amqp_test
