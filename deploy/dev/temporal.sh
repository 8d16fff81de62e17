#!/usr/bin/env bash
# temporal.sh: run the Temporal dev server (with its Web UI) tuned for
# gradeflow, in the foreground. make run and the end-to-end tests both start
# it through this script, so the tuning lives in one place.
#
# Usage: temporal.sh [--port N] [--ui-port N] [--db FILE] [--headless]
#   --db FILE   persist to this SQLite file (default: in memory)
#
# Tuning (measured, see README "Performance"): the dev server runs one
# history shard whose transfer-queue poller is capped at 20 polls/s by
# default, so every workflow/activity task waits ~50 ms for its turn; with
# one task-queue partition the matching service never parks a task on a
# partition that no poller watches (that showed as 2 s stalls). Eager
# activity execution hands compare and record (which share the workflow's
# task queue) to the worker in the reply to its workflow task.
#
# Priority and fairness (server 1.29.1; docs "Task Queue Priority and
# Fairness"): matching.enableFairness switches task queues to the fair
# matcher (it implies matching.useNewMatcher, the priority-aware one, which
# is also set so that priority holds should fairness be turned off).
# Workflows carry PriorityKey and FairnessKey (contract.PriorityOf): live
# before regrade, and round robin between students within live work. The
# fairness counter keeps exact per-key counts for MapLimit keys before it
# falls back to a count-min sketch; 100 (the default) is less than the
# students of one deadline, so it is raised. GRADEFLOW_FAIRNESS=off starts
# the server without fairness (priority only), for the side-by-side bench.
set -euo pipefail

temporal=${TEMPORAL_CLI:-}
if [ -z "$temporal" ]; then
  temporal=$(command -v temporal || true)
  [ -n "$temporal" ] || temporal="$(go env GOPATH)/bin/temporal"
fi
[ -x "$temporal" ] || { echo "temporal CLI not found: run 'make tools'" >&2; exit 1; }

port=7233 ui_port=8233 db="" headless=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --ui-port) ui_port=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --headless) headless=--headless; shift ;;
    *) echo "temporal.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

args=(server start-dev --ip 127.0.0.1 --port "$port" --ui-port "$ui_port" --namespace default
  --log-level error
  --dynamic-config-value history.transferProcessorMaxPollRPS=1000
  --dynamic-config-value history.timerProcessorMaxPollRPS=1000
  --dynamic-config-value matching.numTaskqueueReadPartitions=1
  --dynamic-config-value matching.numTaskqueueWritePartitions=1
  --dynamic-config-value system.enableActivityEagerExecution=true
  --dynamic-config-value frontend.namespaceRPS=100000
  --dynamic-config-value frontend.rps=100000
  --dynamic-config-value matching.useNewMatcher=true
  --search-attribute GradeflowAssignment=Keyword
  --search-attribute GradeflowStudent=Keyword
  --search-attribute GradeflowStage=Keyword
  --search-attribute GradeflowOutcome=Keyword)
if [ "${GRADEFLOW_FAIRNESS:-on}" != off ]; then
  args+=(--dynamic-config-value matching.enableFairness=true
    --dynamic-config-value 'matching.fairnessCounter={"MapLimit":10000}')
fi
if [ -n "$db" ]; then
  mkdir -p "$(dirname "$db")"
  args+=(--db-filename "$db" --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal)
fi
[ -n "$headless" ] && args+=("$headless")
exec "$temporal" "${args[@]}"
