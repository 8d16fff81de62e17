#!/usr/bin/env bash
# healthcheck.sh (installed as gradeflow-healthcheck): the compose health
# check of gradeflow's programs.
#   gradeflow-healthcheck api     the API answers /readyz (Temporal and
#                                 MongoDB reachable from it)
#   gradeflow-healthcheck worker  Temporal lists this container as a poller
#                                 of every queue in GRADEFLOW_QUEUES
# The worker's identity is <pid>@<hostname> (workers/run.go), and a
# container's hostname is its own, so a poller entry ending in @$(hostname)
# is this container's worker.
set -euo pipefail

case ${1:-} in
  api)
    addr=${GRADEFLOW_API_ADDR:-127.0.0.1:8080}
    exec python3 - "http://127.0.0.1:${addr##*:}/readyz" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=4) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    ;;
  worker)
    me="@$(hostname)\""
    # The CLI's gRPC (1.72) looks up a TXT record of the host name before it
    # connects, which hangs where Docker's DNS cannot reach upstream (see
    # compose.yaml); an address does not.
    addr=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
    host=${addr%:*}
    ip=$(getent ahostsv4 "$host" | awk 'NR == 1 {print $1}')
    addr=${ip:-$host}:${addr##*:}
    IFS=, read -ra queues <<<"${GRADEFLOW_QUEUES:-sanity,execute,grade}"
    for q in "${queues[@]}"; do
      q=${q// /}
      temporal task-queue describe --address "$addr" \
        --namespace "${TEMPORAL_NAMESPACE:-default}" --task-queue "gradeflow-$q" -o json | grep -qF "$me"
    done
    ;;
  *) echo "usage: gradeflow-healthcheck api|worker" >&2; exit 2 ;;
esac
