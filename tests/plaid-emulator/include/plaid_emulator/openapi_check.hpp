// A small conformance checker against Plaid's OpenAPI subset: required members present,
// types right (integer vs number), enums, and nullability exactly as the schema says
// ($ref, allOf, items and properties are followed). Not a full OpenAPI validator.
#pragma once

#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace txp::plaid_emulator {

class openapi_checker {
public:
    explicit openapi_checker(const std::string& path);  // the openapi-subset.json file
    ~openapi_checker();

    // Problems of a response body of `endpoint` ("/transactions/sync") with HTTP `status`:
    // 200 is checked against the 200 schema, anything else against the error schema.
    // Empty when it conforms.
    std::vector<std::string> check_response(std::string_view endpoint, unsigned status, std::string_view body) const;
    // Problems of a value against a named component schema ("Transaction").
    std::vector<std::string> check_schema(std::string_view schema_name, const rapidjson::Value& v) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Where the copy of the subset lives in the source tree.
std::string default_openapi_path();

}  // namespace txp::plaid_emulator
