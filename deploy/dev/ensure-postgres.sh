#!/usr/bin/env bash
# ensure-postgres.sh: make sure the PostgreSQL server programs the embedded
# MongoDB-compatible server needs (initdb, postgres, pg_isready, psql) are
# installed. gradeflow-mongod runs its own private cluster under its data
# directory; no system PostgreSQL service is started or used. On Debian as
# root it installs postgresql-15; elsewhere it says what to install.
set -euo pipefail

log() { printf '[postgres] %s\n' "$*" >&2; }

for d in /usr/lib/postgresql/17/bin /usr/lib/postgresql/16/bin /usr/lib/postgresql/15/bin /usr/local/pgsql/bin; do
  if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
    exit 0
  fi
done

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing postgresql-15 from Debian packages (programs only; its system service stays off)"
  export DEBIAN_FRONTEND=noninteractive
  # The package's post-install script starts a system cluster unless
  # policy-rc.d forbids it; gradeflow does not want one running.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq postgresql-15 >/dev/null
  exit 0
fi
log "PostgreSQL 15 or later is needed (initdb and postgres). Install your distribution's postgresql package, then re-run."
exit 1
