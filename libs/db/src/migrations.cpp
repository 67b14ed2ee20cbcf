// Versioned per-schema migrations under an advisory lock.
#include "txp/db/migrations.hpp"

#include "txp/common/config.hpp"
#include "txp/common/log.hpp"
#include "txp/db/db.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace txp::db {

namespace {

std::string sha256_hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

}  // namespace

std::vector<migration> load_migrations(const std::string& dir, const std::string& schema) {
    namespace fs = std::filesystem;
    fs::path root = fs::path(dir) / schema;
    if (!fs::is_directory(root)) throw std::runtime_error("migrations directory not found: " + root.string());
    static const std::regex name_re(R"(^(\d{4})_([a-z0-9_]+)\.sql$)");
    std::vector<migration> out;
    std::set<int> seen;
    for (const auto& entry : fs::directory_iterator(root)) {
        auto name = entry.path().filename().string();
        std::smatch m;
        if (!std::regex_match(name, m, name_re)) {
            throw std::runtime_error("migration file name must be NNNN_name.sql: " + entry.path().string());
        }
        int version = std::stoi(m[1]);
        if (!seen.insert(version).second) throw std::runtime_error("duplicate migration version in " + root.string());
        std::ifstream in(entry.path());
        std::stringstream ss;
        ss << in.rdbuf();
        migration mg{version, m[2], ss.str(), ""};
        mg.checksum = sha256_hex(mg.sql);
        out.push_back(std::move(mg));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
    return out;
}

int migrate(pqxx::connection& c, const std::string& schema, const std::vector<migration>& ms) {
    const std::string lock_key = "txp.migrate." + schema;
    {
        pqxx::nontransaction n(c);
        n.exec("SELECT pg_advisory_lock(hashtext(" + n.quote(lock_key) + "))");
    }
    int applied = 0;
    try {
        {
            pqxx::work w(c);
            w.exec("CREATE TABLE IF NOT EXISTS " + w.quote_name(schema) +
                   ".schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
                   "applied_at timestamptz NOT NULL DEFAULT now())");
            w.commit();
        }
        std::map<int, std::string> done;
        {
            pqxx::read_transaction r(c);
            for (const auto& row : r.exec("SELECT version, checksum FROM " + r.quote_name(schema) + ".schema_migrations")) {
                done.emplace(row[0].as<int>(), row[1].as<std::string>());
            }
        }
        for (const auto& m : ms) {
            auto it = done.find(m.version);
            if (it != done.end()) {
                if (it->second != m.checksum) {
                    throw std::runtime_error("migration " + schema + "/" + std::to_string(m.version) + "_" + m.name +
                                             " was changed after it was applied (checksum differs)");
                }
                continue;
            }
            pqxx::work w(c);
            w.exec("SET LOCAL search_path TO " + w.quote_name(schema) + ", public");
            w.exec(m.sql);
            w.exec("INSERT INTO " + w.quote_name(schema) + ".schema_migrations (version, name, checksum) VALUES (" +
                   w.quote(m.version) + ", " + w.quote(m.name) + ", " + w.quote(m.checksum) + ")");
            w.commit();
            ++applied;
            log::info("migration applied", {{"schema", schema}, {"version", m.version}, {"name", m.name}});
        }
    } catch (...) {
        try {
            pqxx::nontransaction n(c);
            n.exec("SELECT pg_advisory_unlock(hashtext(" + n.quote(lock_key) + "))");
        } catch (...) {
        }
        throw;
    }
    pqxx::nontransaction n(c);
    n.exec("SELECT pg_advisory_unlock(hashtext(" + n.quote(lock_key) + "))");
    return applied;
}

int migrate_schema(pool& p, const std::string& schema) {
    auto l = p.acquire();
    return migrate(*l, schema, load_migrations(default_migrations_dir(), schema));
}

std::string default_migrations_dir() {
    if (auto v = config::get("TXP_MIGRATIONS_DIR")) return *v;
    return TXP_DEFAULT_MIGRATIONS_DIR;
}

}  // namespace txp::db
