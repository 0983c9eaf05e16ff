#!/usr/bin/env bash
# tus upload benchmark: Stowage (embedded default, release build) side by side
# with rustus, tus-node-server, an nginx WebDAV PUT and dd, in one run, with
# the shared harness (../shared/bench/tus-peers.sh): 1 GiB in 8 MiB and
# 64 MiB PATCHes and 200 uploads of 64 KiB, hot and cold page cache, server
# CPU seconds and peak RSS, sha256 of every stored file checked.
#
# Usage: bench/tus-bench.sh            (ROUNDS=3 by default; WORK as the harness)
#   PEERS=../shared/bench/tus-peers.sh  where the shared harness is
#   SERVERS=stowage,rustus,tusnode,nginx  TESTS=big8,big64,small
# Results: $WORK/summary.txt and $WORK/results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/bench/tus-peers.sh}
export WORK=${WORK:-$(dirname "$(mktemp -u)")/peerbench}
export ROUNDS=${ROUNDS:-3}
export SERVERS=${SERVERS-stowage,rustus,tusnode,nginx}
export TESTS=${TESTS-big8,big64,small}
export PHYS=${PHYS-dd_fsync,dd_nofsync,dd_fsync_256k,sha256_openssl}

cargo build --release --quiet
export STOWAGE_BIN=$PWD/target/release/stowage
bash "$PEERS" install
bash "$PEERS" files
bash "$PEERS" source
bash "$PEERS" versions
[ -f "$WORK/results.jsonl" ] && mv "$WORK/results.jsonl" "$WORK/results-$(date +%s).jsonl"
"$WORK/venv/bin/python" bench/tus_stowage.py --rounds "$ROUNDS" --servers "$SERVERS" \
  --tests "$TESTS" --phys "$PHYS" | tee "$WORK/summary.txt"
