// Small helpers shared by the server, client and message code (no Boost here).
#pragma once

#include "txp/http/message.hpp"

#include <optional>
#include <string_view>
#include <vector>

namespace txp::http::detail {

bool iequals(std::string_view a, std::string_view b);
std::optional<std::string_view> find_header(const std::vector<header>& headers, std::string_view name);
// True when the content type is JSON (plain or problem+json), whose responses get no-store.
bool is_json_content_type(std::string_view content_type);

}  // namespace txp::http::detail
