// Validation of messages against their JSON Schemas (draft-04) in proto/.
#pragma once

#include <rapidjson/document.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace txp::schema {

// Loads every proto/*.schema.json once; a schema is named by its file stem, which is the
// AMQP `type` of the message ("ledger.transaction.v1").
class registry {
public:
    explicit registry(std::string proto_dir);
    ~registry();
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    bool knows(std::string_view type) const;
    // nullopt when valid; otherwise a one-line reason naming the failing part.
    std::optional<std::string> validate(std::string_view type, const rapidjson::Value& doc) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// TXP_PROTO_DIR, else the source tree's proto/ (for binaries run from the build tree).
std::string default_proto_dir();

// The process-wide registry over default_proto_dir(), loaded on first use.
const registry& global();

}  // namespace txp::schema
