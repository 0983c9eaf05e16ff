#!/usr/bin/env bash
# Flat memory under tus, on both stacks: a release build, 8 concurrent tus
# uploads each declared at 1 TiB, each sending 1 GiB in 8 MiB PATCHes; the
# server's peak RSS (VmHWM) and the throughput. On S3 the yardstick is
# boto3 sending the same bytes straight to the same SeaweedFS as multipart
# uploads of the same part size. One row per run into bench/results.
#
# Usage: bench/tus-memory.sh   (UPLOADS=8 SEND=1073741824 DECLARED=1099511627776
#        STACKS="embedded services"; the services from STOWAGE_TEST_* as .ci/run sets them)
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOADS=${UPLOADS:-8}; SEND=${SEND:-1073741824}; DECLARED=${DECLARED:-1099511627776}
STACKS=${STACKS:-embedded services}
python3 -c 'import requests, boto3' 2>/dev/null || pip install --quiet requests boto3
cargo build --release --quiet
bin=$PWD/target/release/stowage
out=bench/results/tus-memory-$(date -u +%F).txt
commit=$(git rev-parse --short HEAD)
for stack in $STACKS; do
  work=$(mktemp -d /tmp/stowage-mem.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  args=(--listen "127.0.0.1:$port" --data-dir "$work/data" --pbkdf2-rounds 1000)
  if [ "$stack" = services ]; then
    run=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
    psql "$STOWAGE_TEST_DATABASE_URL" -qc "CREATE DATABASE stowage_t_mem_$run"
    args+=(--database-url "${STOWAGE_TEST_DATABASE_URL%/*}/stowage_t_mem_$run"
           --s3-endpoint "$STOWAGE_TEST_S3_ENDPOINT" --s3-bucket "stowage-mem-$run"
           --aws-access-key-id "$STOWAGE_TEST_S3_ACCESS_KEY" --aws-secret-access-key "$STOWAGE_TEST_S3_SECRET_KEY"
           --nats-url "$STOWAGE_TEST_NATS_URL" --nats-ingest-subject "stowage.mem$run.ingest")
  fi
  "$bin" "${args[@]}" >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  row=$(python3 bench/tus_memory.py "http://127.0.0.1:$port" "$pid" --uploads "$UPLOADS" --send "$SEND" --declared "$DECLARED")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  line="$(date -u +%FT%TZ) commit=$commit stack=$stack $row"
  echo "$line" | tee -a "$out"
  if [ "$stack" = services ]; then
    # The same bytes straight to the same store, as multipart uploads: with
    # the part size Stowage uses (each 8 MiB PATCH is a part), and with the
    # one a plan for the declared length would take (length / 10,000).
    python3 - "$STOWAGE_TEST_S3_ENDPOINT" "$STOWAGE_TEST_S3_ACCESS_KEY" "$STOWAGE_TEST_S3_SECRET_KEY" \
      "stowage-mem-$run" "$UPLOADS" "$SEND" "$DECLARED" <<'PY' | sed "s/^/$(date -u +%FT%TZ) commit=$commit stack=boto3-direct /" | tee -a "$out"
import os, sys, threading, time
import boto3
from boto3.s3.transfer import TransferConfig
endpoint, key, secret, bucket, uploads, send, declared = sys.argv[1:8]
uploads, send, declared = int(uploads), int(send), int(declared)
mib = 1 << 20
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
data = os.urandom(send)
path = "/tmp/stowage-mem-direct.bin"
with open(path, "wb") as f:
    f.write(data)
for part in (8 * mib, max(5 * mib, -(-declared // 10000 // mib) * mib)):
    config = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=1)
    def one(n):
        s3.upload_file(path, bucket, f"direct/{n}", Config=config)
    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(n,)) for n in range(uploads)]
    [t.start() for t in threads]; [t.join() for t in threads]
    took = time.monotonic() - started
    print(f"uploads={uploads} part={part} sent={uploads * send} seconds={took:.1f} MBps={uploads * send / took / 1e6:.0f}", flush=True)
os.remove(path)
# Leave nothing behind: the store keeps deleted space until its bucket goes.
b = boto3.resource("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1").Bucket(bucket)
b.objects.all().delete()
for u in b.multipart_uploads.all():
    u.abort()
b.delete()
PY
    psql "$STOWAGE_TEST_DATABASE_URL" -qc "DROP DATABASE stowage_t_mem_$run"
  fi
  rm -rf "$work"
done
