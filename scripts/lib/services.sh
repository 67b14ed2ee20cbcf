# Shared by scripts/demo and scripts/bench: run txp's services as background processes.
# Source it after infra.sh; the caller sets run_dir (logs/ and pids/ under it), db (the
# database name) and bin (the build directory).

# stop_services [PATTERN]: TERM (then KILL after 10 s) the services whose name matches (all by default).
stop_services() {
  local pids=()
  for f in "$run_dir"/pids/${1:-*}.pid; do
    [ -e "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
    rm -f "$f"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

start_service() {  # name role binary args...
  local name="$1" role="$2" exe="$3"; shift 3
  TXP_DATABASE_URL="$(db_url "$role" "$db")" TXP_REPLICA_ID="$name" \
    nohup "$exe" "$@" >>"$run_dir/logs/$name.log" 2>&1 &
  echo $! > "$run_dir/pids/$name.pid"
}

wait_ready() {  # name port
  for _ in $(seq 1 150); do
    if curl -sf "http://127.0.0.1:$2/readyz" >/dev/null; then log "$1 ready on :$2"; return 0; fi
    if ! kill -0 "$(cat "$run_dir/pids/$1.pid")" 2>/dev/null; then
      log "$1 exited during start-up; its log:"; tail -20 "$run_dir/logs/$1.log" >&2; return 1
    fi
    sleep 0.2
  done
  log "$1 not ready on :$2"; tail -20 "$run_dir/logs/$1.log" >&2; return 1
}

