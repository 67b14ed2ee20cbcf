// JSON Schema validation with RapidJSON's SchemaValidator; schemas loaded once from proto/.
#include "txp/common/schema.hpp"

#include "txp/common/config.hpp"
#include "txp/common/json.hpp"

#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace txp::schema {

struct registry::impl {
    std::map<std::string, std::unique_ptr<rapidjson::SchemaDocument>, std::less<>> schemas;
};

registry::registry(std::string proto_dir) : impl_(std::make_unique<impl>()) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(proto_dir)) throw std::runtime_error("schema directory not found: " + proto_dir);
    for (const auto& entry : fs::directory_iterator(proto_dir)) {
        auto name = entry.path().filename().string();
        const std::string suffix = ".schema.json";
        if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
        std::ifstream in(entry.path());
        std::stringstream ss;
        ss << in.rdbuf();
        auto doc = json::parse(ss.str(), 64);
        impl_->schemas.emplace(name.substr(0, name.size() - suffix.size()),
                               std::make_unique<rapidjson::SchemaDocument>(doc));
    }
    if (impl_->schemas.empty()) throw std::runtime_error("no *.schema.json in " + proto_dir);
}

registry::~registry() = default;

bool registry::knows(std::string_view type) const { return impl_->schemas.find(type) != impl_->schemas.end(); }

std::optional<std::string> registry::validate(std::string_view type, const rapidjson::Value& doc) const {
    auto it = impl_->schemas.find(type);
    if (it == impl_->schemas.end()) return "unknown message type \"" + std::string(type) + "\"";
    rapidjson::SchemaValidator validator(*it->second);
    if (doc.Accept(validator)) return std::nullopt;
    rapidjson::StringBuffer where;
    validator.GetInvalidDocumentPointer().StringifyUriFragment(where);
    rapidjson::StringBuffer rule;
    validator.GetInvalidSchemaPointer().StringifyUriFragment(rule);
    std::string at = where.GetString();
    if (at == "#") at = "the message";
    return std::string("schema ") + std::string(type) + ": " + at + " violates '" + validator.GetInvalidSchemaKeyword() +
           "' (" + rule.GetString() + ")";
}

std::string default_proto_dir() {
    if (auto v = config::get("TXP_PROTO_DIR")) return *v;
    return TXP_DEFAULT_PROTO_DIR;
}

const registry& global() {
    static const registry r(default_proto_dir());
    return r;
}

}  // namespace txp::schema
