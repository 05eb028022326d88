#!/usr/bin/env bash
# `make demo`: the most the engine does end to end today. A program builds warm in-memory state
# and snapshots it; `stasis inspect` describes the snapshot; a fresh process loads it and answers
# from it; a damaged copy is refused with a clear error while the original stays intact.
# (Replaced by the time-quota suspend/resume demo when whole-program suspension lands.)
set -euo pipefail
BUILD=${1:-build}
PY="$BUILD/bin/python"
STASIS="$BUILD/bin/stasis"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
snap="$work/index.snap"

echo "== 1. build warm state in one process and snapshot it"
"$PY" samples/word_index.py build "$snap"
echo
echo "== 2. stasis inspect $snap"
"$STASIS" inspect "$snap"
echo
echo "== 3. a fresh process loads the snapshot and answers from it"
"$PY" samples/word_index.py query "$snap" snapshot thread lock
echo
echo "== 4. a damaged copy is refused (exit status and one line), the original is untouched"
cp "$snap" "$work/damaged.snap"
size=$(stat -c %s "$work/damaged.snap")
printf '\xff' | dd of="$work/damaged.snap" bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$STASIS" inspect "$work/damaged.snap" 2>&1
echo "exit status $?"
head -c $((size / 3)) "$snap" > "$work/cut.snap"
"$STASIS" inspect "$work/cut.snap" 2>&1
echo "exit status $?"
set -e
"$PY" samples/word_index.py query "$snap" resume
