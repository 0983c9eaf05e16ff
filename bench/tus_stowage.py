#!/usr/bin/env python3
"""Adds Stowage to the shared tus benchmark harness (../shared/bench/tus-peers.sh).

The harness measures every server the same way: a fresh process per run,
the same client (minitus.py), server CPU seconds and peak RSS from /proc,
hot and cold page-cache runs, the stored file's sha256 checked. This module
teaches it one more server, `stowage`, on the embedded default (SQLite and
the local store), and runs it:

- start: `stowage` with its data dir in the harness's work dir; once it
  listens, a user signs up and the client sends that user's token;
- the client: minitus.py with an `Authorization` header on its session;
- the stored file: the one object in the data dir's blob store.

Usage (bench/tus-bench.sh sets this up):
    WORK=... STOWAGE_BIN=... python tus_stowage.py --rounds 3 --servers stowage,rustus,...
"""
import json
import os
import subprocess as sp
import sys
import urllib.request

WORK = os.environ["WORK"]
sys.path.insert(0, WORK)
import harness  # noqa: E402  (written by tus-peers.sh into $WORK)

PORT = 41084
BIN = os.environ["STOWAGE_BIN"]
TOKEN_FILE = f"{WORK}/stowage-token"
CLIENT = f"{WORK}/minitus_stowage.py"

harness.PORTS["stowage"] = PORT
_server_cmd, _start, _stored_file = harness.server_cmd, harness.start, harness.stored_file


def server_cmd(name, d):
    if name != "stowage":
        return _server_cmd(name, d)
    env = {
        "STOWAGE_LISTEN": f"127.0.0.1:{PORT}",
        "STOWAGE_DATA_DIR": d,
        # Sign-up is not measured; keep it quick.
        "STOWAGE_PBKDF2_ROUNDS": "1000",
        "STOWAGE_RATE_LIMIT_API": "1000000/min",
        "RUST_LOG": "warn",
    }
    cmd = ["env", *[f"{k}={v}" for k, v in env.items()], BIN]
    return cmd, f"http://127.0.0.1:{PORT}/api/v1/tus"


def start(name):
    p, d, url = _start(name)
    if name == "stowage":
        body = json.dumps({"email": "bench@example.com", "password": "benchmark password"}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{PORT}/api/v1/auth/signup",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        token = json.load(urllib.request.urlopen(req))["access_token"]
        with open(TOKEN_FILE, "w") as f:
            f.write(token)
    elif os.path.exists(TOKEN_FILE):
        os.remove(TOKEN_FILE)
    return p, d, url


def stored_file(name, d, res):
    if name != "stowage":
        return _stored_file(name, d, res)
    found = [
        os.path.join(root, f)
        for root, _, files in os.walk(f"{d}/blobs/objects")
        for f in files
    ]
    return found[0] if len(found) == 1 else f"{d}/missing"


def client(args):
    r = sp.run([harness.PY, CLIENT, *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stdout + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


# minitus.py, with the bearer token on every request when Stowage is measured.
with open(CLIENT, "w") as f:
    f.write(
        f"""import os, runpy, requests
token_file = {TOKEN_FILE!r}
if os.path.exists(token_file):
    token = open(token_file).read().strip()
    _init = requests.Session.__init__
    def _with_token(self, *a, **k):
        _init(self, *a, **k)
        self.headers["Authorization"] = "Bearer " + token
    requests.Session.__init__ = _with_token
runpy.run_path({WORK + "/minitus.py"!r}, run_name="__main__")
"""
    )

harness.server_cmd, harness.start, harness.stored_file, harness.client = (
    server_cmd,
    start,
    stored_file,
    client,
)

if __name__ == "__main__":
    harness.main()
