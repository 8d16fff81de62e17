#!/usr/bin/env bash
# ready.sh (installed as temporal-ready): the container's health check.
# Healthy means usable by gradeflow, not only listening: the cluster
# answers, the namespace accepts visibility queries, and every Gradeflow*
# search attribute is registered.
set -euo pipefail
export TEMPORAL_ADDRESS=127.0.0.1:7233
ns=${TEMPORAL_NAMESPACE:-default}
temporal operator cluster health >/dev/null
temporal workflow count --namespace "$ns" >/dev/null
have=$(temporal operator search-attribute list --namespace "$ns")
for a in GradeflowAssignment GradeflowStudent GradeflowStage GradeflowOutcome; do
  grep -qw "$a" <<<"$have"
done
