#!/usr/bin/env bash
# Janitor purge benchmark: 100,000 trashed files (rows on PostgreSQL, objects
# on SeaweedFS) purged by the janitor. Starts the services if they are down.
# STOWAGE_BENCH_FILES=N for another count.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
ensure_postgres
ensure_nats
ensure_seaweedfs
trap stop_started_services EXIT
export STOWAGE_BENCH_DATABASE_URL=${STOWAGE_BENCH_DATABASE_URL:-$STOWAGE_TEST_DATABASE_URL}
export STOWAGE_BENCH_S3_ENDPOINT=${STOWAGE_BENCH_S3_ENDPOINT:-$STOWAGE_TEST_S3_ENDPOINT}
export STOWAGE_BENCH_S3_ACCESS_KEY=${STOWAGE_BENCH_S3_ACCESS_KEY:-$STOWAGE_TEST_S3_ACCESS_KEY}
export STOWAGE_BENCH_S3_SECRET_KEY=${STOWAGE_BENCH_S3_SECRET_KEY:-$STOWAGE_TEST_S3_SECRET_KEY}
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
cargo bench --bench purge
