#!/usr/bin/env bash
# build-extra-image.sh: build gradeflow/hadoop-extra:dev, the default runtime
# image plus the Python packages of docker/image/extra/requirements.txt: an
# example of a runtime image an assignment may name ("image"), once the
# operator allows it (GRADEFLOW_RUNTIME_IMAGES). Wheels are downloaded on the
# host (PyPI), since image builds run without a network.
# Env: GRADEFLOW_EXTRA_IMAGE (default gradeflow/hadoop-extra:dev)
#      GRADEFLOW_IMAGE       its base (default gradeflow/hadoop:dev)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ctx=$root/docker/image/extra
image=${GRADEFLOW_EXTRA_IMAGE:-gradeflow/hadoop-extra:dev}
base=${GRADEFLOW_IMAGE:-gradeflow/hadoop:dev}
log() { printf '[build-extra-image] %s\n' "$*" >&2; }
want=$(sha256sum "$ctx/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$ctx/build/requirements.sha256" 2>/dev/null)" != "$want" ] || ! compgen -G "$ctx/build/wheels/*.whl" >/dev/null; then
  log "downloading wheels of $ctx/requirements.txt"
  rm -rf "$ctx/build/wheels" && mkdir -p "$ctx/build/wheels"
  python3 -m pip download -q --only-binary=:all: --no-deps --python-version 3.11 \
    -r "$ctx/requirements.txt" -d "$ctx/build/wheels"
  echo "$want" >"$ctx/build/requirements.sha256"
fi
log "building $image (FROM $base)"
if ! DOCKER_BUILDKIT=0 docker build -q -t "$image" --build-arg BASE="$base" "$ctx" >"$ctx/build/docker-build.log" 2>&1; then
  tail -20 "$ctx/build/docker-build.log" >&2
  exit 1
fi
log "built $image"
