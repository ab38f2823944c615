#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (.ci/run):
#   scripts/test_postgres.sh start DIR   initdb in DIR as a non-root user, start it on
#                                        127.0.0.1 on a free port; prints its URL
#   scripts/test_postgres.sh restart DIR restart it (every connection drops; same port)
#   scripts/test_postgres.sh stop DIR    stop it
# The tests read the URL from CVM_TEST_POSTGRES and make a database of their own each.
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ]; then
  echo "no PostgreSQL server installed (apt-get install postgresql)" >&2
  exit 1
fi
# initdb refuses root: run the server as Debian's postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U cvm --auth=trust -E UTF8 >"$dir/initdb.log"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
    echo "postgres://cvm@127.0.0.1:$port/postgres"
    ;;
  restart)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w restart >/dev/null
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
