#!/usr/bin/env bash
# entrypoint.sh: initialise PGDATA on first start (superuser POSTGRES_USER
# with POSTGRES_PASSWORD, password logins from the network), then run
# PostgreSQL in the foreground. Temporal's databases are created by
# temporal-setup, not here.
set -euo pipefail
user=${POSTGRES_USER:-postgres}
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set (see deploy/compose/gradeflow.env.example)}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # C.UTF-8 is built into glibc: no locale package needed.
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
exec postgres -c listen_addresses='*' "$@"
