#!/usr/bin/env bash
# images.sh: build every image of the compose stack offline (make
# deploy-images). No registry is needed: each image starts FROM the
# debootstrap base (gradeflow/base:bookworm, built by `make images`) and its
# programs are built here from the Go module proxy at pinned versions:
#
#   gradeflow/temporal:1.29.1        Temporal server + temporal-sql-tool
#                                    (go.temporal.io/server) + temporal CLI
#   gradeflow/temporal-ui:2.42.1     Temporal Web UI (ui-server, assets embedded)
#   gradeflow/postgres:15            PostgreSQL 15 from Debian bookworm
#   gradeflow/mongo-substitute:dev   OFFLINE SUBSTITUTE for mongo:7: the
#                                    embedded FerretDB program (deploy/devstack)
#                                    on its private PostgreSQL (FROM gradeflow/postgres:15)
#   gradeflow/app:dev                worker, API, starter (deploy/Dockerfile)
#
# The runtime image gradeflow/hadoop:dev is `make images`'s. Where a
# registry is reachable, GRADEFLOW_BASE_IMAGE=debian:bookworm-slim builds
# the same images from a public base, and compose.mongo.yaml swaps the
# substitute for the real mongo image.
#
# Usage: deploy/images.sh [IMAGE...]   (names as above without tag: temporal,
#        temporal-ui, postgres, mongo-substitute, app; default all)
# Quick when nothing changed: binaries are rebuilt only when their version
# changed, and docker build reuses its layer cache.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
TEMPORAL_SERVER_VERSION=v1.29.1
TEMPORAL_UI_VERSION=v2.42.1
base=${GRADEFLOW_BASE_IMAGE:-gradeflow/base:bookworm}
out=$root/bin/deploy                  # binaries and build contexts (gitignored)
temporal_cli=${TEMPORAL_CLI:-$($GO env GOPATH)/bin/temporal}
log() { printf '[deploy-images] %s\n' "$*" >&2; }

if ! docker image inspect "$base" >/dev/null 2>&1; then
  case $base in
    gradeflow/base:*) log "$base is missing: run 'make images' first (it builds the offline base)"; exit 1 ;;
  esac
fi

# gobuild OUT VERSION-STAMP PKG...: build PKG (a module path @version) in a
# throwaway module, static, unless OUT was built from the same stamp.
gobuild() {
  local bin=$1 stamp=$2 pkg=$3 mod
  if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$stamp" ]; then return; fi
  mod=$out/mod-$(basename "$bin")
  rm -rf "$mod" && mkdir -p "$mod"
  log "building $(basename "$bin") from $stamp (module proxy)"
  (cd "$mod" && $GO mod init gradeflow.local/build >/dev/null 2>&1 &&
     $GO get "$stamp" "${pkg}@${stamp##*@}" >/dev/null 2>&1 &&
     CGO_ENABLED=0 $GO build -trimpath -ldflags='-s -w' -o "$bin" "$pkg")
  echo "$stamp" >"$bin.version"
}

# stage NAME FILE...: a fresh build context bin/deploy/ctx/NAME holding
# deploy/images/NAME and the given files.
stage() {
  local name=$1; shift
  local ctx=$out/ctx/$name
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp -a "deploy/images/$name/." "$ctx/"
  [ $# -gt 0 ] && cp -a "$@" "$ctx/"
  echo "$ctx"
}

# build TAG CONTEXT [docker build args...]
build() {
  local tag=$1 ctx=$2; shift 2
  local blog=$out/build-${tag//[:\/]/_}.log
  log "docker build $tag"
  if ! DOCKER_BUILDKIT=0 docker build -t "$tag" --build-arg BASE="$base" "$@" "$ctx" >"$blog" 2>&1; then
    tail -30 "$blog" >&2
    log "docker build $tag failed; full log in $blog"
    exit 1
  fi
}

img_temporal() {
  [ -x "$temporal_cli" ] || { log "temporal CLI missing at $temporal_cli: run 'make tools'"; exit 1; }
  gobuild "$out/temporal-server" "go.temporal.io/server@$TEMPORAL_SERVER_VERSION" go.temporal.io/server/cmd/server
  gobuild "$out/temporal-sql-tool" "go.temporal.io/server@$TEMPORAL_SERVER_VERSION" go.temporal.io/server/cmd/tools/sql
  build "gradeflow/temporal:${TEMPORAL_SERVER_VERSION#v}" \
    "$(stage temporal "$out/temporal-server" "$out/temporal-sql-tool" "$temporal_cli")"
}

img_temporal_ui() {
  gobuild "$out/temporal-ui-server" "github.com/temporalio/ui-server/v2@$TEMPORAL_UI_VERSION" \
    github.com/temporalio/ui-server/v2/cmd/server
  # The UI's own configuration template, from the same module version.
  local cfg
  cfg=$($GO env GOMODCACHE)/github.com/temporalio/ui-server/v2@$TEMPORAL_UI_VERSION/config/docker.yaml
  local ctx
  ctx=$(stage temporal-ui "$out/temporal-ui-server")
  install -m 0644 "$cfg" "$ctx/docker.yaml"
  build "gradeflow/temporal-ui:${TEMPORAL_UI_VERSION#v}" "$ctx"
}

img_postgres() {
  # apt-get needs the network at build time: the legacy builder's default
  # bridge does not exist here (dockerd --bridge=none), so use the host's.
  build gradeflow/postgres:15 "$(stage postgres)" --network host
}

img_mongo_substitute() {
  log "building gradeflow-mongod (deploy/devstack)"
  (cd deploy/devstack && CGO_ENABLED=0 $GO build -trimpath -o "$out/gradeflow-mongod" ./cmd/gradeflow-mongod)
  # It needs the PostgreSQL programs: built on the postgres image, whatever the base.
  docker image inspect gradeflow/postgres:15 >/dev/null 2>&1 || img_postgres
  build gradeflow/mongo-substitute:dev "$(stage mongo-substitute "$out/gradeflow-mongod")" --build-arg BASE=gradeflow/postgres:15
}

img_app() {
  [ -x "$temporal_cli" ] || { log "temporal CLI missing at $temporal_cli: run 'make tools'"; exit 1; }
  log "building the programs (static) into bin/linux"
  mkdir -p bin/linux
  for p in workers:gradeflow-worker api:gradeflow-api starter:gradeflow-starter; do
    CGO_ENABLED=0 GOOS=linux $GO build -trimpath -o "bin/linux/${p#*:}" "./${p%%:*}"
  done
  # The worker's health check asks Temporal whether this container polls
  # its task queues, with the temporal CLI.
  install -m 0755 "$temporal_cli" bin/linux/temporal
  # deploy/Dockerfile's context is the repository; .dockerignore keeps it small.
  build gradeflow/app:dev . -f deploy/Dockerfile
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(temporal temporal-ui postgres mongo-substitute app)
mkdir -p "$out"
for n in "${names[@]}"; do
  case $n in
    temporal|temporal-ui|postgres|mongo-substitute|app) "img_${n//-/_}" ;;
    *) log "unknown image $n"; exit 2 ;;
  esac
done
log "done: ${names[*]}"
