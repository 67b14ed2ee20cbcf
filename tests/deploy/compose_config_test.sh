#!/usr/bin/env bash
# docker-compose.yml, checked without a Docker engine: `docker-compose config` must accept it
# (schema, interpolation, depends_on conditions), and the resolved configuration must mean
# what docs and scripts promise (compose_check.py): replicas, health checks and start order,
# the gateway on 8000, the committed RabbitMQ definitions, credentials that agree. Run twice:
# with the defaults and with every password overridden from the environment, so that a
# hard-coded password cannot hide. The HA topology (docker-compose.ha.yml on top) the same way
# (compose_ha_check.py), and the plain file must stay single-node.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
file="$root/docker-compose.yml"
ha_file="$root/docker-compose.ha.yml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v docker-compose >/dev/null; then
    echo "FAILED: docker-compose is not installed (scripts/setup installs it)"
    exit 1
fi
docker-compose version --short

# A clean environment: only what each pass sets reaches the interpolation.
compose() { env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$@" docker-compose -f "$file" config; }
compose_ha() { env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$@" docker-compose -f "$file" -f "$ha_file" config; }

status=0
echo "== defaults"
compose >"$work/default.yml"
docker-compose -f "$file" config -q
python3 "$root/tests/deploy/compose_check.py" "$root" "$work/default.yml" || status=1

echo "== overridden credentials"
compose TXP_DB_PASSWORD=db-override TXP_DB_NAME=txp_other TXP_RABBITMQ_USER=mq-user \
    TXP_RABBITMQ_PASSWORD=mq-override >"$work/override.yml"
python3 "$root/tests/deploy/compose_check.py" "$root" "$work/override.yml" || status=1
if grep -q "txp-dev-password" "$work/override.yml"; then
    echo "FAILED: a default password remains after overriding them all:"
    grep -n "txp-dev-password" "$work/override.yml"
    status=1
fi

echo "== HA topology (docker-compose.ha.yml), defaults"
compose_ha >"$work/ha.yml"
docker-compose -f "$file" -f "$ha_file" config -q
python3 "$root/tests/deploy/compose_ha_check.py" "$root" "$work/ha.yml" "$work/default.yml" || status=1

echo "== HA topology, overridden credentials"
compose_ha TXP_DB_PASSWORD=db-override TXP_DB_NAME=txp_other TXP_RABBITMQ_USER=mq-user \
    TXP_RABBITMQ_PASSWORD=mq-override TXP_RABBITMQ_ERLANG_COOKIE=cookie-override TXP_POSTGRES_PASSWORD=pg-override \
    TXP_REPLICATION_PASSWORD=repl-override TXP_REWIND_PASSWORD=rewind-override >"$work/ha-override.yml"
python3 "$root/tests/deploy/compose_ha_check.py" "$root" "$work/ha-override.yml" "$work/default.yml" || status=1
if grep -E -q "txp-dev-password|txp-dev-erlang-cookie|dev-password" "$work/ha-override.yml"; then
    echo "FAILED: a default password remains in the HA topology after overriding them all:"
    grep -E -n "txp-dev-password|txp-dev-erlang-cookie|dev-password" "$work/ha-override.yml"
    status=1
fi

# The shell scripts compose runs must at least parse.
for s in deploy/compose/postgres-init.sh deploy/compose/rabbitmq-entrypoint.sh deploy/docker/txp-healthcheck; do
    if bash -n "$root/$s"; then echo "ok: $s parses"; else echo "FAILED: $s does not parse"; status=1; fi
done
exit "$status"
