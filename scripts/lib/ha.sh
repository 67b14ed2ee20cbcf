# The HA topology on loopback, for scripts/demo --ha, the HA failover test and scripts/chaos:
# a RabbitMQ cluster of 3 nodes (quorum queues replicate over it) and PostgreSQL as a primary
# with a synchronous standby, managed by Patroni with etcd as its consensus store. Every
# instance is private: its own ports, node names, Erlang cookie and directories under one
# base directory; nothing here touches the machine's shared PostgreSQL (5432) or RabbitMQ
# (5672/15672). Source it after infra.sh; it defines functions only.
#
#   ha_rabbit_start DIR [AMQP_PORT=5701] [NODES=3]   start (or join) the cluster; sets HA_RABBIT_*
#   ha_rabbit_kill N | ha_rabbit_start_node N        kill -9 node N / start it again (rejoins)
#   ha_rabbit_stop                                   stop every node and forget the cluster
#   ha_pg_start DIR [PG_PORT=5441] [NODES=2]         etcd + Patroni nodes; waits for a primary and
#                                                    a synchronous standby; sets HA_PG_*
#   ha_pg_primary / ha_pg_sync_standby               the member name (pg1, pg2) in that role
#   ha_pg_kill NAME | ha_pg_start_node NAME          kill -9 a member's Patroni and PostgreSQL / start it
#   ha_pg_wait_primary [NOT_NAME] [SECONDS]          wait until a primary (other than NOT_NAME) takes writes
#   ha_pg_stop                                       stop Patroni, PostgreSQL and etcd
#   ha_use                                           point infra.sh's helpers (db_url, amqp_url,
#                                                    bootstrap_*) at these instances
#
# Ports, from the given bases: RabbitMQ node i (1-based) AMQP base+i-1, management
# 10000+AMQP, Erlang distribution 20000+AMQP; PostgreSQL member i base+i-1, its Patroni REST
# API 3000+PG; etcd client 2379+... see ha_pg_start. The timings (Patroni's ttl 15 s,
# loop_wait 2 s, retry_timeout 6 s) are for loopback; TXP_HA_PATRONI_TTL changes the ttl.

HA_RABBIT_CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
HA_RABBIT_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
HA_PG_BIN="${HA_PG_BIN:-/usr/lib/postgresql/${PG_VERSION:-15}/bin}"

# --- RabbitMQ ---------------------------------------------------------------------------

ha_rabbit_node_name() { printf 'txpha%s-%s@localhost' "$1" "$HA_RABBIT_PORT"; }

# ha_rabbitmqctl N ARGS...: rabbitmqctl against node N, with the cluster's own cookie.
ha_rabbitmqctl() {
  local n="$1"; shift
  HOME="$HA_RABBIT_DIR" "$HA_RABBIT_CTL" -n "$(ha_rabbit_node_name "$n")" "$@"
}

# The cluster's configuration for node N: ports, loopback only, and classic peer discovery
# over every node (a node that finds none of the others running forms the cluster; the others
# join it). Written each time a node starts.
ha_rabbit_write_config() {
  local n="$1" d="$HA_RABBIT_DIR/node$1" i
  mkdir -p "$d/mnesia" "$d/log"
  {
    echo "listeners.tcp.1 = 127.0.0.1:$((HA_RABBIT_PORT + n - 1))"
    echo "management.tcp.ip = 127.0.0.1"
    echo "management.tcp.port = $((10000 + HA_RABBIT_PORT + n - 1))"
    echo "cluster_formation.peer_discovery_backend = classic_config"
    for i in $(seq 1 "$HA_RABBIT_NODES"); do
      echo "cluster_formation.classic_config.nodes.$i = $(ha_rabbit_node_name "$i")"
    done
    # A node that comes back after a kill -9 waits this long for the others before booting.
    echo "mnesia_table_loading_retry_timeout = 10000"
    echo "mnesia_table_loading_retry_limit = 30"
  } > "$d/rabbitmq.conf"
  echo '[rabbitmq_management].' > "$d/enabled_plugins"
}

ha_rabbit_start_node() {
  local n="$1" d="$HA_RABBIT_DIR/node$1"
  ha_rabbit_write_config "$n"
  local schedulers="${TXP_RABBITMQ_SCHEDULERS-$([ "$(nproc)" -le 2 ] && echo 1)}"
  (
    export HOME="$HA_RABBIT_DIR"
    export RABBITMQ_NODENAME="$(ha_rabbit_node_name "$n")"
    export RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$((HA_RABBIT_PORT + n - 1))
    export RABBITMQ_DIST_PORT=$((20000 + HA_RABBIT_PORT + n - 1))
    export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$d/mnesia"
    export RABBITMQ_LOG_BASE="$d/log"
    export RABBITMQ_PID_FILE="$d/pid"
    export RABBITMQ_CONF_ENV_FILE=/dev/null
    export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${schedulers:++S $schedulers:$schedulers }+sbwt none +sbwtdcpu none +sbwtdio none"
    setsid nohup "$HA_RABBIT_SERVER" >"$d/log/stdout.log" 2>&1 </dev/null &
  )
}

# ha_rabbit_await N [SECONDS=180]: until node N has booted (and joined the cluster).
ha_rabbit_await() {
  local n="$1" deadline=$((SECONDS + ${2:-180}))
  until ha_rabbitmqctl "$n" -q await_startup --timeout 10 >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "RabbitMQ node $(ha_rabbit_node_name "$n") did not start; the end of its log:"
      tail -n 30 "$HA_RABBIT_DIR/node$n/log/"*.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 1
  done
}

# The AMQP URLs of every node, comma-separated (TXP_AMQP_URL of the services), for VHOST,
# starting with node FIRST (default 1): services given different first nodes spread their
# connections over the cluster.
ha_rabbit_urls() {
  local v="${1:-/}" first="${2:-1}" i k out=""
  [ "$v" = "/" ] && v="%2f"
  for k in $(seq 0 $((HA_RABBIT_NODES - 1))); do
    i=$(( (first - 1 + k) % HA_RABBIT_NODES + 1 ))
    out="${out:+$out,}amqp://guest:guest@127.0.0.1:$((HA_RABBIT_PORT + i - 1))/$v"
  done
  printf '%s' "$out"
}

ha_rabbit_start() {
  HA_RABBIT_DIR="$1"; HA_RABBIT_PORT="${2:-5701}"; HA_RABBIT_NODES="${3:-3}"
  mkdir -p "$HA_RABBIT_DIR"
  # One cookie for the cluster's nodes and the CLI, of its own (not the shared node's).
  if [ ! -s "$HA_RABBIT_DIR/.erlang.cookie" ]; then
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$HA_RABBIT_DIR/.erlang.cookie"
    chmod 400 "$HA_RABBIT_DIR/.erlang.cookie"
  fi
  log "starting a RabbitMQ cluster of $HA_RABBIT_NODES nodes on 127.0.0.1:$HA_RABBIT_PORT-$((HA_RABBIT_PORT + HA_RABBIT_NODES - 1)) (management from $((10000 + HA_RABBIT_PORT))) in $HA_RABBIT_DIR"
  # The first node forms the cluster; the others find it through peer discovery and join.
  ha_rabbit_start_node 1
  ha_rabbit_await 1 || return 1
  local i
  for i in $(seq 2 "$HA_RABBIT_NODES"); do ha_rabbit_start_node "$i"; done
  for i in $(seq 2 "$HA_RABBIT_NODES"); do ha_rabbit_await "$i" || return 1; done
  local running
  running=$(ha_rabbitmqctl 1 -q cluster_status --formatter json 2>/dev/null | jq '.running_nodes | length')
  if [ "${running:-0}" -ne "$HA_RABBIT_NODES" ]; then
    log "RabbitMQ cluster: $running of $HA_RABBIT_NODES nodes running together"; return 1
  fi
  log "RabbitMQ cluster up: $HA_RABBIT_NODES nodes"
}

ha_rabbit_pid() { cat "$HA_RABBIT_DIR/node$1/pid" 2>/dev/null || true; }

# kill -9 of node N's Erlang VM (its epmd registration lapses with it).
ha_rabbit_kill() {
  local pid; pid=$(ha_rabbit_pid "$1")
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

ha_rabbit_stop() {
  [ -n "${HA_RABBIT_DIR:-}" ] || return 0
  local i pid
  for i in $(seq 1 "${HA_RABBIT_NODES:-3}"); do
    pid=$(ha_rabbit_pid "$i")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for i in $(seq 1 "${HA_RABBIT_NODES:-3}"); do
    pid=$(ha_rabbit_pid "$i")
    [ -n "$pid" ] || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  return 0
}

# --- PostgreSQL with Patroni and etcd --------------------------------------------------

# ha_pg_start DIR [PG_PORT=5441] [NODES=2]: etcd on PG_PORT-3000 (client) and -2999 (peer),
# and NODES Patroni members pg1..pgN on PG_PORT.. (REST API on PG+3000..). The first member
# initialises the cluster (initdb, txp's settings, the replication and rewind users); the
# others clone it with pg_basebackup. Synchronous mode: a commit returns once the synchronous
# standby has it, and Patroni promotes only that standby.
ha_pg_start() {
  HA_PG_DIR="$1"; HA_PG_PORT="${2:-5441}"; HA_PG_NODES="${3:-2}"
  HA_ETCD_PORT=$((HA_PG_PORT - 3000))
  HA_PG_PASSWORD="${HA_PG_PASSWORD:-txp-ha-superuser}"
  mkdir -p "$HA_PG_DIR/etcd"
  chown postgres: "$HA_PG_DIR"
  log "starting etcd on 127.0.0.1:$HA_ETCD_PORT and $HA_PG_NODES Patroni members (PostgreSQL from 127.0.0.1:$HA_PG_PORT) in $HA_PG_DIR"
  setsid nohup etcd --name txpha --data-dir "$HA_PG_DIR/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$HA_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$HA_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((HA_ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((HA_ETCD_PORT + 1))" \
    --initial-cluster "txpha=http://127.0.0.1:$((HA_ETCD_PORT + 1))" --initial-cluster-token "txpha-$HA_PG_PORT" \
    --listen-metrics-urls "" >"$HA_PG_DIR/etcd/etcd.log" 2>&1 </dev/null &
  echo $! > "$HA_PG_DIR/etcd/pid"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$HA_ETCD_PORT/health" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$HA_ETCD_PORT/health" >/dev/null || { log "etcd did not start"; tail -20 "$HA_PG_DIR/etcd/etcd.log" >&2; return 1; }
  local i
  for i in $(seq 1 "$HA_PG_NODES"); do ha_pg_write_config "pg$i" $((HA_PG_PORT + i - 1)); done
  ha_pg_start_node pg1
  ha_pg_wait_primary "" 120 >/dev/null || { log "Patroni: no primary"; tail -30 "$HA_PG_DIR/pg1/patroni.log" >&2; return 1; }
  for i in $(seq 2 "$HA_PG_NODES"); do ha_pg_start_node "pg$i"; done
  [ "$HA_PG_NODES" -ge 2 ] || return 0
  local deadline=$((SECONDS + 180))
  until [ -n "$(ha_pg_sync_standby)" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "Patroni: no synchronous standby"; tail -30 "$HA_PG_DIR/pg2/patroni.log" >&2; return 1
    fi
    sleep 1
  done
  log "PostgreSQL up: primary $(ha_pg_primary), synchronous standby $(ha_pg_sync_standby)"
}

ha_pg_write_config() {
  local name="$1" port="$2" d="$HA_PG_DIR/$1"
  mkdir -p "$d"
  # txp's server settings, sized as for the shared server but smaller (two servers share the
  # machine), applied by Patroni as its own parameters.
  local params
  params=$(bash "$TXP_ROOT/deploy/postgres/txp-conf.sh" | sed -n 's/^\([a-z_]*\) = \(.*\)$/        \1: \2/p' |
    grep -v '^        shared_buffers:')
  cat > "$d/patroni.yml" <<EOF
scope: txp-ha-$HA_PG_PORT
namespace: /txp/
name: $name
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:$((port + 3000))
  connect_address: 127.0.0.1:$((port + 3000))
etcd3:
  hosts: 127.0.0.1:$HA_ETCD_PORT
bootstrap:
  dcs:
    ttl: ${TXP_HA_PATRONI_TTL:-15}
    loop_wait: 2
    retry_timeout: 6
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        synchronous_commit: "on"
        shared_buffers: ${TXP_HA_PG_SHARED_BUFFERS:-256MB}
$params
  initdb:
    - encoding: UTF8
    - data-checksums
    - auth-local: peer
    - auth-host: scram-sha-256
  pg_hba:
    - local all all peer
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:$port
  connect_address: 127.0.0.1:$port
  data_dir: $d/data
  bin_dir: $HA_PG_BIN
  pgpass: $d/pgpass
  authentication:
    superuser: {username: postgres, password: $HA_PG_PASSWORD}
    replication: {username: replicator, password: $HA_PG_PASSWORD-replication}
    rewind: {username: rewinder, password: $HA_PG_PASSWORD-rewind}
  parameters:
    unix_socket_directories: $d
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
EOF
  chown -R postgres: "$d"
  chmod 600 "$d/patroni.yml"
}

ha_pg_start_node() {
  local d="$HA_PG_DIR/$1"
  runuser -u postgres -- setsid nohup patroni "$d/patroni.yml" >>"$d/patroni.log" 2>&1 </dev/null &
  # runuser's child is patroni: the pid of the runuser process is not it; find it by config.
  for _ in $(seq 1 50); do
    pgrep -u postgres -f "patroni $d/patroni.yml" > "$d/patroni.pid" && return 0
    sleep 0.1
  done
  log "Patroni $1 did not start"; return 1
}

# The member in a role, from Patroni's REST API of any member that answers.
ha_pg_cluster_json() {
  local i
  for i in $(seq 1 "$HA_PG_NODES"); do
    curl -sf --max-time 2 "http://127.0.0.1:$((HA_PG_PORT + i - 1 + 3000))/cluster" 2>/dev/null && return 0
  done
  return 1
}
ha_pg_primary() { ha_pg_cluster_json | jq -r '.members[] | select(.role == "leader" and .state == "running") | .name' 2>/dev/null; }
ha_pg_sync_standby() {
  ha_pg_cluster_json | jq -r '.members[] | select(.role == "sync_standby" and (.state == "running" or .state == "streaming")) | .name' 2>/dev/null
}
ha_pg_port_of() { printf '%s' $((HA_PG_PORT + ${1#pg} - 1)); }

# ha_pg_wait_primary [NOT_NAME] [SECONDS=120]: waits until a member other than NOT_NAME is
# the primary and accepts writes; prints its name.
ha_pg_wait_primary() {
  local not="${1:-}" deadline=$((SECONDS + ${2:-120})) p
  while [ "$SECONDS" -lt "$deadline" ]; do
    p=$(ha_pg_primary)
    if [ -n "$p" ] && [ "$p" != "$not" ] &&
       PGPASSWORD="$HA_PG_PASSWORD" psql -XAtq -h 127.0.0.1 -p "$(ha_pg_port_of "$p")" -U postgres -d postgres \
         -c "SELECT NOT pg_is_in_recovery()" 2>/dev/null | grep -qx t; then
      printf '%s\n' "$p"; return 0
    fi
    sleep 0.5
  done
  return 1
}

# kill -9 of a member's Patroni and its PostgreSQL (the whole machine gone, as far as the
# cluster can tell): the leader key expires after the ttl and the synchronous standby is promoted.
ha_pg_kill() {
  local d="$HA_PG_DIR/$1" pids
  pids="$(cat "$d/patroni.pid" 2>/dev/null) $(head -1 "$d/data/postmaster.pid" 2>/dev/null)"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  # The postmaster's children end once they notice it gone; do not wait for them to be reaped.
  pkill -KILL -u postgres -f -- "-D $d/data" 2>/dev/null || true
}

ha_pg_stop() {
  [ -n "${HA_PG_DIR:-}" ] || return 0
  local i d pid
  for i in $(seq 1 "${HA_PG_NODES:-2}"); do
    d="$HA_PG_DIR/pg$i"
    pid=$(cat "$d/patroni.pid" 2>/dev/null) || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for i in $(seq 1 "${HA_PG_NODES:-2}"); do
    d="$HA_PG_DIR/pg$i"
    pid=$(cat "$d/patroni.pid" 2>/dev/null) || continue
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    # Patroni stops its PostgreSQL; a killed Patroni leaves it running.
    [ -f "$d/data/postmaster.pid" ] && runuser -u postgres -- "$HA_PG_BIN/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
  done
  pid=$(cat "$HA_PG_DIR/etcd/pid" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  return 0
}

# --- pointing infra.sh at the HA instances ------------------------------------------------

# After ha_rabbit_start and ha_pg_start: db_url gives multi-host URLs that find the primary
# (target_session_attrs=read-write), amqp_url the list of every node, and bootstrap_database,
# drop_database, bootstrap_vhost, drop_vhost act on these instances.
ha_use() {
  PG_HOSTS=""
  local i
  for i in $(seq 1 "$HA_PG_NODES"); do PG_HOSTS="${PG_HOSTS:+$PG_HOSTS,}127.0.0.1:$((HA_PG_PORT + i - 1))"; done
  PG_URL_PARAMS="?target_session_attrs=read-write"
  PG_ADMIN_URL_BASE="postgresql://postgres:$HA_PG_PASSWORD@$PG_HOSTS"
  RABBIT_CTL_FN=ha_rabbitmqctl_any
  AMQP_URL_FN=ha_rabbit_urls
  RABBIT_API="http://guest:guest@127.0.0.1:$((10000 + HA_RABBIT_PORT))/api"
}

# rabbitmqctl against the first node that answers.
ha_rabbitmqctl_any() {
  local i
  for i in $(seq 1 "$HA_RABBIT_NODES"); do
    ha_rabbitmqctl "$i" -q status >/dev/null 2>&1 || continue
    ha_rabbitmqctl "$i" "$@"; return
  done
  return 1
}
