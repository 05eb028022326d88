#!/usr/bin/env bash
# A crash, fixed and finished without starting over (part of `make demo`): samples/crash_job.py
# crashes part-way under --snapshot-on-crash, which writes a snapshot before the stack unwinds;
# `stasis debug` shows the failing frame's locals; `stasis patch` gives the snapshot the fixed
# source (samples/fix/crash_job.py); `stasis resume` runs the fixed statement and goes on. The
# output of the two runs together is compared with the fixed program run plainly.
set -euo pipefail
BUILD=${1:-build}
STASIS="$(cd "$BUILD" && pwd)/bin/stasis"
PY="$(cd "$BUILD" && pwd)/bin/python"
samples="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$PY" "$samples/fix/crash_job.py" > fixed.out

echo "-- run the job with --snapshot-on-crash: it crashes part-way"
set +e
"$STASIS" run --snapshot-on-crash "$samples/crash_job.py" > part1.out 2> crash.err
status=$?
set -e
sed 's/^/   /' part1.out
tail -n 2 crash.err | sed 's/^/   /'
printf '   (exit %d, as without Stasis)\n' "$status"
[ "$status" -eq 1 ] && [ -f crash_job.crash.snap ] || { echo "   => no crash snapshot"; cat crash.err; exit 1; }

echo "-- stasis debug: pdb in the frame that raised, then one frame up"
printf 'p amount, unit\np sorted(TO_KG)\nup\np shipment\nq\n' | "$STASIS" debug crash_job.crash.snap \
  | grep -v '^Traceback\|^  File\|^    ' | sed 's/^/   /'

echo "-- stasis patch: the fixed source replaces the job's module in the snapshot"
"$STASIS" patch crash_job.crash.snap --source "$samples/fix/crash_job.py" | sed 's/^/   /'

echo "-- stasis resume: the fixed statement runs, the job goes on from shipment 5"
"$STASIS" resume crash_job.crash.snap > part2.out
sed 's/^/   /' part2.out
cat part1.out part2.out > story.out
if cmp -s story.out fixed.out; then
  echo "   => crashed run + resumed run: byte-identical to the fixed program run from the start"
else
  echo "   => MISMATCH"; diff story.out fixed.out; exit 1
fi
