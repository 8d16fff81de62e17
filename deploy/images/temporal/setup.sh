#!/usr/bin/env bash
# setup.sh (installed as temporal-setup): the one-shot schema setup of the
# compose stack. Creates Temporal's two PostgreSQL databases and brings
# their schemas to the version this server binary embeds. Safe to run again:
# a database whose schema exists is only updated, never reset.
set -euo pipefail

export SQL_PLUGIN=postgres12
export SQL_HOST=${POSTGRES_HOST:-postgres}
export SQL_PORT=${POSTGRES_PORT:-5432}
export SQL_USER=${POSTGRES_USER:-temporal}
# The password travels in SQL_PASSWORD, not on a command line (ps shows those).
export SQL_PASSWORD=${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}
log() { printf '[temporal-setup] %s\n' "$*" >&2; }

# Compose starts this after PostgreSQL's health check passes; a manual run
# may still race its start, so wait for the port a little.
for i in $(seq 1 60); do
  (exec 3<>"/dev/tcp/$SQL_HOST/$SQL_PORT") 2>/dev/null && break
  [ "$i" = 60 ] && { log "PostgreSQL at $SQL_HOST:$SQL_PORT does not answer"; exit 1; }
  sleep 1
done

# quiet CMD...: run CMD, showing its (verbose) output only when it fails.
quiet() {
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

setup() { # database schema-name
  local db=$1 schema=$2 out
  # update-schema fails on a database without Temporal's version table:
  # only then is the schema created from version 0.0.
  if out=$(temporal-sql-tool --db "$db" update-schema --schema-name "$schema" 2>&1); then
    log "$db: schema up to date"
    return
  fi
  if ! grep -q 'does not exist' <<<"$out"; then
    printf '%s\n' "$out" >&2
    log "$db: update-schema failed"
    return 1
  fi
  log "$db: creating database and schema"
  # (an empty database left by an interrupted setup already exists: fine)
  temporal-sql-tool --db "$db" create-database >/dev/null 2>&1 || true
  quiet temporal-sql-tool --db "$db" setup-schema -v 0.0
  quiet temporal-sql-tool --db "$db" update-schema --schema-name "$schema"
  log "$db: schema created"
}

setup "${TEMPORAL_DB:-temporal}" postgresql/v12/temporal
setup "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}" postgresql/v12/visibility
