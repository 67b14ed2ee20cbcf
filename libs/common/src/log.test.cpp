// Log lines are valid JSON carrying service, replica and the handled message's ids.
#include "txp/common/log.hpp"

#include "txp/common/json.hpp"

#include <catch2/catch.hpp>

using namespace txp;

TEST_CASE("JSON lines carry service, replica, ids and escaped fields", "[log]") {
    log::init("ledger-worker", "w-2", log::level::debug, log::format::json);
    std::string line;
    {
        log::scope s("msg-1", "req-9");
        line = log::render(log::format::json, log::level::info, "applied \"tx\"\n", {{"amount", 1250}, {"ok", true}, {"who", "a\tb"}});
    }
    auto doc = json::parse(line);
    CHECK(std::string(doc["service"].GetString()) == "ledger-worker");
    CHECK(std::string(doc["replica"].GetString()) == "w-2");
    CHECK(std::string(doc["level"].GetString()) == "info");
    CHECK(std::string(doc["msg"].GetString()) == "applied \"tx\"\n");
    CHECK(std::string(doc["message_id"].GetString()) == "msg-1");
    CHECK(std::string(doc["correlation_id"].GetString()) == "req-9");
    CHECK(doc["amount"].GetInt64() == 1250);
    CHECK(doc["ok"].GetBool());
    CHECK(std::string(doc["who"].GetString()) == "a\tb");
    CHECK(std::string(doc["ts"].GetString()).size() == 24);

    // Outside the scope the ids are gone.
    auto after = json::parse(log::render(log::format::json, log::level::warn, "x", {}));
    CHECK_FALSE(after.HasMember("message_id"));
}

TEST_CASE("text lines are readable", "[log]") {
    log::init("gateway", "g1", log::level::info, log::format::text);
    auto line = log::render(log::format::text, log::level::error, "refused", {{"status", 409}});
    CHECK(line.find("gateway/g1") != std::string::npos);
    CHECK(line.find("refused status=409") != std::string::npos);
    CHECK_FALSE(log::enabled(log::level::debug));
}
