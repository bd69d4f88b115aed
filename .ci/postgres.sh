#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback for the distributed-study tests.
#   .ci/postgres.sh install            install Debian's postgresql package if missing (and stop
#                                      the system cluster the package may start)
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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
install)
    if ! bindir >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
        # The package may start its own cluster on 5432; the tests use a private one.
        if command -v pg_lsclusters >/dev/null; then
            pg_lsclusters -h | awk '$4 == "online" {print $1, $2}' | while read -r version cluster; do
                pg_ctlcluster "$version" "$cluster" stop || true
            done
        fi
    fi
    bindir >/dev/null
    ;;
start)
    dir=${2:?data directory}
    bin=$(bindir)
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres "$dir"
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # A free port may be taken between the check and the bind: try a few.
    for attempt in 1 2 3; do
        port=${3:-$(free_port)}
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" \
            start >/dev/null; then
            as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres hybridrank
            echo "postgresql://postgres@127.0.0.1:$port/hybridrank"
            exit 0
        fi
        [[ -n "${3:-}" ]] && break
    done
    echo "PostgreSQL did not start; its log:" >&2
    cat "$dir/server.log" >&2 || true
    exit 1
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
