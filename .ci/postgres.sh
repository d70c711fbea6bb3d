#!/usr/bin/env bash
# postgres.sh - make sure PostgreSQL answers for the store tests: a server on
# 127.0.0.1:5432 that lets user postgres in without a password (trust) and has
# a database `test`.
#
# The python-svc machine kind normally starts exactly that before a session,
# but CI must not rely on it: this starts a stopped server, and installs
# Debian's postgresql when it is missing. Run as root. Idempotent; touches
# nothing when everything is already in place.
#
# Settings (for trying it on a scratch cluster): CI_PG_PORT (default 5432),
# CI_PG_CLUSTER (Debian cluster name, default main), CI_PG_DB (default test),
# CI_PG_WAIT (seconds to wait for the server, default 60).
set -euo pipefail

PORT="${CI_PG_PORT:-5432}"
CLUSTER="${CI_PG_CLUSTER:-main}"
DB="${CI_PG_DB:-test}"
WAIT="${CI_PG_WAIT:-60}"
HOST=127.0.0.1

say() { echo "ci-postgres: $*" >&2; }
die() { echo "ci-postgres: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it may install and start PostgreSQL); run it with sudo"

answers() { pg_isready -q -h "$HOST" -p "$PORT" -t 2; }
psql_q() { psql -X -q -A -t -h "$HOST" -p "$PORT" -U postgres -d postgres -c "$1" </dev/null; }
newest_version() {
  [ -d /etc/postgresql ] || return 0
  find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1
}

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(newest_version)" ]; then
  say "PostgreSQL is not installed - installing Debian's postgresql ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq postgresql; } >/tmp/ci-postgres-apt.log 2>&1; then
    tail -n 20 /tmp/ci-postgres-apt.log >&2
    die "apt-get install postgresql failed (log: /tmp/ci-postgres-apt.log)"
  fi
fi

VERSION="$(newest_version)"
[ -n "$VERSION" ] || die "no cluster configuration under /etc/postgresql after installing postgresql"
if [ ! -d "/etc/postgresql/$VERSION/$CLUSTER" ]; then
  say "creating PostgreSQL $VERSION cluster '$CLUSTER' on port $PORT"
  pg_createcluster --port="$PORT" "$VERSION" "$CLUSTER" >/dev/null
fi

if ! answers; then
  say "starting PostgreSQL $VERSION cluster '$CLUSTER'"
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start ||
    die "pg_ctlcluster $VERSION $CLUSTER start failed (see /var/log/postgresql/postgresql-$VERSION-$CLUSTER.log)"
  deadline=$(( $(date +%s) + WAIT ))
  until answers; do
    [ "$(date +%s)" -lt "$deadline" ] ||
      die "PostgreSQL does not answer on $HOST:$PORT after ${WAIT}s (see /var/log/postgresql/postgresql-$VERSION-$CLUSTER.log)"
    sleep 0.2
  done
fi

# A new Debian cluster asks for a password over TCP; the tests connect as
# postgres without one, as on the machine image, so trust loopback connections.
if ! psql_q 'SELECT 1' >/dev/null 2>&1; then
  HBA="$(runuser -u postgres -- psql -X -A -t -p "$PORT" -c 'SHOW hba_file' </dev/null)" ||
    die "cannot reach PostgreSQL on port $PORT through its local socket to configure trust"
  say "allowing passwordless loopback connections in $HBA"
  { printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'; cat "$HBA"; } > "$HBA.ci-new"
  chown --reference="$HBA" "$HBA.ci-new"; chmod --reference="$HBA" "$HBA.ci-new"
  mv "$HBA.ci-new" "$HBA"
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" reload
  psql_q 'SELECT 1' >/dev/null || die "user postgres still cannot connect to $HOST:$PORT without a password (see $HBA)"
fi

if [ "$(psql_q "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  say "creating database $DB"
  psql_q "CREATE DATABASE \"$DB\"" >/dev/null
fi

say "ready: postgresql://postgres@$HOST:$PORT/$DB ($(psql_q 'SHOW server_version'))"
