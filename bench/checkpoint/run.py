"""The pause a periodic checkpoint causes, against today's full suspension, for heaps of ~1 MB,
~100 MB and ~1 GB (STASIS_BENCH_NO_GB=1 leaves the 1 GB row out: it needs ~3 GB of memory and
a few minutes).

Pause: the time the program stands still, measured by the program itself: its main thread loops
over its heap (reading and writing it, so copy-on-write and huge-page splitting are paid where a
real program pays them) and records every gap longer than 1 ms between two iterations; the gap
that contains a checkpoint's fork is that checkpoint's pause. Median over the checkpoints of a
run. Also from Stasis's own log (STASIS_CHECKPOINT_LOG): freeze (request to every thread parked),
fork, and the child's time to write the snapshot.

Peer, measured in the same run on the same heap: a full suspension (stasis.suspend(): the program
stands still from its request until the snapshot is complete; a synchronous checkpoint costs the
same), and the periodic checkpoint without huge pages (STASIS_CHECKPOINT_HUGEPAGES=0) to show what
MADV_COLLAPSE buys. CRIU's pre-dump is measured when `criu` runs here; see the note printed.

The machine is shared: other processes stop the program too (the "noise" column: standstills of
the program away from any checkpoint, median and 90th percentile). Run as root, the measured
programs get nice -10 (both sides alike), which makes such stops rarer without changing what
is measured.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
STASIS = os.path.join(BUILD, "bin", "stasis")
NICE = -10 if os.geteuid() == 0 else 0


def _priority():
    if NICE:
        os.nice(NICE)

PROGRAM = r"""
import json, sys, time
n, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
heap = [{"id": i, "name": "item%d" % i, "val": i * 0.5} for i in range(n)]
with open(out + ".ready", "w") as f:
    f.write(repr(time.time()))
gaps = []
clock = time.perf_counter
wall0, perf0 = time.time(), clock()
prev = clock()
end = prev + seconds
i = 0
while True:
    now = clock()
    if now - prev > 0.001:
        gaps.append((wall0 + (prev - perf0), now - prev))
    prev = now
    if now > end:
        break
    d = heap[i % n]
    d["val"] += 1.0
    i += 1
with open(out, "w") as f:
    json.dump({"gaps": gaps, "iterations": i, "start": wall0, "end": wall0 + (prev - perf0)}, f)
"""

SUSPEND = r"""
import sys, time, stasis
n, mark = int(sys.argv[1]), sys.argv[2]
heap = [{"id": i, "name": "item%d" % i, "val": i * 0.5} for i in range(n)]
with open(mark, "w") as f:
    f.write(repr(time.time()))
stasis.suspend()
while True:  # the next safe point, where the suspension happens
    time.sleep(0.001)
"""


def rss_of(n):
    r = subprocess.run([sys.executable, "-c", f"""
heap = [{{"id": i, "name": "item%d" % i, "val": i * 0.5}} for i in range({n})]
print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) * 1024)
"""], capture_output=True, text=True)
    return int(r.stdout)


def periodic(tmp, n, every, seconds, hugepages=True):
    prog = os.path.join(tmp, "prog.py")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    out, log, snap = os.path.join(tmp, "gaps.json"), os.path.join(tmp, "log.jsonl"), os.path.join(tmp, "p.snap")
    for p in (out, log):
        if os.path.exists(p):
            os.unlink(p)
    env = {**os.environ, "PYTHONHASHSEED": "1", "STASIS_CHECKPOINT_LOG": log,
           "STASIS_CHECKPOINT_HUGEPAGES": "1" if hugepages else "0"}
    r = subprocess.run([STASIS, "run", "--snapshot", snap, "--checkpoint-every", str(every), prog, str(n),
                        str(seconds), out], cwd=tmp, env=env, capture_output=True, text=True,
                       preexec_fn=_priority)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    with open(out) as f:
        measured = json.load(f)
    gaps = measured["gaps"]
    with open(log) as f:
        events = [json.loads(l) for l in f]
    # The checkpoints forked while the program measured (not those of its heap's construction).
    written = [e for e in events if e["event"] == "written"
               and measured["start"] + 0.05 < e["forked_at"] < measured["end"] - 0.05]
    pauses = []
    for e in written:
        at = e["forked_at"]
        around = [g for t, g in gaps if t - 0.05 <= at <= t + g + 0.05]
        pauses.append(max(around) if around else 0.0)
    huge = [e for e in events if e["event"] == "hugepages"]
    forks = [e["forked_at"] for e in written]
    away = sorted(g for t, g in gaps if all(abs(t - at) > 0.1 for at in forks))
    return {
        "checkpoints": len(written),
        "pause_ms": statistics.median(pauses) * 1e3 if pauses else float("nan"),
        "pause_max_ms": max(pauses) * 1e3 if pauses else float("nan"),
        "fork_ms": statistics.median(e["fork_ms"] for e in written) if written else float("nan"),
        "fork_cpu_ms": statistics.median(e["fork_cpu_ms"] for e in written) if written else float("nan"),
        "cpu_ms": statistics.median(e["cpu_ms"] for e in written) if written else float("nan"),
        "freeze_ms": statistics.median(e["freeze_ms"] for e in written) if written else float("nan"),
        "write_s": statistics.median(e["write_s"] for e in written) if written else float("nan"),
        "bytes": statistics.median(e["bytes"] or 0 for e in written) if written else 0,
        "collapse_s": statistics.median(e["seconds"] for e in huge) if huge else 0.0,
        "collapsed": max((e["chunks"] for e in huge), default=0),
        "collapse_failed": max((e["failed"] for e in huge), default=0),
        "other_gaps_ms": [g * 1e3 for g in away[-3:]],
        "noise_ms": (statistics.median(away) * 1e3 if away else 0.0,
                     away[int(0.9 * (len(away) - 1))] * 1e3 if away else 0.0),
        "noise_per_s": len(away) / seconds,
    }


def suspension(tmp, n, runs):
    prog = os.path.join(tmp, "susp.py")
    with open(prog, "w") as f:
        f.write(SUSPEND)
    mark, snap = os.path.join(tmp, "mark"), os.path.join(tmp, "s.snap")
    times = []
    for _ in range(runs):
        r = subprocess.run([STASIS, "run", "--snapshot", snap, prog, str(n), mark], cwd=tmp,
                           env={**os.environ, "PYTHONHASHSEED": "1"}, capture_output=True, text=True,
                           preexec_fn=_priority)
        end = time.time()
        if r.returncode != 75:
            raise RuntimeError(r.stderr)
        with open(mark) as f:
            times.append(end - float(f.read()))
    return statistics.median(times)


def criu_note():
    if shutil.which("criu") is None:
        return "criu is not installed"
    r = subprocess.run(["criu", "check"], capture_output=True, text=True)
    if r.returncode != 0:
        return "criu is installed but does not run here: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def main():
    sizes = [("1 MB", 3_000), ("100 MB", 300_000)]
    if os.environ.get("STASIS_BENCH_NO_GB") != "1":
        sizes.append(("1 GB", 3_000_000))
    only = os.environ.get("STASIS_BENCH_ONLY")  # "1 GB": one row (when working on it)
    sizes = [s for s in sizes if only in (None, s[0])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stasis-bench-ckpt-") as tmp:
        for label, n in sizes:
            rss = rss_of(n)
            full = suspension(tmp, n, runs=3 if n < 1_000_000 else 1)
            # Every checkpoint is due before the previous one is written: each starts as soon as
            # it can. Long enough for 5 or more checkpoints.
            seconds = max(6.0, 12 * full + 4)
            huge = periodic(tmp, n, every=0.2, seconds=seconds)
            small = periodic(tmp, n, every=0.2, seconds=seconds, hugepages=False)
            rows.append((label, rss, full, huge, small))
            print(f"  {label}: RSS {rss / 2**20:.0f} MiB, {huge['checkpoints']} checkpoints; "
                  f"largest other standstills {['%.1f' % g for g in huge['other_gaps_ms']]} ms", flush=True)
    print()
    print(f"(measured programs at nice {NICE})" if NICE else "(measured programs at normal priority)")
    print("heap     RSS      pause (median/max)   freeze   fork     child writes   full suspension  pause/full   "
          "no huge pages: pause, fork   noise: median, p90, per s")
    for label, rss, full, h, s in rows:
        print(f"{label:<8} {rss / 2**20:6.0f} MiB {h['pause_ms']:7.2f} / {h['pause_max_ms']:6.2f} ms "
              f"{h['freeze_ms']:6.2f} ms {h['fork_ms']:6.2f} ms {h['write_s']:8.3f} s {full * 1e3:11.0f} ms   "
              f"{h['pause_ms'] / (full * 1e3):9.4f}   {s['pause_ms']:7.2f} ms, {s['fork_ms']:6.2f} ms      "
              f"{h['noise_ms'][0]:5.1f}, {h['noise_ms'][1]:5.1f} ms, {h['noise_per_s']:4.1f}")
    print()
    print("CPU time Stasis spends in the stop (its own thread, from the request to letting the threads go; "
          "the pause on an idle machine), and in fork() alone:")
    for label, rss, full, h, s in rows:
        print(f"{label:<8} stop {h['cpu_ms']:6.2f} ms, fork {h['fork_cpu_ms']:6.2f} ms;   without huge pages: "
              f"stop {s['cpu_ms']:6.2f} ms, fork {s['fork_cpu_ms']:6.2f} ms")
    print("(pause: the longest standstill the program saw around each checkpoint; freeze: from the request "
          "until every thread is parked, the program runs meanwhile; child writes: the forked writer's time "
          "until the snapshot is complete; huge-page pass before a checkpoint (median time; most 2 MiB chunks "
          "collapsed in one pass, and refused for now): "
          + ", ".join(f"{label} {h['collapse_s']:.2f} s ({h['collapsed']}, {h['collapse_failed']})"
                      for label, _, _, h, _ in rows) + ", off the pause)")
    note = criu_note()
    if note:
        print(f"CRIU pre-dump: not measured: {note}. CRIU 3.17 (Debian 12) needs soft-dirty memory tracking for "
              "pre-dump; its default (splice) pre-dump keeps the task frozen until every page is drained "
              "into pipes, so the freeze grows with the memory dumped (criu.org Memory_changes_tracking; "
              "checkpoint-restore/criu#799, the process_vm_readv pre-dump that freezes only to collect the "
              "mappings). No published per-GB freeze time was found to quote.")


if __name__ == "__main__":
    main()
