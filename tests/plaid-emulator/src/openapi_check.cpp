// The OpenAPI-subset conformance checker (see openapi_check.hpp).
#include "plaid_emulator/openapi_check.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace txp::plaid_emulator {

std::string default_openapi_path() { return std::string(TXP_PLAID_OPENAPI_DIR) + "/openapi-subset.json"; }

struct openapi_checker::impl {
    rapidjson::Document spec;

    const rapidjson::Value* resolve(const rapidjson::Value& s) const {
        const rapidjson::Value* cur = &s;
        for (int guard = 0; guard < 32 && cur->IsObject() && cur->HasMember("$ref"); ++guard) {
            std::string ref = (*cur)["$ref"].GetString();
            const std::string prefix = "#/components/schemas/";
            if (ref.rfind(prefix, 0) != 0) throw std::runtime_error("unsupported $ref " + ref);
            auto& schemas = spec["components"]["schemas"];
            auto it = schemas.FindMember(ref.substr(prefix.size()).c_str());
            if (it == schemas.MemberEnd()) throw std::runtime_error("unknown schema " + ref);
            cur = &it->value;
        }
        return cur;
    }

    static bool nullable(const rapidjson::Value& s) {
        auto it = s.FindMember("nullable");
        return it != s.MemberEnd() && it->value.IsBool() && it->value.GetBool();
    }

    void check(const rapidjson::Value& schema_in, const rapidjson::Value& v, const std::string& at,
               std::vector<std::string>& out, bool outer_nullable = false) const {
        const rapidjson::Value& s = *resolve(schema_in);
        bool may_be_null = outer_nullable || nullable(s);
        // A $ref with a sibling nullable (or allOf with nullable) is nullable too.
        if (schema_in.IsObject() && nullable(schema_in)) may_be_null = true;
        if (v.IsNull()) {
            if (!may_be_null) {
                // An enum that lists null allows it.
                if (s.HasMember("enum")) {
                    for (const auto& e : s["enum"].GetArray())
                        if (e.IsNull()) return;
                }
                out.push_back(at + ": null where the schema does not allow it");
            }
            return;
        }
        if (s.HasMember("allOf")) {
            for (const auto& part : s["allOf"].GetArray()) check(part, v, at, out, true);
        }
        if (s.HasMember("type")) {
            std::string t = s["type"].GetString();
            bool ok = (t == "string" && v.IsString()) || (t == "number" && v.IsNumber()) ||
                      (t == "integer" && (v.IsInt64() || v.IsUint64())) || (t == "boolean" && v.IsBool()) ||
                      (t == "array" && v.IsArray()) || (t == "object" && v.IsObject());
            if (!ok) {
                out.push_back(at + ": expected " + t);
                return;
            }
        }
        if (s.HasMember("enum") && (v.IsString() || v.IsNumber())) {
            bool found = false;
            for (const auto& e : s["enum"].GetArray()) {
                if (e == v) found = true;
            }
            if (!found) out.push_back(at + ": value not in the enum");
        }
        if (v.IsArray() && s.HasMember("items")) {
            std::size_t i = 0;
            for (const auto& x : v.GetArray()) check(s["items"], x, at + "[" + std::to_string(i++) + "]", out);
        }
        if (v.IsObject()) {
            if (s.HasMember("required")) {
                for (const auto& r : s["required"].GetArray()) {
                    if (!v.HasMember(r.GetString())) out.push_back(at + ": missing required member " + r.GetString());
                }
            }
            if (s.HasMember("properties")) {
                for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
                    auto p = s["properties"].FindMember(m->name.GetString());
                    if (p != s["properties"].MemberEnd()) {
                        check(p->value, m->value, at + "." + m->name.GetString(), out);
                    }
                }
            }
        }
    }
};

openapi_checker::openapi_checker(const std::string& path) : impl_(std::make_unique<impl>()) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto text = ss.str();
    impl_->spec.Parse(text.data(), text.size());
    if (impl_->spec.HasParseError()) throw std::runtime_error(path + " is not JSON");
}

openapi_checker::~openapi_checker() = default;

std::vector<std::string> openapi_checker::check_schema(std::string_view name, const rapidjson::Value& v) const {
    rapidjson::Document ref;
    std::string r = "{\"$ref\":\"#/components/schemas/" + std::string(name) + "\"}";
    ref.Parse(r.c_str());
    std::vector<std::string> out;
    impl_->check(ref, v, std::string(name), out);
    return out;
}

std::vector<std::string> openapi_checker::check_response(std::string_view endpoint, unsigned status,
                                                         std::string_view body) const {
    std::vector<std::string> out;
    auto& paths = impl_->spec["paths"];
    auto p = paths.FindMember(std::string(endpoint).c_str());
    if (p == paths.MemberEnd()) return {"no such path in the subset: " + std::string(endpoint)};
    auto& responses = p->value["post"]["responses"];
    const char* key = status == 200 ? "200" : "default";
    auto r = responses.FindMember(key);
    if (r == responses.MemberEnd()) return {std::string("no ") + key + " response for " + std::string(endpoint)};
    const auto& schema = r->value["content"]["application/json"]["schema"];
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    if (d.HasParseError()) return {"the body is not JSON"};
    impl_->check(schema, d, std::string(endpoint) + "#" + key, out);
    if (!d.IsObject() || !d.HasMember("request_id") || !d["request_id"].IsString()) {
        out.push_back("every body has a request_id");
    }
    return out;
}

}  // namespace txp::plaid_emulator
