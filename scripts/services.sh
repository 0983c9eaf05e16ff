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
  if [ -n "${STARTED_PG_DIR:-}" ]; then
    runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl" \
      -D "$STARTED_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
  fi
}
