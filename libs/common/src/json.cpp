// Strict JSON parsing and typed field access.
#include "txp/common/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

namespace txp::json {

namespace {

// Measures nesting depth before building the DOM, so a hostile "[[[[..." cannot blow the stack.
bool depth_ok(std::string_view text, std::size_t max_depth) {
    std::size_t depth = 0;
    bool in_string = false;
    bool escape = false;
    for (char c : text) {
        if (in_string) {
            if (escape) escape = false;
            else if (c == '\\') escape = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '{' || c == '[') {
            if (++depth > max_depth) return false;
        } else if (c == '}' || c == ']') {
            if (depth > 0) --depth;
        }
    }
    return true;
}

const char* type_name(const rapidjson::Value& v) {
    if (v.IsNull()) return "null";
    if (v.IsBool()) return "a boolean";
    if (v.IsString()) return "a string";
    if (v.IsArray()) return "an array";
    if (v.IsObject()) return "an object";
    if (v.IsInt64() || v.IsUint64()) return "an integer";
    return "a number";
}

}  // namespace

rapidjson::Document parse(std::string_view text, std::size_t max_depth) {
    if (!depth_ok(text, max_depth)) {
        throw parse_error("JSON nesting is deeper than " + std::to_string(max_depth) + " levels");
    }
    rapidjson::Document doc;
    // Without kParseStopWhenDoneFlag, anything after the root value is an error.
    constexpr unsigned flags = rapidjson::kParseValidateEncodingFlag | rapidjson::kParseFullPrecisionFlag;
    doc.Parse<flags>(text.data(), text.size());
    if (doc.HasParseError()) {
        throw parse_error(std::string("malformed JSON at offset ") + std::to_string(doc.GetErrorOffset()) + ": " +
                          rapidjson::GetParseError_En(doc.GetParseError()));
    }
    return doc;
}

std::string to_string(const rapidjson::Value& v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

bool has(const rapidjson::Value& obj, const char* name) {
    return obj.IsObject() && obj.HasMember(name) && !obj[name].IsNull();
}

const rapidjson::Value& require_object(const rapidjson::Value& obj, const char* name) {
    if (!obj.IsObject() || !obj.HasMember(name)) throw field_error(name, std::string(name) + " is required");
    const auto& v = obj[name];
    if (!v.IsObject()) throw field_error(name, std::string(name) + " must be an object, not " + type_name(v));
    return v;
}

std::string require_string(const rapidjson::Value& obj, const char* name, std::size_t max_len) {
    if (!obj.IsObject() || !obj.HasMember(name) || obj[name].IsNull()) {
        throw field_error(name, std::string(name) + " is required");
    }
    auto s = optional_string(obj, name, max_len);
    return *s;
}

std::optional<std::string> optional_string(const rapidjson::Value& obj, const char* name, std::size_t max_len) {
    if (!obj.IsObject() || !obj.HasMember(name) || obj[name].IsNull()) return std::nullopt;
    const auto& v = obj[name];
    if (!v.IsString()) throw field_error(name, std::string(name) + " must be a string, not " + type_name(v));
    if (v.GetStringLength() > max_len) {
        throw field_error(name, std::string(name) + " is longer than " + std::to_string(max_len) + " characters");
    }
    return std::string(v.GetString(), v.GetStringLength());
}

std::int64_t require_int(const rapidjson::Value& obj, const char* name) {
    auto v = optional_int(obj, name);
    if (!v) throw field_error(name, std::string(name) + " is required");
    return *v;
}

std::optional<std::int64_t> optional_int(const rapidjson::Value& obj, const char* name) {
    if (!obj.IsObject() || !obj.HasMember(name) || obj[name].IsNull()) return std::nullopt;
    const auto& v = obj[name];
    if (v.IsInt64()) return v.GetInt64();
    if (v.IsUint64()) {
        throw field_error(name, std::string(name) + " is too large (at most 9223372036854775807)");
    }
    if (v.IsDouble() && (v.GetDouble() >= 9.2e18 || v.GetDouble() <= -9.2e18)) {
        throw field_error(name, std::string(name) + " is out of range (at most 9223372036854775807)");
    }
    if (v.IsNumber()) {
        throw field_error(name, std::string(name) + " must be an integer (minor units), not a fraction or exponent");
    }
    throw field_error(name, std::string(name) + " must be an integer, not " + type_name(v));
}

}  // namespace txp::json
