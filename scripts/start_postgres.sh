#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL server for the prediction-log tests and print its URL.
#
#   scripts/start_postgres.sh [PORT]        # default port 55432
#   export TEXTGATE_TEST_POSTGRES_URL="$(scripts/start_postgres.sh | tail -n 1)"
#
# Idempotent: a second call finds the server running and only prints the URL again.
# The server listens on 127.0.0.1 only, with trust authentication for loopback and its own
# Unix socket; its files live under /tmp/textgate-pg-PORT (delete the folder to start over,
# after `pg_ctl -D /tmp/textgate-pg-PORT/data stop`). Debian's `postgresql` package is
# installed with apt-get only when no PostgreSQL server binaries are found.
# Progress goes to stderr; the URL is the last (and only) line on stdout.
set -euo pipefail

PORT="${1:-55432}"
DB=textgate
SUPERUSER=postgres
ROOT="/tmp/textgate-pg-${PORT}"
DATA="${ROOT}/data"
LOG="${ROOT}/server.log"
URL="postgresql://${SUPERUSER}@127.0.0.1:${PORT}/${DB}"

say() { echo "start_postgres: $*" >&2; }

case "$PORT" in
    '' | *[!0-9]*) say "the port must be a number, got '$PORT'"; exit 2 ;;
esac

# Server binaries: initdb/pg_ctl on PATH (resolved to their real folder, which also holds
# psql), else the newest Debian /usr/lib/postgresql/N/bin.
find_bindir() {
    local initdb dir
    if initdb="$(command -v initdb 2>/dev/null)"; then
        dir="$(dirname "$(readlink -f "$initdb")")"
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"; return 0
        fi
    done
    return 1
}

if ! BINDIR="$(find_bindir)"; then
    if [ "$(id -u)" -ne 0 ]; then
        say "no PostgreSQL server binaries found; run as root to apt-get install postgresql"; exit 1
    fi
    say "no PostgreSQL server binaries found; installing Debian's postgresql package"
    apt-get update -qq >&2
    # Debian's package would create and start a `main` cluster on port 5432; we only want the
    # binaries (createcluster.conf includes this folder; a file of our own avoids a conffile prompt).
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/textgate.conf
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
    BINDIR="$(find_bindir)" || { say "postgresql installed but no initdb found"; exit 1; }
fi
PSQL="$BINDIR/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql)"

# PostgreSQL refuses to run as root: as root, run it as the `postgres` OS user.
if [ "$(id -u)" -eq 0 ]; then
    if ! id -u postgres >/dev/null 2>&1; then
        say "creating the postgres OS user"
        useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
    fi
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
cd /tmp  # the postgres user may not be allowed into the caller's folder

mkdir -p "$ROOT"
chmod 700 "$ROOT"
[ "$(id -u)" -ne 0 ] || chown postgres: "$ROOT"

if [ ! -s "$DATA/PG_VERSION" ]; then
    say "initdb $DATA ($("$BINDIR/postgres" --version))"
    rm -rf "$DATA"
    as_pg "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" -A trust -E UTF8 --no-locale >"$ROOT/initdb.log" 2>&1 \
        || { cat "$ROOT/initdb.log" >&2; exit 1; }
    # Loopback only: nothing listens on or accepts another address.
    cat >"$DATA/pg_hba.conf" <<HBA
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
HBA
    cat >>"$DATA/postgresql.conf" <<CONF

# textgate test server (scripts/start_postgres.sh)
listen_addresses = '127.0.0.1'
port = ${PORT}
unix_socket_directories = '${ROOT}'
CONF
fi

if as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "server already running on 127.0.0.1:${PORT}"
else
    say "starting server on 127.0.0.1:${PORT} (log: $LOG)"
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >&2 \
        || { tail -n 20 "$LOG" >&2; exit 1; }
fi

exists="$("$PSQL" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '${DB}'")"
if [ "$exists" != 1 ]; then
    say "creating database ${DB}"
    "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -qc "CREATE DATABASE ${DB}" >&2
fi

echo "$URL"
