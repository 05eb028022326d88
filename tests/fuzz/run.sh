#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for FUZZ_SECONDS (default 600) under ASan and UBSan, from the
# golden files, the seeds, the hostile files (tests/fuzz/hostile) and every crasher found so far
# (tests/fuzz/crashers: a new one is written there, named after its target, and fails the run).
# Prints, per target: executions, executions per second, edge coverage (libFuzzer's cov) and
# features, and the corpus size. FUZZ_JOBS (default 1) parallel workers per target.
set -uo pipefail
build=$(cd "${1:-build}" && pwd)
seconds=${2:-${FUZZ_SECONDS:-600}}
jobs=${FUZZ_JOBS:-1}
src=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for target in loads_fuzz container_fuzz; do
  bin="$build/fuzz/$target"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is not built (clang and libclang-rt-14-dev are needed; see scripts/setup-deps.sh)"
    exit 1
  fi
  leaks=0; [ "$target" = container_fuzz ] && leaks=1
  corpus="$build/fuzz/corpus-$target"
  mkdir -p "$corpus"
  log="$build/fuzz/$target.log"
  echo "fuzz: $target for ${seconds}s ($jobs job(s)), log $log"
  rm -f "$build"/fuzz/fuzz-*.log
  (cd "$build/fuzz" && ASAN_OPTIONS=detect_leaks=$leaks UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -detect_leaks=$leaks \
    -print_final_stats=1 -jobs="$jobs" -workers="$jobs" \
    -artifact_prefix="$src/tests/fuzz/crashers/$target-" \
    "$corpus" "$src/tests/golden" "$src/tests/fuzz/seeds" "$src/tests/fuzz/hostile" "$src/tests/fuzz/crashers" \
    >"$log" 2>&1)
  rc=$?
  # With -jobs, each worker's figures are in its fuzz-N.log, and libFuzzer copies that log into the
  # main one when the worker ends: count the workers' logs only (else every figure counted twice).
  logs=("$build"/fuzz/fuzz-*.log)
  [ -e "${logs[0]}" ] || logs=("$log")
  execs=$(grep -h "stat::number_of_executed_units" "${logs[@]}" 2>/dev/null | awk '{s+=$2} END {print s+0}')
  rate=$(grep -h "stat::average_exec_per_sec" "${logs[@]}" 2>/dev/null | awk '{s+=$2} END {print s+0}')
  last=$(grep -h -E "#[0-9]+.*cov: " "${logs[@]}" 2>/dev/null | tail -1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  echo "fuzz: $target: exit $rc, $execs executions ($rate/s), edge coverage $cov, features $ft, corpus $(ls "$corpus" | wc -l) files"
  if [ $rc -ne 0 ]; then
    status=1
    grep -h -E "ERROR|SUMMARY|artifact" "$log" "$build"/fuzz/fuzz-*.log 2>/dev/null | head -20
  fi
done
exit $status
