#!/usr/bin/env bash
# Folders at scale on SQLite and PostgreSQL (benches/tree.rs): children
# pages of a 100,000-child folder, a 30-deep path, a role 30 levels down,
# moving the big folder. Starts PostgreSQL if it is down.
# STOWAGE_BENCH_CHILDREN=N for another size.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
ensure_postgres
trap stop_started_services EXIT
export STOWAGE_BENCH_DATABASE_URL=${STOWAGE_BENCH_DATABASE_URL:-$STOWAGE_TEST_DATABASE_URL}
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
cargo bench --bench tree
