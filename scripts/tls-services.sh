#!/usr/bin/env bash
# The services suite with PostgreSQL and NATS speaking only TLS: a PKI
# of its own (tests/fixtures/pki.sh), a PostgreSQL cluster whose TCP
# connections must be TLS (hostssl only; clients use sslmode=verify-full
# with the CA), and a NATS server with JetStream that requires TLS (the
# servers and the tests' own NATS clients trust the CA through
# STOWAGE_TEST_NATS_CA). S3 stays where .ci/run put it.
#
# Usage: scripts/tls-services.sh [TEST FILTER ...]
#   (default: every services:: variant, and the services-only suites for
#   instances, the outbox and the circuits)
# Needs: openssl, PostgreSQL's initdb and pg_ctl, nats-server, and the
# STOWAGE_TEST_S3_* variables (source scripts/services.sh and run
# ensure_seaweedfs first, as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${STOWAGE_TEST_S3_ENDPOINT:?run ensure_seaweedfs (scripts/services.sh) first}"

dir=$(mktemp -d /tmp/stowage-tls-services.XXXXXX)
chmod 755 "$dir"
pg_pid_dir=
nats_pid=
cleanup() {
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true
  if [ -n "$pg_pid_dir" ]; then
    as_postgres pg_ctl -D "$pg_pid_dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# PostgreSQL refuses to run as root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_bin() { # a PostgreSQL tool, from PATH or the newest installed version
  command -v "$1" 2>/dev/null || echo "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/$1"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir "$dir/pki"
bash tests/fixtures/pki.sh "$dir/pki" >/dev/null
ca=$dir/pki/ca.pem
chmod 644 "$dir"/pki/*.pem

# PostgreSQL: TLS on, and only TLS over TCP.
pg=$dir/pg
mkdir "$pg"
cp "$dir/pki/server.pem" "$dir/pki/server.key" "$pg/"
chmod 600 "$pg/server.key"
[ "$(id -u)" = 0 ] && chown -R postgres "$pg"
as_postgres "$(pg_bin initdb)" -D "$pg/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n' > "$pg/data/pg_hba.conf"
[ "$(id -u)" = 0 ] && chown postgres "$pg/data/pg_hba.conf"
pg_port=$(free_port)
as_postgres "$(pg_bin pg_ctl)" -D "$pg/data" -l "$pg/log" -w start -o \
  "-c port=$pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pg \
   -c ssl=on -c ssl_cert_file=$pg/server.pem -c ssl_key_file=$pg/server.key \
   -c fsync=off -c synchronous_commit=off -c max_connections=300" >/dev/null
pg_pid_dir=$pg
# Plain TCP is refused: the suite below can only have passed over TLS.
if psql "postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable" -tAc 'SELECT 1' >/dev/null 2>&1; then
  echo "tls-services: PostgreSQL accepted a connection without TLS" >&2
  exit 1
fi
psql "postgres://postgres@localhost:$pg_port/postgres?sslmode=verify-full&sslrootcert=$ca" -qc 'CREATE DATABASE test'

# NATS with JetStream, TLS required.
nats_port=$(free_port)
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/nats" \
  --tls --tlscert "$dir/pki/server.pem" --tlskey "$dir/pki/server.key" >"$dir/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 1 50); do
  (echo > "/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
  sleep 0.2
done

export STOWAGE_TEST_DATABASE_URL="postgres://postgres@localhost:$pg_port/test?sslmode=verify-full&sslrootcert=$ca"
export STOWAGE_TEST_NATS_URL="tls://127.0.0.1:$nats_port"
export STOWAGE_TEST_NATS_CA=$ca
if [ $# -eq 0 ]; then
  set -- services:: instances:: outbox:: circuit::
fi
echo "== the services suite over TLS: PostgreSQL on $pg_port (verify-full), NATS on $nats_port (tls://)"
cargo test --test api -- "$@"
