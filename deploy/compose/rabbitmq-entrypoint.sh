#!/bin/bash
# Entrypoint wrapper for the compose RabbitMQ: writes the boot-time definitions, then hands
# over to the image's docker-entrypoint.sh. The topology is deploy/rabbitmq/definitions.json
# unchanged (mounted at /etc/txp/rabbitmq/definitions.json); the user that the services and
# operators log in with comes from RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS.
# RabbitMQ does not create its default user when it imports definitions on a blank node, so
# the user and its permissions on vhost "/" are imported as definitions too (a plain-text
# "password" in definitions is hashed by RabbitMQ on import).
set -euo pipefail

user="${RABBITMQ_DEFAULT_USER:?RABBITMQ_DEFAULT_USER must be set}"
pass="${RABBITMQ_DEFAULT_PASS:?RABBITMQ_DEFAULT_PASS must be set}"
topology="${TXP_RABBITMQ_TOPOLOGY:-/etc/txp/rabbitmq/definitions.json}"
dir=/tmp/txp-definitions

json_string() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}

umask 077
mkdir -p "$dir"
cp "$topology" "$dir/20-topology.json"
cat >"$dir/10-user.json" <<JSON
{
  "vhosts": [{"name": "/"}],
  "users": [{"name": $(json_string "$user"), "password": $(json_string "$pass"), "tags": "administrator"}],
  "permissions": [{"user": $(json_string "$user"), "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
}
JSON
# The nodes of a cluster (docker-compose.ha.yml) share one Erlang cookie.
if [ -n "${TXP_RABBITMQ_ERLANG_COOKIE:-}" ]; then
    printf '%s' "$TXP_RABBITMQ_ERLANG_COOKIE" >/var/lib/rabbitmq/.erlang.cookie
    chmod 400 /var/lib/rabbitmq/.erlang.cookie
    if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie; fi
fi
# The image's entrypoint drops to the rabbitmq user, which must read these files.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$dir"
fi

exec docker-entrypoint.sh "$@"
