#!/usr/bin/env bash
# bench-table.sh: turn `go test -bench` output into the table that
# make bench prints. Usage: bench-table.sh FILE
set -euo pipefail
awk '
/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
  for (i = 5; i + 1 <= NF; i += 2) { printf "%-36s %-32s %12s\n", name, $(i+1), $i }
}' "${1:?usage: bench-table.sh FILE}" | sort -s -k1,1 | awk '
BEGIN { printf "%-36s %-32s %12s\n", "BENCHMARK", "METRIC", "VALUE" }
{ print }'
