#!/usr/bin/env bash
# A throwaway Postgres cluster for the store tests.
#
#   eval "$(bash .ci/postgres.sh start)"   # prints: export ORCHESTRION_TEST_PG_DSN=...
#   bash .ci/postgres.sh stop              # stops it and deletes its files
#
# start installs Debian's postgresql if no server binaries are found, creates a
# cluster in a temp dir (as the `postgres` user when run as root: the server
# refuses to run as root), listens on 127.0.0.1 on a free port from 55432 up and on
# a unix socket in that dir, and creates the database `orchestrion_test`.  It is
# idempotent: a cluster that is already running is reused; a dead one is replaced.
# Only the export line goes to stdout; everything else goes to stderr.
#
# Environment: ORCHESTRION_PG_DIR (default /tmp/orchestrion-pg-$UID),
# ORCHESTRION_PG_PORT (first port tried, default 55432).
set -euo pipefail

dir="${ORCHESTRION_PG_DIR:-/tmp/orchestrion-pg-$(id -u)}"
data="$dir/data"
db=orchestrion_test

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$found" && -x "$found/pg_ctl" && -x "$found/initdb" ]]; then
    echo "$found"
  fi
}

install_postgres() {
  if [[ "$(id -u)" != 0 ]]; then
    log "no Postgres server found and not root: install Debian's postgresql package"
    exit 1
  fi
  log "installing Debian's postgresql (no server binaries found)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql >&2
}

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

ensure_owner() {
  if [[ "$(id -u)" == 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port="${ORCHESTRION_PG_PORT:-55432}"
  while port_in_use "$port"; do
    port=$((port + 1))
  done
  echo "$port"
}

print_env() {
  local port
  port="$(cat "$dir/port")"
  echo "export ORCHESTRION_TEST_PG_DSN='postgresql://postgres@127.0.0.1:$port/$db'"
  echo "export ORCHESTRION_TEST_PG_SOCKET_DSN='postgresql://postgres@/$db?host=$dir&port=$port'"
}

# Up and answering, not merely a pid file (a killed server can leave one behind).
running() {
  local bindir="$1"
  [[ -f "$dir/port" && -f "$data/PG_VERSION" ]] \
    && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 \
    && as_owner "$bindir/pg_isready" -q -h "$dir" -p "$(cat "$dir/port")" -d "$db" -t 3
}

start() {
  local bindir port
  bindir="$(find_bindir)"
  if [[ -z "$bindir" ]]; then
    install_postgres
    bindir="$(find_bindir)"
    [[ -n "$bindir" ]] || { log "postgresql installed but no pg_ctl found"; exit 1; }
  fi
  ensure_owner
  if running "$bindir"; then
    log "reusing the cluster running in $dir"
    print_env
    return
  fi
  if [[ -f "$data/PG_VERSION" ]]; then  # half-started earlier: make sure it is down
    as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"  # a dead cluster's files (e.g. from a killed session): start fresh
  mkdir -p "$dir"
  if [[ "$(id -u)" == 0 ]]; then chown postgres: "$dir"; fi
  chmod 700 "$dir"
  port="$(free_port)"
  log "initdb in $data ($bindir)"
  as_owner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  log "starting on 127.0.0.1:$port and a unix socket in $dir"
  as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=60 -c shared_buffers=32MB" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$bindir/createdb" -h "$dir" -p "$port" -U postgres "$db" >&2
  echo "$port" > "$dir/port"
  print_env
}

stop() {
  local bindir
  bindir="$(find_bindir)"
  if [[ -n "$bindir" && -f "$data/PG_VERSION" ]]; then
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
  log "stopped and removed $dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
