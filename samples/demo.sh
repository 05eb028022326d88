#!/usr/bin/env bash
# `make demo`: time-quota execution. A long computation (samples/long_job.py) runs under a 0.4-second
# quota: each time the quota is spent it is suspended into a snapshot (exit status 75) and resumed
# in a fresh process, until it finishes. The concatenated output is compared with an
# uninterrupted run. Then a program that checkpoints itself is resumed from its last checkpoint,
# and a threaded worker pool runs under a quota the same way. Last, a job that crashes part-way is
# snapshotted as it crashes, debugged, patched with its fix and finished (samples/crash_story.sh).
set -euo pipefail
BUILD=${1:-build}
STASIS="$(cd "$BUILD" && pwd)/bin/stasis"
PY="$(cd "$BUILD" && pwd)/bin/python"
samples="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== 1. the job, uninterrupted"
start=$(date +%s%N)
"$PY" "$samples/long_job.py" > plain.out
printf '   %d lines in %d ms; last: %s\n' "$(wc -l < plain.out)" "$(( ($(date +%s%N) - start) / 1000000 ))" "$(tail -n 1 plain.out)"

# quota_rounds SCRIPT SNAPSHOT QUOTA OUT [--verbose]: runs SCRIPT under the quota, resuming SNAPSHOT
# in a fresh process after each suspension (exit 75); sets $status and $rounds.
quota_rounds() {
  local script=$1 snap=$2 quota=$3 out=$4 verbose=${5:-}
  set +e
  "$STASIS" run --quota "$quota" "$script" > "$out" 2> "$out.err"
  status=$?
  rounds=1
  while [ "$status" -eq 75 ]; do
    [ -n "$verbose" ] && printf '   round %d: exit 75, snapshot %s (%s)\n' "$rounds" "$snap" "$(du -h "$snap" | cut -f1)"
    "$STASIS" resume --quota "$quota" "$snap" >> "$out" 2>> "$out.err"
    status=$?
    rounds=$((rounds + 1))
    [ "$rounds" -gt 200 ] && { echo "   too many rounds"; break; }
  done
  set -e
}

echo "== 2. the same job under a 0.4 s quota: suspend, resume in a fresh process, repeat"
quota_rounds "$samples/long_job.py" long_job.snap 0.4 quota.out --verbose
printf '   round %d: exit %d\n' "$rounds" "$status"
if [ "$status" -eq 0 ] && cmp -s plain.out quota.out; then
  echo "   => output of $rounds processes is byte-identical to the uninterrupted run"
else
  echo "   => MISMATCH (exit $status)"; diff plain.out quota.out | head; cat quota.out.err; exit 1
fi
"$STASIS" inspect long_job.snap | sed 's/^/   /'

echo "== 3. a program that checkpoints itself, resumed from its last checkpoint"
"$STASIS" run "$samples/checkpointing.py" | sed 's/^/   first run: /'
"$STASIS" resume stage.snap | sed 's/^/   resumed:   /'

echo "== 4. a worker pool (3 threads and a queue) under a 0.05 s quota: every thread is suspended and resumed"
"$PY" "$samples/worker_pool.py" > pool_plain.out
quota_rounds "$samples/worker_pool.py" worker_pool.snap 0.05 pool.out
if [ "$status" -eq 0 ] && cmp -s pool_plain.out pool.out; then
  echo "   => $rounds processes (each suspended with its workers running or blocked in queue.get); output identical: $(cat pool.out)"
else
  echo "   => MISMATCH (exit $status)"; diff pool_plain.out pool.out | head; tail -3 pool.out.err; exit 1
fi

echo "== 5. a job that crashes part-way, fixed and finished from where it crashed"
bash "$samples/crash_story.sh" "$(dirname "$(dirname "$STASIS")")"
