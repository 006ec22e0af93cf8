#!/usr/bin/env bash
# with-postgres.sh CMD...: run CMD with a PostgreSQL server answering at $DATABASE_URL's host and port.
# If one answers already, it is used as is. Otherwise this script starts one - the Debian cluster through
# pg_ctlcluster when there is one, else a throwaway cluster under target/pg (initdb as the postgres user,
# installing Debian's postgresql package first if no initdb exists) - and stops what it started when CMD ends.
set -euo pipefail
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/recon}"
export DATABASE_URL
hostport=${DATABASE_URL#*@}; hostport=${hostport%%/*}
HOST=${hostport%%:*}; PORT=${hostport##*:}; [ "$PORT" = "$hostport" ] && PORT=5432
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
started=""

answers() {
  if command -v pg_isready >/dev/null 2>&1; then pg_isready -q -h "$HOST" -p "$PORT"; else (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; fi
}
wait_ready() { for _ in $(seq 1 60); do answers && return 0; sleep 0.5; done; return 1; }

stop() {
  case "$started" in
    cluster:*) echo "with-postgres: stopping the cluster it started (${started#cluster:})" >&2
               pg_ctlcluster --skip-systemctl-redirect ${started#cluster:} stop || true ;;
    dir:*)     echo "with-postgres: stopping the server it started in ${started#dir:}" >&2
               su postgres -s /bin/sh -c "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/pg_ctl -D '${started#dir:}' -m fast -w stop" >/dev/null || true ;;
  esac
}
trap stop EXIT

if ! answers; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    echo "with-postgres: starting PostgreSQL cluster $ver/main" >&2
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start && started="cluster:$ver main"
    wait_ready || true
  fi
fi
if ! answers; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bin" ]; then
    echo "with-postgres: installing Debian's postgresql package" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || { echo "with-postgres: cannot install PostgreSQL; start one and set DATABASE_URL" >&2; exit 2; }
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  data=$ROOT/target/pg
  mkdir -p "$ROOT/target"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"; mkdir -p "$data"; chown postgres "$data" 2>/dev/null || true
    su postgres -s /bin/sh -c "$bin/initdb -D '$data' -U postgres --auth=trust" >/dev/null
  fi
  echo "with-postgres: starting a local server in $data on $HOST:$PORT" >&2
  su postgres -s /bin/sh -c "$bin/pg_ctl -D '$data' -l '$data/server.log' -o '-c listen_addresses=$HOST -p $PORT -k $data' -w start" >/dev/null
  started="dir:$data"
  wait_ready
fi
"$@"
