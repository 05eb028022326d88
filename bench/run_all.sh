#!/usr/bin/env bash
# `make bench`: every benchmark of the project, each printing ratios against a peer measured in
# the same run (pickle, plain CPython, cProfile). Benchmarks never fail a build; they report.
set -uo pipefail
BUILD=${1:-build}
PY="$BUILD/bin/python"
cd "$(dirname "$0")/.."

section() { printf '\n=== %s ===\n' "$1"; }

section "container (format/): 100 MB payload, write and read"
"$BUILD/bench/container_bench" 100000000 3
"$BUILD/bench/container_bench" 100000000 1 | tail -n 2

for b in heap rewriter updater suspend patch requests numpy checkpoint services; do
  if [ -f "bench/$b/run.py" ]; then
    section "$b (bench/$b/run.py)"
    "$PY" "bench/$b/run.py" || echo "bench/$b/run.py failed with status $?"
  fi
done

section "patch: --snapshot-on-crash on real programs (bench/patch/real.py)"
"$PY" bench/patch/real.py "$BUILD" 5 || echo "bench/patch/real.py failed with status $?"
