#!/usr/bin/env python3
"""Semantic checks on the resolved HA configuration (`docker-compose -f docker-compose.yml
-f docker-compose.ha.yml config`), and that the plain docker-compose.yml stays single-node.
Used by compose_config_test.sh.
  compose_ha_check.py ROOT HA_CONFIG.yml DEFAULT_CONFIG.yml
Prints one line per check and "N passed, N failed"; exits 1 when any failed."""

import json
import os
import re
import sys
import urllib.parse

import yaml

from compose_check import check, command_of, conditions, env_of, healthcheck_enabled, mounts_of
import compose_check

RABBIT_NODES = ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]
ETCD_MEMBERS = ["etcd-1", "etcd-2", "etcd-3"]
PG_MEMBERS = ["postgres", "postgres-2"]
TXP_SERVICES = {"api-gateway": "txp_gateway", "ledger-worker": "txp_ledger", "notifier": "txp_notify",
                "plaid-sync": "txp_plaid"}


def mount_source(svc, suffix):
    return next((t for s, t in mounts_of(svc) if s.endswith(suffix)), None)


def main(root, ha_file, default_file):
    with open(ha_file) as f:
        services = yaml.safe_load(f)["services"]
    with open(default_file) as f:
        default = yaml.safe_load(f)["services"]

    # The single-node set-up stays the default.
    extra = sorted(set(default) & set(RABBIT_NODES[1:] + ETCD_MEMBERS + PG_MEMBERS[1:]))
    check("docker-compose.yml alone has one broker and one database", not extra, extra)

    # RabbitMQ: three nodes, one cookie, each listing all three for peer discovery, each with
    # its own data volume and host name (its node name).
    conf = open(os.path.join(root, "deploy/compose/rabbitmq-cluster.conf")).read()
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+\s*=\s*rabbit@(\S+)", conf, re.M)
    check("the cluster conf uses classic peer discovery",
          re.search(r"^cluster_formation\.peer_discovery_backend\s*=\s*classic_config", conf, re.M) is not None)
    check("the cluster conf lists the three nodes", sorted(listed) == sorted(RABBIT_NODES), listed)
    cookies, volumes, users = set(), set(), set()
    for name in RABBIT_NODES:
        svc = services.get(name)
        check(f"{name} is defined", svc is not None)
        if svc is None:
            continue
        env = env_of(svc)
        check(f"{name}: host name {name} (node rabbit@{name})", svc.get("hostname") == name)
        target = mount_source(svc, "deploy/compose/rabbitmq-cluster.conf")
        check(f"{name}: mounts the cluster conf into conf.d",
              target is not None and target.startswith("/etc/rabbitmq/conf.d/") and target.endswith(".conf"))
        check(f"{name}: boots with the quorum definitions",
              any(os.path.realpath(s) == os.path.realpath(os.path.join(root, "deploy/rabbitmq/definitions.json"))
                  for s, _ in mounts_of(svc)))
        check(f"{name}: has a health check", healthcheck_enabled(svc))
        cookies.add(env.get("TXP_RABBITMQ_ERLANG_COOKIE", ""))
        users.add((env.get("RABBITMQ_DEFAULT_USER"), env.get("RABBITMQ_DEFAULT_PASS")))
        volumes.add(next((s for s, t in mounts_of(svc) if t == "/var/lib/rabbitmq"), None))
    check("the nodes share one non-empty Erlang cookie", len(cookies) == 1 and "" not in cookies, cookies)
    check("the nodes share the services' user", len(users) == 1)
    check("each node has a data volume of its own", len(volumes) == 3 and None not in volumes, volumes)
    entry = open(os.path.join(root, "deploy/compose/rabbitmq-entrypoint.sh")).read()
    check("the entrypoint writes the cookie", "TXP_RABBITMQ_ERLANG_COOKIE" in entry and ".erlang.cookie" in entry)
    with open(os.path.join(root, "deploy/rabbitmq/definitions.json")) as f:
        defs = json.load(f)
    work = [q for q in defs["queues"] if re.match(r"^(ledger|plaid|notifier)\.", q["name"])]
    check("every txp queue in the definitions is a quorum queue",
          work and all(q["arguments"].get("x-queue-type") == "quorum" for q in work))

    # etcd: three members forming one cluster.
    for name in ETCD_MEMBERS:
        svc = services.get(name)
        check(f"{name} is defined", svc is not None)
        if svc is None:
            continue
        cmd = " ".join(command_of(svc))
        check(f"{name}: runs etcd with the three members as its initial cluster",
              "etcd " in cmd and all(f"{m}=http://{m}:2380" in cmd for m in ETCD_MEMBERS), cmd)
        check(f"{name}: has a health check and its own volume", healthcheck_enabled(svc) and
              any(t == "/var/lib/postgresql/etcd" for _, t in mounts_of(svc)))

    # Patroni: two members of one scope in synchronous mode, on the three etcd members.
    with open(os.path.join(root, "deploy/compose/patroni.yml")) as f:
        patroni = yaml.safe_load(f)
    dcs = patroni["bootstrap"]["dcs"]
    check("Patroni runs in synchronous mode", dcs.get("synchronous_mode") is True)
    check("Patroni's timing leaves room (loop_wait + 2 * retry_timeout <= ttl)",
          dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"])
    check("Patroni uses the three etcd members",
          sorted(h.split(":")[0] for h in patroni["etcd3"]["hosts"].split(",")) == ETCD_MEMBERS)
    check("Patroni bootstraps txp's roles and schemas",
          patroni["bootstrap"].get("post_bootstrap") == "/etc/txp/compose/postgres-init.sh")
    names = set()
    for name in PG_MEMBERS:
        svc = services.get(name)
        check(f"{name} is defined", svc is not None)
        if svc is None:
            continue
        env = env_of(svc)
        names.add(env.get("PATRONI_NAME"))
        check(f"{name}: runs Patroni with the shared configuration",
              command_of(svc)[:1] == ["patroni"] and mount_source(svc, "deploy/compose/patroni.yml") in command_of(svc))
        check(f"{name}: advertises itself by its host name",
              env.get("PATRONI_POSTGRESQL_CONNECT_ADDRESS") == f"{name}:5432" and
              env.get("PATRONI_RESTAPI_CONNECT_ADDRESS") == f"{name}:8008")
        check(f"{name}: waits for the etcd members", all(conditions(svc).get(m) == "service_healthy" for m in ETCD_MEMBERS))
        check(f"{name}: its health check asks Patroni", "8008/health" in " ".join((svc.get("healthcheck") or {}).get("test", [])))
        check(f"{name}: has the post_bootstrap script and the SQL mounted",
              ("deploy/compose/postgres-init.sh", "/etc/txp/compose/postgres-init.sh") in
              [(s[-len("deploy/compose/postgres-init.sh"):], t) for s, t in mounts_of(svc)] and
              any(t == "/etc/txp/postgres" for _, t in mounts_of(svc)))
        check(f"{name}: does not add the single-node settings include (Patroni sets them)", env.get("TXP_PG_CONF") == "false")
    check("the members have distinct names", len(names) == len(PG_MEMBERS) and None not in names, names)
    db_pass = env_of(services["postgres"]).get("TXP_DB_PASSWORD", "")
    db_name = env_of(services["postgres"]).get("TXP_DB_NAME", "")
    mq_user, mq_pass = next(iter(users)) if users else ("", "")

    # The services: every broker node and every database member in their URLs.
    def db_url_ok(url, role):
        u = urllib.parse.urlsplit(url)
        hosts = u.netloc.rsplit("@", 1)[-1].split(",")
        return (sorted(h.split(":")[0] for h in hosts) == sorted(PG_MEMBERS) and u.username == role and
                u.password == db_pass and u.path == "/" + db_name and
                urllib.parse.parse_qs(u.query).get("target_session_attrs") == ["read-write"])

    for name, role in TXP_SERVICES.items():
        env = env_of(services[name])
        urls = env.get("TXP_AMQP_URL", "").split(",")
        parsed = [urllib.parse.urlsplit(u) for u in urls]
        check(f"{name}: TXP_AMQP_URL lists the three nodes with the broker's user",
              sorted(p.hostname for p in parsed) == sorted(RABBIT_NODES) and
              all(p.username == mq_user and urllib.parse.unquote(p.password or "") == mq_pass for p in parsed),
              env.get("TXP_AMQP_URL"))
        check(f"{name}: TXP_QUEUE_TYPE is quorum", env.get("TXP_QUEUE_TYPE") == "quorum")
        check(f"{name}: TXP_DATABASE_URL names both members and asks for the primary",
              db_url_ok(env.get("TXP_DATABASE_URL", ""), role), env.get("TXP_DATABASE_URL"))
    menv = env_of(services["migrate"])
    for var, role in (("TXP_LEDGER_DATABASE_URL", "txp_ledger"), ("TXP_GATEWAY_DATABASE_URL", "txp_gateway")):
        check(f"migrate: {var} names both members and asks for the primary", db_url_ok(menv.get(var, ""), role))

    print(f"{compose_check.passed} passed, {compose_check.failed} failed")
    return 1 if compose_check.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
