// libs/db against the real PostgreSQL: migrations under an advisory lock (two processes at
// once), failure classification, and the pool.
#include "txp/db/db.hpp"
#include "txp/db/migrations.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace txp;

namespace {

std::string make_migrations(const std::string& schema) {
    namespace fs = std::filesystem;
    auto dir = fs::temp_directory_path() / ("txp-mig-" + testing::unique_suffix());
    fs::create_directories(dir / schema);
    std::ofstream(dir / schema / "0001_accounts.sql")
        << "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);\n"
           "SELECT pg_sleep(0.3);\n";  // widen the window in which a second migrator could interfere
    std::ofstream(dir / schema / "0002_seed.sql") << "INSERT INTO accounts VALUES (1, 'first');\n";
    std::ofstream(dir / schema / "0003_column.sql") << "ALTER TABLE accounts ADD COLUMN note text;\n";
    return dir.string();
}

}  // namespace

TEST_CASE("two processes migrating at once end with one correct schema", "[db][migrations]") {
    const std::string schema = "mig_" + testing::unique_suffix();
    {
        pqxx::connection c(testing::admin_database_url());
        pqxx::work w(c);
        w.exec("CREATE SCHEMA " + w.quote_name(schema));
        w.commit();
    }
    auto dir = make_migrations(schema);
    auto ms = db::load_migrations(dir, schema);
    REQUIRE(ms.size() == 3);

    std::vector<pid_t> kids;
    for (int k = 0; k < 2; ++k) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int rc = 0;
            try {
                pqxx::connection c(testing::admin_database_url());
                db::migrate(c, schema, ms);
            } catch (...) {
                rc = 1;
            }
            ::_exit(rc);
        }
        kids.push_back(pid);
    }
    for (auto pid : kids) {
        int st = 0;
        ::waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st));
        CHECK(WEXITSTATUS(st) == 0);
    }
    pqxx::connection c(testing::admin_database_url());
    pqxx::read_transaction r(c);
    CHECK(r.exec("SELECT version FROM " + r.quote_name(schema) + ".schema_migrations ORDER BY version").size() == 3);
    auto rows = r.exec("SELECT id, name, note FROM " + r.quote_name(schema) + ".accounts");
    REQUIRE(rows.size() == 1);  // the seed ran once
    CHECK(rows[0][1].as<std::string>() == "first");
}

TEST_CASE("an applied migration that was edited is refused", "[db][migrations]") {
    const std::string schema = "mig_" + testing::unique_suffix();
    pqxx::connection c(testing::admin_database_url());
    {
        pqxx::work w(c);
        w.exec("CREATE SCHEMA " + w.quote_name(schema));
        w.commit();
    }
    auto dir = make_migrations(schema);
    auto ms = db::load_migrations(dir, schema);
    CHECK(db::migrate(c, schema, ms) == 3);
    CHECK(db::migrate(c, schema, ms) == 0);  // idempotent
    ms[1].sql += "\n-- edited";
    ms[1].checksum = "different";
    CHECK_THROWS_WITH(db::migrate(c, schema, ms), Catch::Contains("changed after it was applied"));
}

TEST_CASE("failures are classified as transient or permanent", "[db]") {
    db::pool_options o;
    o.url = testing::admin_database_url();
    o.size = 2;
    db::pool pool(o);
    REQUIRE(pool.ping());

    // A permanent failure (syntax) is not retried.
    int runs = 0;
    try {
        db::with_transaction(pool, [&](pqxx::work& w) {
            ++runs;
            w.exec("SELEC 1");
        });
        FAIL("no exception");
    } catch (const db::db_error& e) {
        CHECK(e.kind() == db::failure_kind::permanent);
    }
    CHECK(runs == 1);

    // A serialization failure is transient and retried until it succeeds.
    runs = 0;
    db::with_transaction(pool, [&](pqxx::work& w) {
        ++runs;
        if (runs < 3) w.exec("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$");
    });
    CHECK(runs == 3);

    CHECK(db::classify_sqlstate("40P01") == db::failure_kind::transient);
    CHECK(db::classify_sqlstate("08006") == db::failure_kind::transient);
    CHECK(db::classify_sqlstate("23505") == db::failure_kind::permanent);
    CHECK(db::classify_sqlstate("22003") == db::failure_kind::permanent);

    // Nobody listening: a transient failure when connecting.
    db::pool_options bad;
    bad.url = "postgresql://nobody:x@127.0.0.1:1/none";
    bad.acquire_timeout = std::chrono::milliseconds(500);
    db::pool dead(bad);
    CHECK_FALSE(dead.ping());
    try {
        dead.acquire();
        FAIL("connected to nothing");
    } catch (const db::db_error& e) {
        CHECK(e.kind() == db::failure_kind::transient);
        CHECK(std::string(e.what()).find(":x@") == std::string::npos);  // no password in messages
    }
}

TEST_CASE("array literals quote what they must", "[db]") {
    pqxx::connection c(testing::admin_database_url());
    pqxx::work w(c);
    std::vector<std::optional<std::string>> v{std::string("a\"b"), std::nullopt, std::string("c\\d,e}")};
    auto r = w.exec_params("SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n) ORDER BY n", db::array_literal(v));
    REQUIRE(r.size() == 3);
    CHECK(r[0][0].as<std::string>() == "a\"b");
    CHECK(r[1][0].is_null());
    CHECK(r[2][0].as<std::string>() == "c\\d,e}");
}

TEST_CASE("connections name themselves in pg_stat_activity, also on a URL with parameters", "[db]") {
    for (const std::string& extra : {std::string(), std::string("?sslmode=disable")}) {
        INFO(extra);
        auto url = testing::admin_database_url() + extra;
        pqxx::connection c(db::connection_url(url, "txp-test-named"));
        pqxx::nontransaction n(c);
        CHECK(n.exec("SELECT current_setting('application_name')")[0][0].as<std::string>() == "txp-test-named");
    }
}
