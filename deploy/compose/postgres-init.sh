#!/usr/bin/env bash
# First start of the compose PostgreSQL (run once from /docker-entrypoint-initdb.d on an
# empty data volume): txp's login roles, its database owned by txp_admin, and one schema per
# service. Same SQL as scripts/lib/infra.sh runs on a host: deploy/postgres/roles.sql and
# schemas.sql, mounted at /etc/txp/postgres.
set -euo pipefail

db="${TXP_DB_NAME:-txp}"
password="${TXP_DB_PASSWORD:?TXP_DB_PASSWORD must be set}"
sql_dir="${TXP_SQL_DIR:-/etc/txp/postgres}"
export PGOPTIONS="-c client_min_messages=warning"
psql=(psql -X -q -v ON_ERROR_STOP=1 --no-password --username "${POSTGRES_USER:-postgres}")

"${psql[@]}" --dbname postgres -v dbname="$db" -v password="$password" -f "$sql_dir/roles.sql" >/dev/null
"${psql[@]}" --dbname postgres -v db="$db" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I OWNER txp_admin', :'db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
"${psql[@]}" --dbname "$db" -f "$sql_dir/schemas.sql" >/dev/null
# txp's server settings (deploy/postgres/txp.conf, shared_buffers sized to the container by
# txp-conf.sh), read from the next start on: the image's entrypoint restarts the server after
# these scripts. A data volume initialised before keeps its settings. Under Patroni
# (docker-compose.ha.yml, TXP_PG_CONF=false) the settings are Patroni's parameters instead.
if [ "${TXP_PG_CONF:-true}" = true ] && [ -n "${PGDATA:-}" ] && [ -f "$sql_dir/txp-conf.sh" ] && ! grep -q "txp.conf" "$PGDATA/postgresql.conf"; then
  bash "$sql_dir/txp-conf.sh" >"$PGDATA/txp.conf"
  echo "include_if_exists = 'txp.conf'" >>"$PGDATA/postgresql.conf"
fi
echo "txp: roles, database \"$db\" and service schemas ready"
