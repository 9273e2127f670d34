#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary
# folder, on a free port), with ORTHANC_RIS_TEST_DATABASE_URL pointing at it.
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
dir=$(mktemp -d /tmp/orthanc-ris-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" -eq 0 ]; then  # initdb refuses to run as root
  chown postgres: "$dir"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"${as_pg[@]}" "$PGBIN/initdb" -D "$dir/data" -U ris --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -w -l "$dir/server.log" \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
export ORTHANC_RIS_TEST_DATABASE_URL="postgresql+psycopg://ris@127.0.0.1:$port/postgres"
"$@"
