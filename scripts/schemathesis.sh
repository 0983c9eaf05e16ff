#!/usr/bin/env bash
# Schemathesis (every check) against the OpenAPI document of a running
# Stowage, on one stack: `embedded` (SQLite, local store) or `services`
# (PostgreSQL, S3, NATS from the STOWAGE_TEST_* variables .ci/run exports).
# Fails on any failure or error. Usage: scripts/schemathesis.sh BINARY STACK
set -euo pipefail
bin=$(realpath "$1"); stack=$2
root=$(cd "$(dirname "$0")/.." && pwd)
command -v schemathesis >/dev/null || python3 -m pip install --quiet schemathesis
work=$(mktemp -d /tmp/stowage-schemathesis.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(--listen "127.0.0.1:$port" --data-dir "$work/data" --pbkdf2-rounds 1000
      --rate-limit-api 1000000/min --rate-limit-auth 1000000/min)
if [ "$stack" = services ]; then
  run=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:16])')
  psql "$STOWAGE_TEST_DATABASE_URL" -qc "CREATE DATABASE stowage_t_st_$run"
  args+=(--database-url "${STOWAGE_TEST_DATABASE_URL%/*}/stowage_t_st_$run"
         --s3-endpoint "$STOWAGE_TEST_S3_ENDPOINT" --s3-bucket "stowage-st-$run"
         --aws-access-key-id "$STOWAGE_TEST_S3_ACCESS_KEY" --aws-secret-access-key "$STOWAGE_TEST_S3_SECRET_KEY"
         --nats-url "$STOWAGE_TEST_NATS_URL" --nats-ingest-subject "stowage.st$run.ingest")
fi
"$bin" "${args[@]}" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fsS -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"schemathesis@example.com","password":"correct horse battery"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
cd "$root"
PYTHONPATH="$root/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks \
  schemathesis run "$base/api/v1/openapi.json" -H "Authorization: Bearer $token" \
  --checks all --max-examples 30 --workers 2 --seed 1 --continue-on-failure \
  || { echo "schemathesis ($stack): failures above; the server's log:"; tail -50 "$work/server.log"; exit 1; }
