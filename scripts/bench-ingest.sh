#!/usr/bin/env bash
# Ingest benchmark: 50,000 pending files on PostgreSQL, their MinIO-format
# events published to NATS JetStream, measured until all are available.
# Starts PostgreSQL and NATS if they are down. STOWAGE_BENCH_FILES=N for
# another count.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
ensure_postgres
ensure_nats
trap stop_started_services EXIT
export STOWAGE_BENCH_DATABASE_URL=${STOWAGE_BENCH_DATABASE_URL:-$STOWAGE_TEST_DATABASE_URL}
export STOWAGE_BENCH_NATS_URL=${STOWAGE_BENCH_NATS_URL:-$STOWAGE_TEST_NATS_URL}
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
cargo bench --bench ingest
