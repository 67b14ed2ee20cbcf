// libs/db against the real PostgreSQL: migrations under an advisory lock (two processes at
// once), failure classification, and the pool.
#include "txp/db/db.hpp"
#include "txp/db/migrations.hpp"
#include "txp/testing/env.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
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
    // A write on a server that became a standby (the old primary after a failover).
    CHECK(db::classify_sqlstate("25006") == db::failure_kind::transient);

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

TEST_CASE("a pooled connection whose server went away is replaced, with its session set up again", "[db]") {
    // What a failover does to a pool: every connection to the old primary breaks. The pool must
    // open a new connection (with on_connect's settings; libpqxx 6 would otherwise reconnect by
    // itself without them), and the transaction that failed on the broken one is run again.
    db::pool_options o;
    o.url = testing::admin_database_url();
    o.size = 1;
    o.on_connect = [](pqxx::connection& c) {
        pqxx::nontransaction n(c);
        n.exec("SET statement_timeout = '12345ms'");
    };
    db::pool pool(o);
    int first_pid = 0;
    db::with_transaction(pool, [&](pqxx::work& w) { first_pid = w.exec("SELECT pg_backend_pid()")[0][0].as<int>(); });
    {
        pqxx::connection killer(testing::admin_database_url());
        pqxx::nontransaction n(killer);
        REQUIRE(n.exec_params("SELECT pg_terminate_backend($1)", first_pid)[0][0].as<bool>());
        // Until the backend has gone, the pooled connection could still answer.
        for (int i = 0; i < 100; ++i) {
            if (n.exec_params("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first_pid)[0][0].as<int>() == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    int runs = 0, pid = 0;
    std::string timeout;
    db::with_transaction(pool, [&](pqxx::work& w) {
        ++runs;
        auto r = w.exec("SELECT pg_backend_pid(), current_setting('statement_timeout')");
        pid = r[0][0].as<int>();
        timeout = r[0][1].as<std::string>();
    });
    CHECK(runs >= 1);
    CHECK(pid != first_pid);
    CHECK(timeout == "12345ms");
}

TEST_CASE("a write refused by a server that is a standby now is retried on a new connection", "[db]") {
    // After a failover the old primary may come back as a standby: a connection to it answers
    // writes with 25006 (read_only_sql_transaction). That is transient (the new primary takes
    // them), and the connection is not reused: each attempt gets a new one. A session that is
    // read-only by default stands in for the standby.
    db::pool_options o;
    o.url = testing::admin_database_url();
    o.size = 1;
    o.on_connect = [](pqxx::connection& c) {
        pqxx::nontransaction n(c);
        n.exec("SET default_transaction_read_only = on");
    };
    db::pool pool(o);
    std::set<int> pids;
    int runs = 0;
    const std::string table = "ro_" + testing::unique_suffix();
    try {
        db::with_transaction(
            pool,
            [&](pqxx::work& w) {
                ++runs;
                pids.insert(w.exec("SELECT pg_backend_pid()")[0][0].as<int>());
                w.exec("CREATE TABLE " + w.quote_name(table) + " (i int)");
            },
            db::retry_options{.attempts = 3, .first_backoff = std::chrono::milliseconds(1)});
        FAIL("a read-only session wrote");
    } catch (const db::db_error& e) {
        CHECK(e.kind() == db::failure_kind::transient);
        CHECK(e.sqlstate() == "25006");
    }
    CHECK(runs == 3);
    CHECK(pids.size() == 3);
}
