#!/usr/bin/env bash
# deploy-test.sh: the compose deployment's acceptance test (make
# deploy-test, after make deploy-images): test/deploy brings up the stack
# of deploy/compose as project "gfdeploy" (and "gfdeploy-eval") on this
# machine's Docker engine, grades the bundled examples through the API,
# kills an execute replica mid-job, restarts the Temporal server mid-burst,
# reads the Web UI's filtered list, runs an evaluation-host project, and
# takes everything down with -v, checking nothing is left. It touches only
# its own projects' containers, networks and volumes, so it can share an
# engine with other tests.
# Prints the TIMING lines of the run and its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
# docker-compose 1.29 (Debian's package) is the tool; the v2 plugin is not
# needed. make test's validate.sh installs it too; deploy-test may run alone.
if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  else
    echo "deploy-test: docker-compose missing; install it (Debian: apt-get install docker-compose)" >&2; exit 1
  fi
fi
log=${GRADEFLOW_DEPLOY_LOG:-bin/deploy/deploy-test.log}
mkdir -p "$(dirname "$log")"
SECONDS=0
status=0
$GO test -count=1 -tags deploytest -timeout 30m -v -run TestComposeDeploy ./test/deploy/ >"$log" 2>&1 || status=$?
took=$SECONDS
if [ "$status" != 0 ]; then
  tail -150 "$log" >&2
  echo "deploy-test: FAILED after ${took}s (full log: $log)" >&2
  exit "$status"
fi
grep -E -- '--- (PASS|FAIL)|TIMING|UI lists|killed|ran on' "$log" | sed 's/^ *//' >&2
printf 'deploy-test: passed in %ss (the test alone; log: %s)\n' "$took" "$log" >&2
