#!/usr/bin/env python3
"""Flat memory under tus: N concurrent uploads, each declared at a large
length (1 TiB by default), each sending SEND bytes in 8 MiB PATCHes, against
a running Stowage; prints the time, the throughput and the server's peak RSS
(VmHWM). Usage: tus_memory.py BASE_URL SERVER_PID [--uploads N] [--send BYTES]
[--declared BYTES] [--chunk BYTES]"""

import argparse
import base64
import os
import threading
import time

import requests


def vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("pid", type=int)
    p.add_argument("--uploads", type=int, default=8)
    p.add_argument("--send", type=int, default=1 << 30)
    p.add_argument("--declared", type=int, default=1 << 40)
    p.add_argument("--chunk", type=int, default=8 << 20)
    a = p.parse_args()

    s = requests.Session()
    email = f"mem-{os.getpid()}-{time.time_ns()}@example.com"
    r = s.post(f"{a.base}/api/v1/auth/signup", json={"email": email, "password": "correct horse battery"})
    r.raise_for_status()
    token = r.json()["access_token"]
    tus = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    block = os.urandom(a.chunk)
    errors = []

    def upload(n: int) -> None:
        try:
            http = requests.Session()
            name = base64.b64encode(f"mem-{n}.bin".encode()).decode()
            r = http.post(f"{a.base}/api/v1/tus", headers={**tus, "Upload-Length": str(a.declared),
                                                         "Upload-Metadata": f"filename {name}"})
            r.raise_for_status()
            url = r.headers["Location"]
            if url.startswith("/"):
                url = a.base + url
            offset = 0
            while offset < a.send:
                r = http.patch(url, data=block, headers={**tus, "Upload-Offset": str(offset),
                                                          "Content-Type": "application/offset+octet-stream"})
                r.raise_for_status()
                offset = int(r.headers["Upload-Offset"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"upload {n}: {e}")

    before = vm_hwm(a.pid)
    started = time.monotonic()
    threads = [threading.Thread(target=upload, args=(n,)) for n in range(a.uploads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    if errors:
        raise SystemExit("\n".join(errors))
    sent = a.uploads * a.send
    print(f"uploads={a.uploads} declared={a.declared} sent={sent} seconds={took:.1f} "
          f"MBps={sent / took / 1e6:.0f} peak_rss_MiB={vm_hwm(a.pid) / 2**20:.0f} "
          f"rss_before_MiB={before / 2**20:.0f}")


if __name__ == "__main__":
    main()
