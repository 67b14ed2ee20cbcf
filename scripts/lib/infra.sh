# Shared by scripts/test, scripts/demo and scripts/bench: start PostgreSQL and RabbitMQ on
# loopback when they are not running, and bootstrap a database and a vhost for txp.
# Source it; it defines functions only.

TXP_ROOT="${TXP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-main}"
PG_PORT="${PG_PORT:-5432}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

start_postgres() {
  install_postgres_config
  reserve_huge_pages
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    # Settings a reload applies (autovacuum_naptime) take effect now; shared_buffers and
    # huge_pages wait for a restart.
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" reload >/dev/null 2>&1 || true
    local want have
    want=$(sed -n 's/^shared_buffers = //p' "/etc/postgresql/$PG_VERSION/$PG_CLUSTER/conf.d/txp.conf")
    have=$(as_postgres psql -XAtqc "SELECT setting::bigint * 8 / 1024 || 'MB' FROM pg_settings WHERE name = 'shared_buffers'" 2>/dev/null)
    [ -n "$have" ] && [ "$have" != "$want" ] &&
      log "PostgreSQL is running with shared_buffers $have, not txp's $want: restart it (pg_ctlcluster $PG_VERSION $PG_CLUSTER restart) to apply deploy/postgres/txp.conf"
    return 0
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
    log "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
  fi
  install_postgres_config
  log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT"
  pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return 0
    sleep 0.5
  done
  log "PostgreSQL did not become ready"; return 1
}

# With TXP_PG_HUGE_PAGES=1 (scripts/bench's default; off for demo and test): reserves enough
# huge pages for PostgreSQL's shared memory, machine-wide (vm.nr_hugepages, until reboot or set
# back), when running as root. txp.conf's huge_pages = try uses them from the server's next
# start and falls back to normal pages when there are too few. Reserved pages are memory no
# other program can use, hence opt-in.
reserve_huge_pages() {
  [ "${TXP_PG_HUGE_PAGES:-0}" = 1 ] || return 0
  local mb page_kb need have
  mb=$(bash "$TXP_ROOT/deploy/postgres/txp-conf.sh" | sed -n 's/^shared_buffers = \([0-9]*\)MB$/\1/p')
  page_kb=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
  if [ -z "$mb" ] || [ -z "$page_kb" ]; then
    log "huge pages: shared_buffers not in MB or no huge page support; PostgreSQL uses normal pages"; return 0
  fi
  need=$(( (mb * 1024 * 11 / 10 + 65536 + page_kb - 1) / page_kb ))  # the buffers, plus the rest of its shared memory
  have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
  [ "$have" -ge "$need" ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! { echo "$need" > /proc/sys/vm/nr_hugepages; } 2>/dev/null; then
    log "huge pages: cannot reserve $need (needs root and a writable /proc/sys/vm/nr_hugepages); PostgreSQL uses normal pages"
    return 0
  fi
  log "huge pages: $(cat /proc/sys/vm/nr_hugepages) of $((page_kb / 1024)) MB reserved for PostgreSQL (vm.nr_hugepages was $have)"
}

# True when some process (PostgreSQL, on a machine running txp) holds huge pages.
huge_pages_in_use() {
  awk '/^HugePages_Total:/ {t = $2} /^HugePages_Free:/ {f = $2} /^HugePages_Rsvd:/ {r = $2} END {exit !(t - f + r > 0)}' /proc/meminfo
}

# txp's server settings (deploy/postgres/txp.conf, shared_buffers sized by txp-conf.sh) into
# the cluster's conf.d, read when the server starts.
install_postgres_config() {
  local dir="/etc/postgresql/$PG_VERSION/$PG_CLUSTER/conf.d"
  [ -d "/etc/postgresql/$PG_VERSION/$PG_CLUSTER" ] || return 0  # no cluster yet: after pg_createcluster
  as_postgres mkdir -p "$dir"
  bash "$TXP_ROOT/deploy/postgres/txp-conf.sh" | as_postgres tee "$dir/txp.conf" >/dev/null
}

rabbit_running() { rabbitmqctl -q status >/dev/null 2>&1; }

start_rabbitmq() {
  if ! rabbit_running; then
    log "starting RabbitMQ (management console on 127.0.0.1:15672)"
    rabbitmq-plugins -q enable --offline rabbitmq_management >/dev/null
    # Loopback only: the node and the console listen on 127.0.0.1.
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    # Schedulers that sleep when idle instead of busy-waiting (+sbwt none): on a small
    # machine shared with PostgreSQL and the services, spinning schedulers take CPU the
    # others need.
    # On a machine of one or two cores, one Erlang scheduler (+S 1:1): with two, the
    # broker spends much of its CPU waking and locking between schedulers (futex,
    # sched_yield) while PostgreSQL and the services want the same two cores; measured
    # here, RabbitMQ's CPU per published message fell from 94 to 44 us and the gateway's
    # p99 from 26-30 to 17-19 ms. TXP_RABBITMQ_SCHEDULERS overrides (empty: Erlang's default,
    # one per core).
    local schedulers="${TXP_RABBITMQ_SCHEDULERS-$([ "$(nproc)" -le 2 ] && echo 1)}"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${schedulers:++S $schedulers:$schedulers }+sbwt none +sbwtdcpu none +sbwtdio none -rabbitmq_management tcp_config [{ip,\"127.0.0.1\"},{port,15672}]"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    # The node registers with epmd only after a few seconds (longer when it recovers many
    # queues); until then await_startup fails at once with "not running", so retry it.
    local deadline=$((SECONDS + 180))
    until rabbitmqctl -q await_startup --timeout 15 >/dev/null 2>&1; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "RabbitMQ did not start within 180 s; the end of its log:"
        tail -n 40 /var/log/rabbitmq/rabbit@"$(hostname -s)".log >&2 2>/dev/null || true
        return 1
      fi
      sleep 1
    done
  fi
  # When a node was already running without the console, turn it on.
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null && return 0
    sleep 0.5
  done
  log "RabbitMQ management API did not come up"; return 1
}

# pg_admin_psql DB ARGS...: psql as the server's superuser, on database DB (through the local
# socket as the postgres user; over TCP to the primary after ha_use).
pg_admin_psql() {
  local db="$1"; shift
  if [ -n "${PG_ADMIN_URL_BASE:-}" ]; then
    psql -X "$PG_ADMIN_URL_BASE/$db?target_session_attrs=read-write" "$@"
  else
    as_postgres psql -X -d "$db" "$@"
  fi
}

# bootstrap_database DBNAME: roles, database and per-service schemas (deploy/postgres/bootstrap.sql).
bootstrap_database() {
  local db="$1"
  pg_admin_psql postgres -q -v ON_ERROR_STOP=1 \
    -v dbname="$db" -v password="${TXP_DB_PASSWORD:-txp-dev-password}" \
    -f "$TXP_ROOT/deploy/postgres/roles.sql" >/dev/null
  if ! pg_admin_psql postgres -tAq -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    pg_admin_psql postgres -q -c "CREATE DATABASE \"$db\" OWNER txp_admin" >/dev/null
  fi
  PGOPTIONS="-c client_min_messages=warning" pg_admin_psql "$db" -q -v ON_ERROR_STOP=1 -f "$TXP_ROOT/deploy/postgres/schemas.sql" >/dev/null
}

drop_database() {
  pg_admin_psql postgres -q -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# rabbitmqctl of the broker in use (the machine's node, or the HA cluster after ha_use).
rmqctl() { "${RABBIT_CTL_FN:-rabbitmqctl}" "$@"; }

# The definitions file of the queue type in use (TXP_QUEUE_TYPE, quorum by default).
definitions_file() {
  case "${TXP_QUEUE_TYPE:-quorum}" in
    classic) echo "$TXP_ROOT/deploy/rabbitmq/definitions-classic.json" ;;
    *) echo "$TXP_ROOT/deploy/rabbitmq/definitions.json" ;;
  esac
}

# bootstrap_vhost NAME: a vhost with full permissions for guest and txp's broker policies.
# The services declare exchanges and queues themselves; policies cannot be set over AMQP, so
# they are applied here from the definitions file of the queue type in use (which
# docker-compose loads). txp policies that file does not have (txp-lazy-queues, on a vhost
# that had classic queues before) are cleared.
bootstrap_vhost() {
  rmqctl -q add_vhost "$1" >/dev/null 2>&1 || true
  rmqctl -q set_permissions -p "$1" guest ".*" ".*" ".*" >/dev/null
  local defs p name
  defs=$(definitions_file)
  while IFS= read -r p; do
    rmqctl -q set_policy -p "$1" --apply-to "$(jq -r '."apply-to"' <<<"$p")" \
      --priority "$(jq -r '.priority' <<<"$p")" "$(jq -r '.name' <<<"$p")" "$(jq -r '.pattern' <<<"$p")" \
      "$(jq -c '.definition' <<<"$p")" >/dev/null
  done < <(jq -c '.policies[]?' "$defs")
  while IFS= read -r name; do
    jq -e --arg n "$name" '[.policies[]?.name] | index($n)' "$defs" >/dev/null ||
      rmqctl -q clear_policy -p "$1" "$name" >/dev/null
  done < <(rmqctl -q list_policies -p "$1" --formatter json 2>/dev/null | jq -r '.[]? | .name | select(startswith("txp-"))')
}

drop_vhost() { rmqctl -q delete_vhost "$1" >/dev/null 2>&1 || true; }

# db_url ROLE DB: the TCP URL a service uses (every member of the HA cluster after ha_use:
# libpq tries them in turn and keeps the one that takes writes).
db_url() {
  printf 'postgresql://%s:%s@%s/%s%s' "$1" "${TXP_DB_PASSWORD:-txp-dev-password}" "${PG_HOSTS:-127.0.0.1:$PG_PORT}" "$2" "${PG_URL_PARAMS:-}"
}

# amqp_url VHOST (every node of the HA cluster, comma-separated, after ha_use)
amqp_url() {
  if [ -n "${AMQP_URL_FN:-}" ]; then "$AMQP_URL_FN" "$1"; return; fi
  local v="$1"; [ "$v" = "/" ] && v="%2f"
  printf 'amqp://guest:guest@127.0.0.1:5672/%s' "$v"
}

# The management API of the broker in use.
rabbit_api() { printf '%s' "${RABBIT_API:-http://guest:guest@127.0.0.1:15672/api}"; }

# build_txp PRESET [TARGET...]: configure (once) and build with 2 jobs; with targets, only
# those of them that exist in this checkout (the demo needs no test programs).
build_txp() {
  local preset="${1:-release}"; shift || true
  log "building ($preset preset, -j2)"
  cmake --preset "$preset" -S "$TXP_ROOT" >/dev/null
  if [ $# -eq 0 ]; then
    cmake --build --preset "$preset" -j 2
    return
  fi
  local known wanted=()
  known=$(ninja -C "$TXP_ROOT/build/$preset" -t targets all 2>/dev/null | cut -d: -f1)
  for t in "$@"; do grep -qx "$t" <<<"$known" && wanted+=("$t"); done
  cmake --build --preset "$preset" -j 2 --target "${wanted[@]}"
}
