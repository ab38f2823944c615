#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (.ci/run):
#   scripts/test_postgres.sh start DIR   initdb in DIR as a non-root user, start it on
#                                        127.0.0.1 on a free port, TLS on with a
#                                        certificate from a throwaway CA (DIR/tls/ca.pem;
#                                        DIR/tls/other-ca.pem signed nothing); prints its URL
#   scripts/test_postgres.sh restart DIR restart it (every connection drops; same port)
#   scripts/test_postgres.sh stop DIR    stop it
# The tests read the URL from CVM_TEST_POSTGRES and make a database of their own each.
set -euo pipefail
# A caller's umask must not reach initdb: an in-process test server binds its
# socket under umask 0177 for a moment, and a data dir made then is unusable.
umask 0022
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
    # A CA, the server's certificate for 127.0.0.1 signed by it, and a CA that signed nothing.
    tls="$dir/tls"
    mkdir -p "$tls"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 7 -subj "/CN=cvm test CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout "$tls/other-ca.key" -out "$tls/other-ca.pem" -days 7 -subj "/CN=other CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req "${ec[@]}" -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
      -out "$tls/server.pem" -days 7 -extfile "$tls/server.ext" 2>/dev/null
    chmod 600 "$tls/server.key"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$tls"; fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c ssl=on \
          -c ssl_cert_file=$tls/server.pem -c ssl_key_file=$tls/server.key" start >/dev/null
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
