#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback for the distributed-study tests.
#   .ci/postgres.sh install            install Debian's postgresql package if missing
#   .ci/postgres.sh start DIR [PORT]   initdb in DIR, start on 127.0.0.1:PORT (default: a free
#                                      port), print the URL
#   .ci/postgres.sh stop DIR           stop it (fast shutdown)
# As root the server runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$d" && -x "$d/initdb" ]] || { echo "PostgreSQL server binaries not found (run: $0 install)" >&2; return 1; }
    echo "$d"
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
install)
    if ! bindir >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
    fi
    bindir >/dev/null
    ;;
start)
    dir=${2:?data directory}
    port=${3:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    bin=$(bindir)
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres "$dir"
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres hybridrank
    echo "postgresql://postgres@127.0.0.1:$port/hybridrank"
    ;;
stop)
    dir=${2:?data directory}
    bin=$(bindir)
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
*)
    echo "usage: $0 install | start DIR [PORT] | stop DIR" >&2
    exit 2
    ;;
esac
