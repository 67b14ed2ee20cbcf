#!/usr/bin/env bash
# api-gateway benchmark, run by scripts/bench (which exports TXP_TEST_* for its own database
# and vhost): one gateway process, one user, wrk with 64 connections and 2 threads against
#   POST /v1/transactions (unique Idempotency-Key per request)  and  GET /v1/wallets/{id}.
# Prints accepted/s, latency p50/p90/p99, non-2xx, GET rps, the gateway's peak RSS (VmHWM),
# and how long the outbox relay took to publish the backlog.
# No ledger-worker runs: acceptance is what is measured. The published commands are purged.
# Usage: gateway_bench.sh BIN_DIR [SECONDS]   (BIN_DIR holds services/api-gateway/api-gateway)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
secs="${2:-20}"
: "${TXP_TEST_GATEWAY_DATABASE_URL:?}" "${TXP_TEST_LEDGER_DATABASE_URL:?}" "${TXP_TEST_AMQP_URL:?}" "${TXP_TEST_VHOST:?}"
gw="$bin/services/api-gateway/api-gateway"
worker="$bin/services/ledger-worker/ledger-worker"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
logdir="$(mktemp -d /tmp/txp-gateway-bench.XXXXXX)"

TXP_DATABASE_URL="$TXP_TEST_LEDGER_DATABASE_URL" TXP_AMQP_URL="$TXP_TEST_AMQP_URL" "$worker" migrate >/dev/null

TXP_DATABASE_URL="$TXP_TEST_GATEWAY_DATABASE_URL" TXP_AMQP_URL="$TXP_TEST_AMQP_URL" TXP_HTTP_PORT="$port" \
  TXP_RATE_LIMIT_RPS=0 TXP_LOGIN_RATE_PER_MIN=0 TXP_LOG_FORMAT=json TXP_REPLICA_ID=gw-bench \
  "$gw" >"$logdir/api-gateway.log" 2>&1 &
gw_pid=$!
stop_gateway() {
  kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
  curl -sf -u guest:guest -X DELETE "http://127.0.0.1:15672/api/queues/$TXP_TEST_VHOST/ledger.transactions/contents" >/dev/null || true
}
trap stop_gateway EXIT
for _ in $(seq 1 100); do
  curl -sf "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$logdir/api-gateway.log"; exit 1; }
  sleep 0.1
done

user="bench_$RANDOM$RANDOM"
reg="$(curl -sf -X POST "$base/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"bench-password\",\"password_confirm\":\"bench-password\"}")"
export TXP_BENCH_WALLET="$(jq -r .wallet.id <<<"$reg")"
export TXP_BENCH_TOKEN="$(curl -sf -X POST "$base/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"bench-password\"}" | jq -r .token)"

vm() { awk -v k="$1:" '$1 == k {print int($2 / 1024)}' "/proc/$gw_pid/status"; }
field() { sed -n "s/.*[ ]$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
outbox_pending() {
  psql "$TXP_TEST_GATEWAY_DATABASE_URL" -tAc "SELECT count(*) FROM gateway.outbox WHERE sent_at IS NULL"
}

echo "gateway: pid $gw_pid, $(nproc) cores shared with PostgreSQL, RabbitMQ and wrk; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-up: connections, prepared statements, caches.
wrk -t2 -c64 -d3s -s "$here/gateway_post.lua" "$base" >/dev/null
wrk -t2 -c64 -d2s -s "$here/gateway_get.lua" "$base" >/dev/null

before="$(psql "$TXP_TEST_LEDGER_DATABASE_URL" -tAc "SELECT count(*) FROM ledger.transactions")"
post="$(wrk -t2 -c64 -d"${secs}s" --latency -s "$here/gateway_post.lua" "$base" | grep '^RESULT')"
after_post="$(date +%s.%N)"
after="$(psql "$TXP_TEST_LEDGER_DATABASE_URL" -tAc "SELECT count(*) FROM ledger.transactions")"
pending="$(outbox_pending)"
while [ "$(outbox_pending)" != 0 ]; do sleep 0.2; done
drained="$(python3 -c "import time; print(round(time.time() - $after_post, 1))")"
n="$(field requests "$post")"
us="$(field duration_us "$post")"
printf 'POST /v1/transactions  %6d accepted/s  p50 %s ms  p90 %s ms  p99 %s ms  max %s ms  non-2xx %s  socket errors %s\n' \
  "$(( n * 1000000 / us ))" "$(field p50_ms "$post")" "$(field p90_ms "$post")" "$(field p99_ms "$post")" \
  "$(field max_ms "$post")" "$(field non2xx "$post")" "$(field socket_errors "$post")"
printf '                        %d requests, %d new ledger transactions; outbox: %s pending at the end, all published %ss later\n' \
  "$n" "$(( after - before ))" "$pending" "$drained"

# The same over 64 users' wallets (each request to the next user in turn).
users_file="$logdir/users.txt"
for i in $(seq 1 64); do
  u="${user}_$i"
  r="$(curl -sf -X POST "$base/v1/auth/register" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$u\",\"email\":\"$u@example.com\",\"password\":\"bench-password\",\"password_confirm\":\"bench-password\"}")"
  t="$(curl -sf -X POST "$base/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$u\",\"password\":\"bench-password\"}" | jq -r .token)"
  echo "$(jq -r .wallet.id <<<"$r") $t" >>"$users_file"
done
post="$(TXP_BENCH_USERS="$users_file" wrk -t2 -c64 -d"${secs}s" --latency -s "$here/gateway_post.lua" "$base" | grep '^RESULT')"
n="$(field requests "$post")"
us="$(field duration_us "$post")"
printf 'POST, 64 users/wallets %6d accepted/s  p50 %s ms  p90 %s ms  p99 %s ms  max %s ms  non-2xx %s  socket errors %s\n' \
  "$(( n * 1000000 / us ))" "$(field p50_ms "$post")" "$(field p90_ms "$post")" "$(field p99_ms "$post")" \
  "$(field max_ms "$post")" "$(field non2xx "$post")" "$(field socket_errors "$post")"
while [ "$(outbox_pending)" != 0 ]; do sleep 0.2; done

get="$(wrk -t2 -c64 -d"${secs}s" --latency -s "$here/gateway_get.lua" "$base" | grep '^RESULT')"
n="$(field requests "$get")"
us="$(field duration_us "$get")"
printf 'GET /v1/wallets/{id}   %6d requests/s  p50 %s ms  p90 %s ms  p99 %s ms  max %s ms  non-2xx %s  socket errors %s\n' \
  "$(( n * 1000000 / us ))" "$(field p50_ms "$get")" "$(field p90_ms "$get")" "$(field p99_ms "$get")" \
  "$(field max_ms "$get")" "$(field non2xx "$get")" "$(field socket_errors "$get")"
groups="$(curl -sf "$base/metrics" | awk '$1 == "txp_gateway_accept_groups_total" {g=$2} $1 == "txp_gateway_accept_group_requests_total" {r=$2} END {if (g > 0) printf "%.1f", r / g}')"
printf 'gateway peak RSS (VmHWM) %s MB, threads %s, requests per acceptance commit %s; load average %s\n' \
  "$(vm VmHWM)" "$(awk '$1 == "Threads:" {print $2}' "/proc/$gw_pid/status")" "$groups" "$(cut -d' ' -f1-3 /proc/loadavg)"
