#!/usr/bin/env bash
# The HA topology under load and two faults (scripts/lib/ha.sh, on private ports): a RabbitMQ
# cluster of 3 nodes with quorum queues and PostgreSQL as a Patroni primary with a synchronous
# standby. While gen_transactions posts money at a steady rate through the gateway, RabbitMQ's
# first node (the one every service connects to first, and where the queues' leaders were
# declared) is killed with kill -9 and later started again, then the PostgreSQL primary
# (Patroni and its PostgreSQL, kill -9). Afterwards:
#  - every transaction the client saw accepted (202) is final (gen_transactions --wait: a 202
#    lost with the primary would be a 404, never final);
#  - every transaction in the database is final, exactly once: a completed one has exactly
#    its two entries, others none; nothing failed (parked);
#  - the accounting feed has each outcome once ((event_id, leg) is unique) and none missing;
#  - reconcile finds the ledger consistent.
# It prints how long after each fault the system accepted and completed transactions again.
#   ha_failover_test.sh BUILD_DIR
# Exit 77 (skipped) when not root (the PostgreSQL members run as the postgres user) or when
# Patroni or etcd is not installed (scripts/setup --ha installs them).
set -euo pipefail
build="$(cd "${1:?usage: ha_failover_test.sh BUILD_DIR}" && pwd)"
export TXP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$TXP_ROOT"
if [ "$(id -u)" -ne 0 ]; then echo "skipped: needs root (runs PostgreSQL members as the postgres user)"; exit 77; fi
for tool in patroni etcd; do
  command -v "$tool" >/dev/null || { echo "skipped: $tool is not installed (scripts/setup --ha)"; exit 77; }
done
source scripts/lib/infra.sh
source scripts/lib/services.sh
source scripts/lib/ha.sh

# Ports of their own, apart from scripts/demo --ha's defaults.
rabbit_port="${TXP_HA_TEST_RABBIT_PORT:-5711}"
pg_port="${TXP_HA_TEST_PG_PORT:-5451}"
gw_port="${TXP_HA_TEST_GATEWAY_PORT:-18200}"
duration="${TXP_HA_TEST_DURATION:-100}"
rate="${TXP_HA_TEST_RATE:-100}"

work="$(mktemp -d /tmp/txp-ha-test.XXXXXX)"
chmod 755 "$work"
run_dir="$work/run"; mkdir -p "$run_dir/logs" "$run_dir/pids"
bin="$build"; db=txp_ha
gen_pid=""
cleanup() {
  [ -n "$gen_pid" ] && kill "$gen_pid" 2>/dev/null || true
  stop_services
  ha_pg_stop
  ha_rabbit_stop
  if [ "${status:-1}" -ne 0 ]; then
    echo "--- logs kept in $work (services: $run_dir/logs)"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
status=1
now() { date +%s.%N; }
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
failures=0

ha_rabbit_start "$work/rabbit" "$rabbit_port" 3
ha_pg_start "$work/pg" "$pg_port" 2
ha_use
export TXP_QUEUE_TYPE=quorum
bootstrap_database "$db"
bootstrap_vhost /

export TXP_LOG_FORMAT=text TXP_LOG_LEVEL=info TXP_MIGRATE=true
export TXP_AMQP_URL="$(amqp_url /)"
export TXP_RATE_LIMIT_RPS=100000 TXP_LOGIN_RATE_PER_MIN=100000 TXP_WEBHOOK_ALLOW=127.0.0.0/8
export TXP_WEBHOOK_SECRET_KEY="ZGVtby13ZWJob29rLWtleS0wMTIzNDU2Nzg5YWJjZGU="
TXP_DATABASE_URL="$(db_url txp_ledger "$db")" "$bin/services/ledger-worker/ledger-worker" seed-demo >/dev/null
TXP_DATABASE_URL="$(db_url txp_gateway "$db")" "$bin/services/api-gateway/api-gateway" seed-demo >/dev/null
TXP_HTTP_PORT="$gw_port" start_service api-gateway txp_gateway "$bin/services/api-gateway/api-gateway"
TXP_HTTP_PORT=$((gw_port + 4)) start_service notifier txp_notify "$bin/services/notifier/notifier"
# The workers connect to nodes 2 and 3 first: when node 1 (where the queues' leaders are) is
# killed, their consumers stay connected while ledger.transactions elects a new leader; the
# gateway and the notifier, on node 1, move to another node.
for i in 1 2; do
  TXP_AMQP_URL="$(ha_rabbit_urls / $((i + 1)))" TXP_HTTP_PORT=$((gw_port + 10 + i)) \
    start_service "ledger-worker-$i" txp_ledger "$bin/services/ledger-worker/ledger-worker"
done
wait_ready api-gateway "$gw_port"
wait_ready notifier $((gw_port + 4))
for i in 1 2; do wait_ready "ledger-worker-$i" $((gw_port + 10 + i)); done

leaders=$(ha_rabbitmqctl 1 -q list_queues -p / name leader --formatter json | jq -r '.[] | select(.name == "ledger.transactions") | .leader')
log "ledger.transactions' leader: $leaders"

# The load: a steady rate over the 5 demo wallets, every accepted transaction read back at the end.
log "load: $rate transactions/s for $duration s"
"$bin/services/gen-transactions/gen_transactions" 0 --duration "$duration" --rate "$rate" --concurrency 16 \
  --gateway "http://127.0.0.1:$gw_port" --missing-wallet 0 --wait --wait-timeout 240 --json --no-progress \
  >"$work/gen.json" 2>"$work/gen.err" &
gen_pid=$!

sleep 10
log "fault 1: kill -9 of RabbitMQ node 1 ($(ha_rabbit_node_name 1))"
t_rabbit=$(now)
ha_rabbit_kill 1
sleep 12
log "RabbitMQ node 1 starting again"
ha_rabbit_start_node 1
ha_rabbit_await 1 120 || fail "RabbitMQ node 1 did not rejoin"
sleep 5
primary=$(ha_pg_primary)
log "fault 2: kill -9 of the PostgreSQL primary $primary (Patroni and PostgreSQL)"
t_pg=$(now)
ha_pg_kill "$primary"
new_primary=$(ha_pg_wait_primary "$primary" 120) || fail "no new PostgreSQL primary"
kill -0 "$gen_pid" 2>/dev/null || fail "the load ended before the new primary took over: raise TXP_HA_TEST_DURATION"
pg_promoted=$(echo "$(now) - $t_pg" | bc)
log "new primary: ${new_primary:-none}, $(printf '%.1f' "$pg_promoted") s after the kill"

gen_rc=0
wait "$gen_pid" || gen_rc=$?
gen_pid=""
cat "$work/gen.json"
[ "$gen_rc" -eq 0 ] || fail "gen_transactions exited $gen_rc (an accepted transaction not final?): $(tail -3 "$work/gen.err")"
accepted=$(jq -r '.accepted // 0' "$work/gen.json")
not_final=$(jq -r '.not_final // -1' "$work/gen.json")
[ "$not_final" = 0 ] || fail "$not_final transactions the client saw accepted are not final"
[ "${accepted:-0}" -gt 0 ] || fail "nothing was accepted"

# The workers' consumers stayed on their nodes through the leader change (generation 1).
for i in 1 2; do
  grep -q "amqp consumer subscribed.*queue=ledger.transactions.*generation=1" "$run_dir/logs/ledger-worker-$i.log" ||
    fail "ledger-worker-$i never subscribed"
  if grep -q "amqp consumer subscribed.*queue=ledger.transactions.*generation=2" "$run_dir/logs/ledger-worker-$i.log"; then
    log "note: ledger-worker-$i's consumer reconnected during the run (its node was not killed)"
  fi
done

q() { pg_admin_psql "$db" -XAtq -c "$1"; }
# Transactions accepted without the client hearing of it (a commit whose answer was lost in
# the failover) must end final too.
for _ in $(seq 1 240); do [ "$(q "SELECT count(*) FROM ledger.transactions WHERE status = 'queued'")" = 0 ] && break; sleep 0.5; done
queued=$(q "SELECT count(*) FROM ledger.transactions WHERE status = 'queued'")
[ "$queued" = 0 ] || fail "$queued transactions in the database are still queued"
# The demo wallets' opening deposits (origin seed) were applied by seed-demo, never announced.
in_db=$(q "SELECT count(*) FROM ledger.transactions WHERE origin <> 'seed'")
[ "$in_db" -ge "$accepted" ] || fail "the database has $in_db transactions, fewer than the $accepted accepted"
failed=$(q "SELECT count(*) FROM ledger.transactions WHERE status = 'failed'")
[ "$failed" = 0 ] || fail "$failed transactions failed (parked): $(q "SELECT string_agg(DISTINCT reason, ', ') FROM ledger.transactions WHERE status = 'failed'")"
doubled=$(q "SELECT count(*) FROM (SELECT t.id FROM ledger.transactions t LEFT JOIN ledger.entries e ON e.transaction_id = t.id
  GROUP BY t.id, t.status HAVING count(e.id) <> CASE WHEN t.status = 'completed' THEN 2 ELSE 0 END) x")
[ "$doubled" = 0 ] || fail "$doubled transactions have other than their entries (applied twice, or not at all)"
# An event whose recording met the failover goes through the notifier's retry tiers (1 s,
# 10 s, 60 s): the feed can lag the ledger by a minute and more.
missing_feed=""
for _ in $(seq 1 360); do
  missing_feed=$(q "SELECT count(*) FROM ledger.transactions t WHERE t.status <> 'queued' AND t.origin <> 'seed' AND NOT EXISTS
    (SELECT 1 FROM notify.notifications n WHERE n.event_id = t.id || ':' || t.status AND n.leg = 0)")
  [ "$missing_feed" = 0 ] && break
  sleep 0.5
done
[ "$missing_feed" = 0 ] || fail "$missing_feed outcomes are missing from the accounting feed"
TXP_DATABASE_URL="$(db_url txp_ledger "$db")" "$bin/services/ledger-worker/ledger-worker" reconcile ||
  fail "reconcile found the ledger inconsistent"

# How long each fault held the system up, from the transactions' own clock: the first
# acceptance (created_at) after the longest pause in acceptances that began within a second of
# the fault, and the same for outcomes (finished_at).
recovery() {  # fault_epoch label
  q "WITH a AS (SELECT created_at AS t, created_at - lag(created_at) OVER (ORDER BY created_at) AS pause
                  FROM ledger.transactions WHERE created_at > to_timestamp($1 - 60)),
          f AS (SELECT finished_at AS t, finished_at - lag(finished_at) OVER (ORDER BY finished_at) AS pause
                  FROM ledger.transactions WHERE finished_at > to_timestamp($1 - 60)),
          ap AS (SELECT t, pause FROM a WHERE t > to_timestamp($1) AND t - pause < to_timestamp($1 + 1)
                  ORDER BY pause DESC LIMIT 1),
          fp AS (SELECT t, pause FROM f WHERE t > to_timestamp($1) AND t - pause < to_timestamp($1 + 1)
                  ORDER BY pause DESC LIMIT 1)
     SELECT '$2: accepting again ' ||
            coalesce((SELECT round((extract(epoch FROM t) - $1)::numeric, 2) || ' s after it (longest pause ' ||
                             round(extract(epoch FROM pause)::numeric, 2) || ' s)' FROM ap), 'never') ||
            ', completing again ' ||
            coalesce((SELECT round((extract(epoch FROM t) - $1)::numeric, 2) || ' s after it (longest pause ' ||
                             round(extract(epoch FROM pause)::numeric, 2) || ' s)' FROM fp), 'never')"
}
after_pg=$(q "SELECT count(*) FROM ledger.transactions WHERE created_at > to_timestamp($t_pg + 1)")
[ "$after_pg" -gt 0 ] || fail "nothing was accepted after the PostgreSQL failover"
# Also kept in .run/ha-failover-last.txt: ctest shows a passing test's output only with -V.
mkdir -p "$TXP_ROOT/.run"
{
  echo "== recovery ($(date -u +%FT%TZ), $rate transactions/s)"
  recovery "$t_rabbit" "RabbitMQ node killed"
  recovery "$t_pg" "PostgreSQL primary killed"
  echo "PostgreSQL: new primary ${new_primary:-none} (Patroni) $(printf '%.1f' "$pg_promoted") s after the kill"
  echo "== $accepted accepted by the client, $in_db in the database, all final; during the faults (sent again with the same Idempotency-Key): $(jq -c '{unavailable, transport_errors, resent, refused}' "$work/gen.json")"
} | tee "$TXP_ROOT/.run/ha-failover-last.txt"

if [ "$failures" -eq 0 ]; then
  status=0
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed ($failures checks)"
fi
exit "$status"
