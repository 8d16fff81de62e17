#!/usr/bin/env bash
# register.sh (installed as temporal-register): create the namespace and
# the Gradeflow* search attributes on the local Temporal server once it
# answers. Idempotent: what exists is left alone. The names and types are
# those of contract/names.go (contract.SearchAttributeNames, all Keyword);
# test/deployenv checks this list (and ready.sh's) against that file.
set -euo pipefail

ns=${TEMPORAL_NAMESPACE:-default}
retention=${TEMPORAL_RETENTION:-7d}
attributes=(GradeflowAssignment GradeflowStudent GradeflowStage GradeflowOutcome)
export TEMPORAL_ADDRESS=127.0.0.1:7233
log() { printf '[temporal-register] %s\n' "$*" >&2; }

until temporal operator cluster health >/dev/null 2>&1; do sleep 1; done

if ! temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1; then
  log "creating namespace $ns (retention $retention)"
  temporal operator namespace create --namespace "$ns" --retention "$retention" >/dev/null
fi

# A new namespace reaches the frontend's namespace cache within seconds.
until have=$(temporal operator search-attribute list --namespace "$ns" 2>/dev/null); do sleep 1; done
for a in "${attributes[@]}"; do
  if ! grep -qw "$a" <<<"$have"; then
    log "registering search attribute $a (Keyword)"
    temporal operator search-attribute create --namespace "$ns" --name "$a" --type Keyword >/dev/null
  fi
done
log "namespace $ns ready with ${attributes[*]}"
