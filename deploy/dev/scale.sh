#!/usr/bin/env bash
# scale.sh: set the number of extra execute-only worker processes on this
# host while the stack from 'make run' is up: scale.sh N. Scaling up starts
# processes that take tasks within a second; scaling down sends SIGTERM,
# which drains (running jobs finish, or are handed back after the stop
# timeout), so nothing is lost or graded twice.
set -euo pipefail
cd "$(dirname "$0")/../.."

want=${1:?usage: scale.sh N}
[[ "$want" =~ ^[0-9]+$ ]] || { echo "scale.sh: N must be a number" >&2; exit 2; }
data=${GRADEFLOW_DATA:-.data}
bin=${GRADEFLOW_BIN:-bin}
dir="$data/workers"
mkdir -p "$dir" "$data/logs"
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export MONGODB_URI=${MONGODB_URI:-mongodb://${GRADEFLOW_MONGO_LISTEN:-127.0.0.1:27017}/}
export GRADEFLOW_WORKDIR=${GRADEFLOW_WORKDIR:-$PWD/$data/work}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Forget processes that died.
for f in "$dir"/execute-*.pid; do [ -e "$f" ] && ! alive "$f" && rm -f "$f"; done

have=0
for f in "$dir"/execute-*.pid; do [ -e "$f" ] && have=$((have + 1)); done

i=0
while [ "$have" -lt "$want" ]; do
  i=$((i + 1))
  f="$dir/execute-$i.pid"
  alive "$f" && continue
  # Each process gets a workdir of its own: its input cache cleans up
  # unfinished fetches at start-up, which must not be another's.
  GRADEFLOW_QUEUES=execute GRADEFLOW_WORKDIR="$GRADEFLOW_WORKDIR/extra-$i" \
    nohup "$bin/gradeflow-worker" >>"$data/logs/worker-execute-$i.log" 2>&1 &
  echo $! >"$f"
  have=$((have + 1))
  echo "started execute worker $i (pid $!)"
done

stopping=()
while [ "$have" -gt "$want" ]; do
  f=$(ls "$dir"/execute-*.pid | sort -t- -k2 -n | tail -1)
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  rm -f "$f"
  stopping+=("$pid")
  have=$((have - 1))
  echo "draining execute worker $(basename "$f" .pid) (pid $pid)"
done
for pid in "${stopping[@]}"; do
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
done
echo "extra execute workers: $have"
