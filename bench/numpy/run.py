"""numpy arrays in snapshots: stasis.dump/load against numpy.save/numpy.load and against pickle
protocol 5 with out-of-band buffers (the pickle stream and the raw buffers in one file, buffers read
back into bytearrays), on the same arrays, in the same run, alternately; medians.

Workloads: one 1 GiB float64 array of normal random numbers (incompressible: the worst case for
stasis, which compresses), one 1 GiB float64 smooth field (a simulation-like array), and 10^5 small
arrays (0-99 float64 / int64 items, some 2-D). Files go to a directory in memory (/dev/shm) unless
--dir says otherwise, so the numbers are the cost of serialization rather than of this machine's
disk; stasis.dump also fsyncs and renames (durable), the peers do not (their dump followed by an
fsync is shown too, and compared in the 'durable' column).

Usage: build/bin/python bench/numpy/run.py [--repeat N] [--gib F] [--dir DIR] [--only NAME]
Target (issue 14): stasis faster than both peers, dump and load.
"""
from __future__ import annotations

import argparse
import gc
import os
import pickle
import shutil
import statistics
import struct
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

try:
    import numpy as np
except ImportError:
    print("bench/numpy: numpy is not installed (apt install python3-numpy); skipped")
    sys.exit(0)

import stasis


def cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---- the peers ------------------------------------------------------------------------------


def np_save(obj: Any, path: str) -> None:
    with open(path, "wb") as f:
        for a in (obj if isinstance(obj, list) else [obj]):
            np.save(f, a)


def np_load(obj_like: Any, path: str) -> Any:
    with open(path, "rb") as f:
        if isinstance(obj_like, list):
            return [np.load(f) for _ in range(len(obj_like))]
        return np.load(f)


def pickle5_save(obj: Any, path: str) -> None:
    """pickle protocol 5, buffers out of band: [len(pickle)][pickle][len(buf)][buf]... in one file."""
    buffers: List[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    with open(path, "wb") as f:
        f.write(struct.pack("<QQ", len(data), len(buffers)))
        f.write(data)
        for b in buffers:
            raw = b.raw()
            f.write(struct.pack("<Q", raw.nbytes))
            f.write(raw)


def pickle5_load(_obj_like: Any, path: str) -> Any:
    with open(path, "rb", buffering=0) as f:
        n, count = struct.unpack("<QQ", f.read(16))
        data = f.read(n)
        buffers = []
        for _ in range(count):
            (size,) = struct.unpack("<Q", f.read(8))
            buf = bytearray(size)
            f.readinto(buf)
            buffers.append(buf)
    return pickle.loads(data, buffers=buffers)


def stasis_save(obj: Any, path: str) -> None:
    stasis.dump(obj, path)


def stasis_load(_obj_like: Any, path: str) -> Any:
    return stasis.load(path)


PEERS: Dict[str, Tuple[Callable, Callable]] = {
    "stasis": (stasis_save, stasis_load),
    "numpy.save": (np_save, np_load),
    "pickle5-oob": (pickle5_save, pickle5_load),
}


# ---- workloads --------------------------------------------------------------------------------


def make(name: str, gib: float) -> Any:
    n = int(gib * (1 << 30)) // 8
    if name == "1GiB-random":
        return np.random.default_rng(0).standard_normal(n)
    if name == "1GiB-smooth":
        x = np.linspace(0.0, 200.0, n)
        return np.sin(x) * np.exp(-x / 400.0) * 1e3 + x
    if name == "1e5-small":
        rng = np.random.default_rng(1)
        out = []
        for i in range(100_000):
            k = i % 100
            if i % 3 == 0:
                out.append(rng.standard_normal(k))
            elif i % 3 == 1:
                out.append(np.arange(k, dtype=np.int64))
            else:
                out.append(rng.standard_normal((k // 10 + 1, 10)))
        return out
    raise ValueError(name)


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def measure(name: str, obj: Any, directory: str, repeat: int) -> Dict[str, Dict[str, Any]]:
    """{peer: {dump, load, dump_cpu, load_cpu, size}}: medians over `repeat` alternating rounds."""
    times: Dict[str, Dict[str, List[float]]] = {p: {"dump": [], "load": [], "dump_cpu": [], "load_cpu": [],
                                                    "fsync": []} for p in PEERS}
    sizes: Dict[str, int] = {}
    peers = list(PEERS.items())
    for r in range(repeat):
        # each round starts with another peer: the first to touch fresh memory in a round pays
        # for it (page zeroing, and on a VM the host's first touch), which is not serialization
        for peer, (save, load) in peers[r % len(peers):] + peers[:r % len(peers)]:
            path = os.path.join(directory, f"{name}.{peer}")
            gc.collect()
            gc.disable()
            t, c = time.perf_counter(), cpu()
            save(obj, path)
            times[peer]["dump"].append(time.perf_counter() - t)
            times[peer]["dump_cpu"].append(cpu() - c)
            t = time.perf_counter()
            if peer != "stasis":  # stasis.dump is durable already (fsync + rename)
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            times[peer]["fsync"].append(time.perf_counter() - t)
            t, c = time.perf_counter(), cpu()
            back = load(obj, path)
            times[peer]["load"].append(time.perf_counter() - t)
            times[peer]["load_cpu"].append(cpu() - c)
            gc.enable()
            if r == 0 and not equal(obj, back):
                raise AssertionError(f"{peer} did not give the same arrays back for {name}")
            del back
            sizes[peer] = os.path.getsize(path)
            os.unlink(path)
    return {p: {**{k: statistics.median(v) for k, v in times[p].items()}, "size": sizes[p]} for p in PEERS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gib", type=float, default=1.0, help="size of the big arrays in GiB")
    ap.add_argument("--dir", default=None, help="where the files go (default: in memory, /dev/shm)")
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    base = args.dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    directory = tempfile.mkdtemp(prefix="stasis-bench-numpy-", dir=base)
    workloads = ["1GiB-random", "1GiB-smooth", "1e5-small"]
    if args.only:
        workloads = [w for w in workloads if args.only in w]
    results = {}
    try:
        for w in workloads:
            obj = make(w, args.gib)
            results[w] = measure(w, obj, directory, args.repeat if w == "1e5-small" else max(3, args.repeat - 2))
            del obj
            gc.collect()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(f"numpy {np.__version__}; files in {base or tempfile.gettempdir()}; medians of alternating runs "
          "(wall seconds; cpu = user+system of all threads)")
    print(f"{'workload':12} {'peer':12} {'dump':>8} {'cpu':>7} {'+fsync':>8} {'load':>8} {'cpu':>7} {'MB':>8}"
          f" {'dump ratio':>10} {'durable':>8} {'load ratio':>10}")
    ok = True
    for w, res in results.items():
        s = res["stasis"]
        for peer, r in res.items():
            dr = s["dump"] / r["dump"]
            sr = s["dump"] / (r["dump"] + r["fsync"])
            lr = s["load"] / r["load"]
            if peer != "stasis":
                ok &= dr < 1.0 and lr < 1.0
            ratios = "" if peer == "stasis" else f" {dr:10.2f} {sr:8.2f} {lr:10.2f}"
            print(f"{w:12} {peer:12} {r['dump']:8.3f} {r['dump_cpu']:7.3f} {r['dump'] + r['fsync']:8.3f} "
                  f"{r['load']:8.3f} {r['load_cpu']:7.3f} {r['size'] / 1e6:8.1f}{ratios}")
    print("ratios: stasis time / peer time (below 1: stasis is faster); 'durable': against the peer's dump "
          "followed by fsync, which stasis.dump always does (+fsync column). Target: below 1 for every peer")
    print("all targets met" if ok else "SOME TARGETS MISSED")


if __name__ == "__main__":
    main()
