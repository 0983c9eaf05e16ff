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
- the stored file: the local store keeps objects sealed (encrypted at
  rest), so after the run the server is started again on the same data
  dir and the file is downloaded through the API; the harness checks that
  copy's sha256.

Usage (bench/tus-bench.sh sets this up):
    WORK=... STOWAGE_BIN=... python tus_stowage.py --rounds 3 --servers stowage,rustus,...
"""
import json
import os
import shutil
import subprocess as sp
import sys
import time
import urllib.error
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
    cmd, _ = server_cmd(name, d)
    server = sp.Popen(cmd, stdout=sp.DEVNULL, stderr=sp.DEVNULL)
    out = f"{d}/downloaded.bin"
    try:
        base = f"http://127.0.0.1:{PORT}"
        token = None
        for _ in range(200):
            try:
                body = json.dumps({"email": "bench@example.com", "password": "benchmark password"})
                req = urllib.request.Request(
                    f"{base}/api/v1/auth/login",
                    data=body.encode(),
                    headers={"Content-Type": "application/json"},
                )
                token = json.load(urllib.request.urlopen(req))["access_token"]
                break
            except OSError:
                time.sleep(0.05)
        auth = {"Authorization": f"Bearer {token}"}
        files = json.load(
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/files", headers=auth))
        )["items"]
        if len(files) != 1:
            return f"{d}/missing"

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(
                urllib.request.Request(f"{base}/api/v1/files/{files[0]['id']}/content", headers=auth)
            )
            return f"{d}/missing"
        except urllib.error.HTTPError as e:
            location = e.headers["Location"]
        with urllib.request.urlopen(location) as r, open(out, "wb") as f:
            shutil.copyfileobj(r, f, 8 << 20)
        return out
    finally:
        server.terminate()
        server.wait()


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
