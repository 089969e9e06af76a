#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, on a loopback port.
#
#   . .ci/postgres.sh      # exports HOOPAI_TEST_POSTGRES_URL (and prints it)
#
# Installs PostgreSQL with apt if it is absent, creates a cluster in a
# temporary folder owned by the `postgres` user (when run as root) or by the
# caller, starts it on 127.0.0.1:${HOOPAI_PG_PORT:-55432} with trust
# authentication from loopback only, and creates the database `hoopai_test`.
# Idempotent: a server already answering on that port is reused.
# `.ci/postgres.sh stop` stops the server and removes its folder.

hoopai_pg_main() {
    set -euo pipefail
    local port="${HOOPAI_PG_PORT:-55432}"
    local dir="${TMPDIR:-/tmp}/hoopai-postgres-${port}"
    local db="hoopai_test"

    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "postgres.sh: installing PostgreSQL with apt" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi

    # Run as the cluster's owner: `postgres` when we are root (initdb refuses root).
    local as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
        as=(runuser -u postgres --)
    fi

    if [ "${1:-}" = stop ]; then
        if [ -d "$dir/data" ]; then
            "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
        fi
        rm -rf "$dir"
        return 0
    fi

    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        echo "postgres.sh: reusing the server on 127.0.0.1:$port" >&2
    else
        if [ -f "$dir/data/postmaster.pid" ]; then
            # A server that died: start afresh.
            "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        fi
        rm -rf "$dir"
        mkdir -p "$dir"
        [ "${#as[@]}" -eq 0 ] || chown postgres: "$dir"
        chmod 700 "$dir"
        "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; return 1; }
        "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >&2 || { cat "$dir/server.log" >&2; return 1; }
        export HOOPAI_PG_STARTED=1
        echo "postgres.sh: started PostgreSQL ($("$bin/postgres" --version)) on 127.0.0.1:$port, data in $dir" >&2
    fi

    if [ "$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
        "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
    HOOPAI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/$db"
    export HOOPAI_TEST_POSTGRES_URL
    echo "HOOPAI_TEST_POSTGRES_URL=$HOOPAI_TEST_POSTGRES_URL"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    hoopai_pg_main "$@"
else
    # Sourced: keep the caller's shell options. They are read here, in this
    # shell: inside a command substitution bash clears errexit, and restoring
    # what `$(set +o)` printed would turn the caller's `set -e` off.
    hoopai_pg_e=0 hoopai_pg_u=0 hoopai_pg_p=0
    if [[ -o errexit ]]; then hoopai_pg_e=1; fi
    if [[ -o nounset ]]; then hoopai_pg_u=1; fi
    if [[ -o pipefail ]]; then hoopai_pg_p=1; fi
    hoopai_pg_main "$@"
    hoopai_pg_status=$?
    if [ "$hoopai_pg_e" = 0 ]; then set +e; fi
    if [ "$hoopai_pg_u" = 0 ]; then set +u; fi
    if [ "$hoopai_pg_p" = 0 ]; then set +o pipefail; fi
    unset hoopai_pg_e hoopai_pg_u hoopai_pg_p
    # shellcheck disable=SC2317
    return "$hoopai_pg_status" 2>/dev/null || true
fi
