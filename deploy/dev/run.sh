#!/usr/bin/env bash
# run.sh: bring up the whole gradeflow stack on this host with embedded
# defaults — Temporal dev server with Web UI, MongoDB (unless MONGODB_URI is
# set: a real mongo container where a registry is reachable, else the
# embedded offline substitute), workers and API — grade the bundled examples, print
# the table, and keep the stack up until Ctrl-C. Called by 'make run' once
# the binaries and images are built.
set -euo pipefail
cd "$(dirname "$0")/../.."

data=${GRADEFLOW_DATA:-.data}
bin=${GRADEFLOW_BIN:-bin}
api_addr=${GRADEFLOW_API_ADDR:-127.0.0.1:8080}
mkdir -p "$data/logs"
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export GRADEFLOW_WORKDIR=${GRADEFLOW_WORKDIR:-$PWD/$data/work}

log() { printf '[run] %s\n' "$*" >&2; }
pids=()
stop_all() {
  trap - EXIT INT TERM
  deploy/dev/scale.sh 0 >/dev/null 2>&1 || true
  if [ ${#pids[@]} -gt 0 ]; then
    log "stopping (draining workers)"
    # Reverse order: API and workers first, then the store and Temporal.
    for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
  fi
  if [ -n "${cleanup_mongo:-}" ]; then docker stop -t 20 gradeflow-dev-mongo >/dev/null 2>&1 || true; fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
wait_port() { # addr seconds what
  for _ in $(seq 1 $(($2 * 10))); do port_open "$1" && return 0; sleep 0.1; done
  log "$3 did not come up on $1; see $data/logs/"; exit 1
}

if port_open "$TEMPORAL_ADDRESS"; then
  log "using the Temporal server already on $TEMPORAL_ADDRESS"
else
  log "starting Temporal dev server (Web UI http://127.0.0.1:8233, DB $data/temporal.db)"
  deploy/dev/temporal.sh --port "${TEMPORAL_ADDRESS##*:}" --ui-port 8233 --db "$data/temporal.db" >"$data/logs/temporal.log" 2>&1 &
  pids+=($!)
  wait_port "$TEMPORAL_ADDRESS" 60 "Temporal"
  # Temporal keeps in-flight work and recent history; MongoDB is the
  # permanent record. A closed workflow stays this long for staff to look
  # at and reset in the Web UI, then Temporal deletes it.
  retention=${GRADEFLOW_TEMPORAL_RETENTION:-72h}
  for _ in $(seq 1 50); do
    "${TEMPORAL_CLI:-temporal}" operator namespace update --address "$TEMPORAL_ADDRESS" --namespace default \
      --retention "$retention" >/dev/null 2>&1 && break
    sleep 0.2
  done
  log "Temporal keeps closed workflows for $retention (GRADEFLOW_TEMPORAL_RETENTION); MongoDB keeps every grade"
fi

if [ -z "${MONGODB_URI:-}" ]; then
  listen=${GRADEFLOW_MONGO_LISTEN:-127.0.0.1:27017}
  export MONGODB_URI="mongodb://$listen/"
  if port_open "$listen"; then
    log "using the MongoDB server already on $listen"
  else
    mongo_image=${GRADEFLOW_MONGO_IMAGE:-mongo:7.0.14}
    if docker image inspect "$mongo_image" >/dev/null 2>&1 || timeout 20 docker pull -q "$mongo_image" >/dev/null 2>&1; then
      log "starting MongoDB ($mongo_image, data in $data/mongodb)"
      mkdir -p "$data/mongodb"
      docker rm -f gradeflow-dev-mongo >/dev/null 2>&1 || true
      docker run -d --name gradeflow-dev-mongo --network host -v "$(cd "$data" && pwd)/mongodb:/data/db" \
        "$mongo_image" --bind_ip 127.0.0.1 --port "${listen##*:}" >/dev/null
      cleanup_mongo=1
    else
      log "no registry reachable for $mongo_image: using the embedded offline substitute (FerretDB on a private PostgreSQL, $data/mongo)"
      "$bin/gradeflow-mongod" --listen "$listen" --dir "$data/mongo" >"$data/logs/mongod.log" 2>&1 &
      pids+=($!)
    fi
    wait_port "$listen" 60 "MongoDB"
  fi
else
  log "using MONGODB_URI"
fi

log "starting workers (sanity, execute, grade)"
"$bin/gradeflow-worker" >"$data/logs/worker.log" 2>&1 &
pids+=($!)
log "starting API on http://$api_addr"
GRADEFLOW_API_ADDR=$api_addr "$bin/gradeflow-api" >"$data/logs/api.log" 2>&1 &
pids+=($!)
wait_port "$api_addr" 30 "API"

log "grading the bundled examples"
"$bin/gradeflow-starter" examples examples/wordcount || log "some examples did not reach their documented outcome (see above)"
# topword: five tests (hidden, after_due, 3 reducers, a combiner counter
# check, a generated 12 MB data set); the table shows each test's score.
examples/topword/generate.py examples/topword/tests/large >/dev/null
"$bin/gradeflow-starter" examples examples/topword || log "some topword examples did not reach their documented outcome (see above)"

cat >&2 <<MSG

gradeflow is up:
  Temporal Web UI   http://127.0.0.1:8233  (filter: GradeflowStage="running")
  API               http://$api_addr/v1   (see README for tokens)
  Temporal          $TEMPORAL_ADDRESS
  MongoDB           $MONGODB_URI
  logs              $data/logs/
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
log "a component exited; see $data/logs/"
