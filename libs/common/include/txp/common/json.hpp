// JSON helpers over RapidJSON: strict parsing (depth and size bounded), typed field access
// that tells exactly what is wrong, and a small writer.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace txp::json {

// A JSON document that is malformed, too deep or too big; what() is a human sentence.
class parse_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A field with the wrong type or value; field() names it (JSON pointer-ish "amount").
class field_error : public std::runtime_error {
public:
    field_error(std::string field, const std::string& what) : std::runtime_error(what), field_(std::move(field)) {}
    const std::string& field() const { return field_; }

private:
    std::string field_;
};

inline constexpr std::size_t default_max_depth = 32;

// Parses text; rejects trailing garbage, nesting deeper than max_depth, and non-UTF-8.
rapidjson::Document parse(std::string_view text, std::size_t max_depth = default_max_depth);

// Serialises a value compactly.
std::string to_string(const rapidjson::Value& v);

// Typed access: required fields throw field_error when missing or of the wrong type.
const rapidjson::Value& require_object(const rapidjson::Value& obj, const char* name);
std::string require_string(const rapidjson::Value& obj, const char* name, std::size_t max_len = 1024);
std::optional<std::string> optional_string(const rapidjson::Value& obj, const char* name, std::size_t max_len = 1024);
// Integers must be JSON integers (no fraction, no exponent, no quotes) within int64.
std::int64_t require_int(const rapidjson::Value& obj, const char* name);
std::optional<std::int64_t> optional_int(const rapidjson::Value& obj, const char* name);
bool has(const rapidjson::Value& obj, const char* name);

// Minimal streaming writer wrapper.
class writer {
public:
    writer() : w_(buf_) {}
    rapidjson::Writer<rapidjson::StringBuffer>& w() { return w_; }
    writer& start_object() { w_.StartObject(); return *this; }
    writer& end_object() { w_.EndObject(); return *this; }
    writer& start_array() { w_.StartArray(); return *this; }
    writer& end_array() { w_.EndArray(); return *this; }
    writer& key(std::string_view k) { w_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size())); return *this; }
    writer& str(std::string_view v) { w_.String(v.data(), static_cast<rapidjson::SizeType>(v.size())); return *this; }
    writer& i64(std::int64_t v) { w_.Int64(v); return *this; }
    writer& boolean(bool v) { w_.Bool(v); return *this; }
    writer& null() { w_.Null(); return *this; }
    writer& kv(std::string_view k, std::string_view v) { return key(k).str(v); }
    writer& kv(std::string_view k, const char* v) { return key(k).str(v); }
    writer& kv(std::string_view k, const std::string& v) { return key(k).str(v); }
    writer& kv(std::string_view k, std::int64_t v) { return key(k).i64(v); }
    writer& kv(std::string_view k, int v) { return key(k).i64(v); }
    writer& kv(std::string_view k, bool v) { return key(k).boolean(v); }
    writer& kv_opt(std::string_view k, const std::optional<std::string>& v) { key(k); return v ? str(*v) : null(); }
    writer& kv_opt(std::string_view k, const std::optional<std::int64_t>& v) { key(k); return v ? i64(*v) : null(); }
    writer& raw(std::string_view k, std::string_view json) {
        key(k);
        w_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
        return *this;
    }
    std::string str() const { return std::string(buf_.GetString(), buf_.GetSize()); }

private:
    rapidjson::StringBuffer buf_;
    rapidjson::Writer<rapidjson::StringBuffer> w_;
};

}  // namespace txp::json
