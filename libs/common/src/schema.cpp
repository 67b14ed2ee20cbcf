// JSON Schema validation with RapidJSON's SchemaValidator; schemas loaded once from proto/.
#include "txp/common/schema.hpp"

#include "txp/common/config.hpp"
#include "txp/common/json.hpp"

#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace txp::schema {

struct registry::impl {
    std::map<std::string, std::unique_ptr<rapidjson::SchemaDocument>, std::less<>> schemas;
};

namespace {

constexpr std::string_view schema_suffix = ".schema.json";

// Resolves a "$ref" to another file of proto/ ("tx.event.v1.schema.json#"), building the
// referenced schema first. RapidJSON 1.1 hands over the part before '#' one character
// short, later versions whole: both name the same file.
class proto_refs : public rapidjson::IRemoteSchemaDocumentProvider {
public:
    proto_refs(std::map<std::string, rapidjson::Document>& sources,
               std::map<std::string, std::unique_ptr<rapidjson::SchemaDocument>, std::less<>>& built)
        : sources_(sources), built_(built) {}

    const rapidjson::SchemaDocument* build(const std::string& file) {
        if (auto it = built_.find(stem(file)); it != built_.end()) return it->second.get();
        auto src = sources_.find(file);
        if (src == sources_.end()) return nullptr;
        if (!building_.insert(file).second) throw std::runtime_error("schema " + file + " refers to itself");
        auto doc = std::make_unique<rapidjson::SchemaDocument>(src->second, this);
        building_.erase(file);
        return built_.emplace(stem(file), std::move(doc)).first->second.get();
    }

    const rapidjson::SchemaDocument* GetRemoteDocument(const char* uri, rapidjson::SizeType length) override {
        std::string_view given(uri, length);
        for (const auto& [file, doc] : sources_) {
            if (file.starts_with(given) && file.size() <= given.size() + 1) return build(file);
        }
        throw std::runtime_error("schema $ref to an unknown file: " + std::string(given));
    }

    static std::string stem(const std::string& file) { return file.substr(0, file.size() - schema_suffix.size()); }

private:
    std::map<std::string, rapidjson::Document>& sources_;
    std::map<std::string, std::unique_ptr<rapidjson::SchemaDocument>, std::less<>>& built_;
    std::set<std::string> building_;
};

}  // namespace

registry::registry(std::string proto_dir) : impl_(std::make_unique<impl>()) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(proto_dir)) throw std::runtime_error("schema directory not found: " + proto_dir);
    std::map<std::string, rapidjson::Document> sources;  // by file name
    for (const auto& entry : fs::directory_iterator(proto_dir)) {
        auto name = entry.path().filename().string();
        if (name.size() <= schema_suffix.size() || !name.ends_with(schema_suffix)) continue;
        std::ifstream in(entry.path());
        std::stringstream ss;
        ss << in.rdbuf();
        sources.emplace(name, json::parse(ss.str(), 64));
    }
    if (sources.empty()) throw std::runtime_error("no *.schema.json in " + proto_dir);
    proto_refs refs(sources, impl_->schemas);
    for (const auto& [file, doc] : sources) refs.build(file);
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
