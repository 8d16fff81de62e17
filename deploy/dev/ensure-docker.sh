#!/usr/bin/env bash
# ensure-docker.sh: make sure a Docker engine answers on this host.
# On Debian as root it installs docker.io and starts dockerd when needed;
# elsewhere it says what to install and fails.
set -euo pipefail

log() { printf '[docker] %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing docker.io from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
  else
    log "no Docker engine found. Install Docker Engine (https://docs.docker.com/engine/install/) and start it, then re-run."
    exit 1
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "dockerd is installed but not running, and starting it needs root. Start the Docker service, then re-run."
    exit 1
  fi
  mkdir -p /var/log
  log "starting dockerd (no bridge, no iptables: grading containers run with --network none)"
  nohup dockerd --iptables=false --ip-masq=false --bridge=none >/var/log/gradeflow-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
fi

if ! docker info >/dev/null 2>&1; then
  log "dockerd did not come up; see /var/log/gradeflow-dockerd.log"
  exit 1
fi
log "engine $(docker version --format '{{.Server.Version}}') ready"
