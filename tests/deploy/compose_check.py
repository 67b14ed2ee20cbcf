#!/usr/bin/env python3
"""Semantic checks on the resolved docker-compose configuration (the YAML that
`docker-compose config` prints), beyond what its schema validation covers. Used by
compose_config_test.sh, which runs it once with the default settings and once with
overridden passwords.
  compose_check.py ROOT CONFIG.yml
Prints one line per check and "N passed, N failed"; exits 1 when any failed.
PyYAML is present wherever docker-compose 1.29 is (it depends on python3-yaml)."""

import os
import re
import sys
import urllib.parse

import yaml

TXP_SERVICES = {  # service -> (database role, ops or HTTP port); None: no database
    "api-gateway": ("txp_gateway", 8000),
    "ledger-worker": ("txp_ledger", 9101),
    "notifier": ("txp_notify", 9104),
    "plaid-sync": ("txp_plaid", 9103),
}

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok: {what}")
    else:
        failed += 1
        print(f"FAILED: {what}" + (f" ({detail})" if detail else ""))


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def healthcheck_enabled(svc):
    hc = svc.get("healthcheck")
    if not hc or hc.get("disable"):
        return False
    test = hc.get("test")
    return bool(test) and test != ["NONE"] and test != "NONE"


def conditions(svc):
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (d or {}).get("condition", "service_started") for name, d in deps.items()}


def ports_of(svc):
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("published", "")), str(p.get("target", ""))))
        else:  # "host_ip:published:target/proto"
            parts = str(p).split("/")[0].split(":")
            out.append((parts[-2] if len(parts) >= 2 else "", parts[-1]))
    return out


def mounts_of(svc):
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v.get("target", ""))))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return out


def command_of(svc):
    cmd = svc.get("entrypoint") or svc.get("command") or []
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def main(root, config_file):
    with open(config_file) as f:
        cfg = yaml.safe_load(f)
    services = cfg["services"]
    dockerfile = open(os.path.join(root, "deploy/docker/Dockerfile")).read()
    built = set(re.search(r"for name in ([^;]+);", dockerfile).group(1).split())

    expected = {"postgres", "rabbitmq", "migrate", "api-gateway", "ledger-worker", "notifier",
                "plaid-emulator", "plaid-sync"}
    check("all services are defined", expected <= set(services), sorted(expected - set(services)))

    # Scaling: ledger-worker is replicated and has nothing that would clash between replicas.
    lw = services.get("ledger-worker", {})
    check("ledger-worker has deploy.replicas 3", (lw.get("deploy") or {}).get("replicas") == 3)
    check("ledger-worker has no container_name", "container_name" not in lw)
    check("ledger-worker publishes no host port", not lw.get("ports"))
    check("no service has a fixed container_name",
          not [n for n, s in services.items() if "container_name" in s])

    # Start order: every service is health-checked or waits on a condition; every
    # service_healthy target has a health check; the migration is one-shot.
    for name, svc in sorted(services.items()):
        conds = conditions(svc)
        check(f"{name}: has a health check or a depends_on condition",
              healthcheck_enabled(svc) or any(c != "service_started" for c in conds.values()))
        for dep, cond in conds.items():
            check(f"{name}: depends on {dep}, which is defined", dep in services)
            if cond == "service_healthy" and dep in services:
                check(f"{name}: waits for {dep} healthy, which has a health check",
                      healthcheck_enabled(services[dep]))
            if dep == "migrate":
                check(f"{name}: waits for migrate to complete successfully",
                      cond == "service_completed_successfully", cond)
    check("migrate does not restart", str(services["migrate"].get("restart")) == "no")
    for name in ("api-gateway", "ledger-worker", "notifier"):
        check(f"{name} waits for the migration", conditions(services[name]).get("migrate") ==
              "service_completed_successfully")

    # The gateway is reachable on 8000.
    check("api-gateway publishes 8000 -> 8000", ("8000", "8000") in ports_of(services["api-gateway"]),
          ports_of(services["api-gateway"]))
    check("rabbitmq publishes the console on 15672", ("15672", "15672") in ports_of(services["rabbitmq"]))

    # RabbitMQ boots with the committed topology and the user the services log in with.
    rmq = services["rabbitmq"]
    mounts = mounts_of(rmq)
    defs = os.path.join(root, "deploy/rabbitmq/definitions.json")
    defs_target = next((t for s, t in mounts if os.path.realpath(s) == os.path.realpath(defs)), None)
    check("rabbitmq mounts deploy/rabbitmq/definitions.json", defs_target is not None, mounts)
    entry = open(os.path.join(root, "deploy/compose/rabbitmq-entrypoint.sh")).read()
    check("the entrypoint copies the mounted definitions file",
          defs_target is not None and f":-{defs_target}}}" in entry)
    entry_target = next((t for s, t in mounts if s.endswith("deploy/compose/rabbitmq-entrypoint.sh")), None)
    check("rabbitmq runs the mounted entrypoint wrapper",
          entry_target is not None and entry_target in command_of(rmq), (entry_target, rmq.get("entrypoint")))
    check("rabbitmq still runs rabbitmq-server", rmq.get("command") in (["rabbitmq-server"], "rabbitmq-server"))
    conf_target = next((t for s, t in mounts if s.endswith("deploy/compose/rabbitmq.conf")), None)
    check("rabbitmq.conf is mounted into conf.d",
          conf_target is not None and conf_target.startswith("/etc/rabbitmq/conf.d/") and conf_target.endswith(".conf"))
    conf = open(os.path.join(root, "deploy/compose/rabbitmq.conf")).read()
    load = re.search(r"^load_definitions\s*=\s*(\S+)", conf, re.M)
    dir_in_entry = re.search(r"^dir=(\S+)", entry, re.M)
    check("load_definitions names the directory the entrypoint writes",
          load and dir_in_entry and load.group(1) == dir_in_entry.group(1))
    check("rabbitmq keeps a fixed host name (stable node name for its data volume)",
          bool(rmq.get("hostname")))
    renv = env_of(rmq)
    mq_user, mq_pass = renv.get("RABBITMQ_DEFAULT_USER", ""), renv.get("RABBITMQ_DEFAULT_PASS", "")
    check("rabbitmq has a user of its own, not guest", mq_user not in ("", "guest") and mq_pass != "")

    # PostgreSQL: roles and schemas from deploy/postgres through the init script.
    pg = services["postgres"]
    pmounts = mounts_of(pg)
    check("postgres mounts deploy/postgres",
          any(os.path.realpath(s) == os.path.realpath(os.path.join(root, "deploy/postgres")) for s, _ in pmounts))
    check("postgres runs the init script on first start",
          any(s.endswith("deploy/compose/postgres-init.sh") and t.startswith("/docker-entrypoint-initdb.d/")
              for s, t in pmounts))
    penv = env_of(pg)
    db_pass, db_name = penv.get("TXP_DB_PASSWORD", ""), penv.get("TXP_DB_NAME", "")

    # The txp services: one image, binaries it builds, loopback-free listening, and URLs
    # that agree with the servers' credentials.
    image = services["api-gateway"].get("image")
    for name, svc in sorted(services.items()):
        if name in ("postgres", "rabbitmq"):
            continue
        check(f"{name}: runs the txp image", svc.get("image") == image and
              (svc.get("build") or {}).get("dockerfile") == "deploy/docker/Dockerfile")
        cmd = command_of(svc)
        if cmd[:1] == ["sh"]:
            used = set(re.findall(r"(?:^|\s)([a-z_][a-z0-9_-]+) (?:migrate|seed-demo)\b", " ".join(cmd)))
        else:
            used = {cmd[0]} if cmd else set()
        check(f"{name}: runs executables the image builds {sorted(used)}", bool(used) and used <= built,
              sorted(used - built))
        env = env_of(svc)
        if "TXP_AMQP_URL" in env:
            u = urllib.parse.urlsplit(env["TXP_AMQP_URL"])
            check(f"{name}: TXP_AMQP_URL uses the rabbitmq service's user",
                  u.hostname == "rabbitmq" and u.username == mq_user and
                  urllib.parse.unquote(u.password or "") == mq_pass, env["TXP_AMQP_URL"])
    for name, (role, port) in TXP_SERVICES.items():
        svc, env = services[name], env_of(services[name])
        u = urllib.parse.urlsplit(env.get("TXP_DATABASE_URL", ""))
        check(f"{name}: connects to the database as {role}",
              u.hostname == "postgres" and u.username == role and u.password == db_pass and
              u.path == "/" + db_name, env.get("TXP_DATABASE_URL"))
        check(f"{name}: listens on 0.0.0.0", env.get("TXP_HTTP_ADDRESS") == "0.0.0.0")
        check(f"{name}: TXP_HTTP_PORT is {port}", env.get("TXP_HTTP_PORT") == str(port))
        check(f"{name}: the health check asks /readyz on that port",
              (svc.get("healthcheck") or {}).get("test") == ["CMD", "txp-healthcheck", str(port)])
    menv = env_of(services["migrate"])
    for var, role in (("TXP_LEDGER_DATABASE_URL", "txp_ledger"), ("TXP_GATEWAY_DATABASE_URL", "txp_gateway")):
        u = urllib.parse.urlsplit(menv.get(var, ""))
        check(f"migrate: {var} is {role} with the database password",
              u.username == role and u.password == db_pass and u.path == "/" + db_name)

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
