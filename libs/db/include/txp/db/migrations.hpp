// Versioned SQL migrations per schema, applied under a PostgreSQL advisory lock so that
// replicas starting at once are safe: files deploy/migrations/<schema>/NNNN_name.sql.
#pragma once

#include <pqxx/pqxx>

#include <string>
#include <vector>

namespace txp::db {

struct migration {
    int version;
    std::string name;
    std::string sql;
    std::string checksum;  // sha256 hex of sql
};

// Reads <dir>/<schema>/NNNN_*.sql sorted by version; throws on duplicates or bad names.
std::vector<migration> load_migrations(const std::string& dir, const std::string& schema);

// Applies the missing migrations of `schema` in order, each in its own transaction,
// recording them in <schema>.schema_migrations. An applied migration whose file changed
// is an error (its checksum no longer matches). Returns how many were applied.
int migrate(pqxx::connection& c, const std::string& schema, const std::vector<migration>& ms);

// Applies the migrations of `schema` found in default_migrations_dir() on a pooled connection.
class pool;
int migrate_schema(pool& p, const std::string& schema);

// TXP_MIGRATIONS_DIR, else the source tree's deploy/migrations.
std::string default_migrations_dir();

}  // namespace txp::db
