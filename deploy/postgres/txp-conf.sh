#!/usr/bin/env bash
# Prints txp's PostgreSQL settings (txp.conf beside this script) with shared_buffers at most a
# quarter of the memory: of the cgroup's limit when it is smaller than the machine's, at most
# 2GB; TXP_PG_SHARED_BUFFERS (e.g. 512MB) overrides. Used by scripts/lib/infra.sh for the
# host's cluster and by deploy/compose/postgres-init.sh in the PostgreSQL container.
set -euo pipefail
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || true)
if [[ "$limit" =~ ^[0-9]+$ ]] && [ $((limit / 1048576)) -lt "$mem_mb" ]; then mem_mb=$((limit / 1048576)); fi
buffers="${TXP_PG_SHARED_BUFFERS:-$(( mem_mb / 4 < 2048 ? mem_mb / 4 : 2048 ))MB}"
sed "s/^shared_buffers = .*/shared_buffers = $buffers/" "$(dirname "${BASH_SOURCE[0]}")/txp.conf"
