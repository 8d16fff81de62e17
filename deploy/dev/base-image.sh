#!/usr/bin/env bash
# base-image.sh: build the offline Debian base image (python3 + JDK 17) that
# docker/image/Dockerfile starts FROM when no registry is reachable.
# Usage: base-image.sh IMAGE   (no-op when IMAGE already exists)
set -euo pipefail

image=${1:-gradeflow/base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '[base-image] %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
  else
    log "debootstrap is missing; install it, or build docker/image with --build-arg BASE=debian:bookworm-slim where a registry is reachable"
    exit 1
  fi
fi

root=$(mktemp -d /var/tmp/gradeflow-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
log "debootstrap bookworm into $root (about a minute)"
debootstrap --variant=minbase --include=python3,openjdk-17-jdk-headless,ca-certificates-java \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Keep the image small: no apt lists or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
log "importing as $image"
tar -C "$root" -c . | docker import - "$image" >/dev/null
log "done"
