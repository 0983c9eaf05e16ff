#!/usr/bin/env python3
"""Checks docker-compose.yml without a Docker engine.

- the file parses, and every service has a health check or is a one-shot job;
- every `depends_on` waits for `service_healthy` (or a finished one-shot);
- every variable set on `stowage` is one the server knows (`stowage --help`);
- every host path mounted exists;
- no secret is written in it: every password, secret or key comes from
  `${VAR:?…}` (generated into .env by scripts/compose-env.sh), and only
  Stowage publishes a port beyond 127.0.0.1;
- scripts/compose-env.sh generates each variable the file requires;
- the Prometheus config and the alert rules pass `promtool check`.

Usage: scripts/check-compose.py <path to the stowage binary>
"""

import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg: str) -> None:
    print(f"compose check: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    binary = sys.argv[1]
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    one_shots = {n for n, s in services.items() if s.get("restart") == "no"}
    for name, svc in services.items():
        if name not in one_shots and "healthcheck" not in svc:
            fail(f"service {name} has no healthcheck")
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            fail(f"service {name}: depends_on must name a condition for each service")
        for dep, cond in deps.items():
            if dep not in services:
                fail(f"service {name} depends on unknown service {dep}")
            wanted = "service_completed_successfully" if dep in one_shots else "service_healthy"
            if cond.get("condition") != wanted:
                fail(f"service {name} must wait for {dep} with condition {wanted}")
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                if not os.path.exists(os.path.join(ROOT, source)):
                    fail(f"service {name} mounts {source}, which does not exist")
            elif source not in (compose.get("volumes") or {}):
                fail(f"service {name} mounts undeclared volume {source}")
    if "load" not in services or "load" not in services["load"].get("profiles", []):
        fail("the k6 load run must be a service in the `load` profile")

    check_secrets(services)

    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"env: ([A-Z0-9_]+)", help_text))
    for var in services["stowage"]["environment"]:
        if var not in known:
            fail(f"stowage is given {var}, which `stowage --help` does not know")

    for args in (
        ["check", "config", "monitoring/prometheus.yml"],
        ["check", "rules", "dashboards/alerts.yml"],
    ):
        # The compose file mounts the rules at /etc/prometheus; check a copy that points here.
        cmd = ["promtool", *args]
        if args[1] == "config":
            with open(os.path.join(ROOT, args[2])) as f:
                text = f.read().replace("/etc/prometheus/alerts.yml", os.path.join(ROOT, "dashboards/alerts.yml"))
            local = os.path.join(ROOT, "target", "prometheus-check.yml")
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "w") as f:
                f.write(text)
            cmd = ["promtool", "check", "config", local]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            fail(f"{' '.join(cmd)}:\n{r.stdout}{r.stderr}")
    print(f"compose check: {len(services)} services, {len(known)} known variables, prometheus config and rules ok")


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|_KEY$")
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]+\}")


def check_secrets(services: dict) -> None:
    required = set()
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            fail(f"service {name}: write environment as a mapping")
        for var, value in env.items():
            value = str(value)
            required.update(REQUIRED.findall(value))
            secret_var = SECRET_NAME.search(var) and var not in ("AWS_ACCESS_KEY_ID",)
            if secret_var and not REQUIRED.fullmatch(value):
                fail(f"service {name}: {var} must come from ${{VAR:?…}}, not be written in the file")
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                if ":" in userinfo and not REQUIRED.search(userinfo):
                    fail(f"service {name}: {var} writes a password into its URL")
        for port in svc.get("ports", []):
            if name != "stowage" and not str(port).startswith("127.0.0.1:"):
                fail(f"service {name} publishes {port} beyond this machine; bind it to 127.0.0.1")
    with open(os.path.join(ROOT, "scripts", "compose-env.sh")) as f:
        generated = set(re.findall(r'echo "([A-Z0-9_]+)=', f.read()))
    if not required:
        fail("no variable is required from .env: where do the secrets come from?")
    if required - generated:
        fail(f"scripts/compose-env.sh does not generate {sorted(required - generated)}")


if __name__ == "__main__":
    main()
