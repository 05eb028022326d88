"""A sample program with warm in-memory state: an inverted index of the words in CPython's own
standard library sources. `build` computes it (slow) and saves it with stasis.dump; `query` loads
it in a fresh process (fast) and answers from it — the state moved between processes intact.

    python samples/word_index.py build index.snap
    python samples/word_index.py query index.snap snapshot thread lock
"""
import glob
import os
import pickle
import re
import sys
import sysconfig
import time

import stasis

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def build_index(limit_files: int = 400) -> dict:
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(stdlib, "*.py")))[:limit_files]
    index: dict = {}
    lines_seen = 0
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                lines_seen += 1
                for word in set(WORD.findall(line.lower())):
                    index.setdefault(word, []).append((name, lineno))
    return {"files": len(files), "lines": lines_seen, "index": index}


def main(argv):
    if len(argv) >= 2 and argv[0] == "build":
        t0 = time.perf_counter()
        state = build_index()
        t1 = time.perf_counter()
        stasis.dump(state, argv[1])
        t2 = time.perf_counter()
        pickled = pickle.dumps(state, protocol=5)
        t3 = time.perf_counter()
        print(f"indexed {state['lines']:,} lines of {state['files']} stdlib files: "
              f"{len(state['index']):,} words in {t1 - t0:.2f} s")
        print(f"stasis.dump  {t2 - t1:.3f} s -> {os.path.getsize(argv[1]) / 1e6:.1f} MB  "
              f"(pickle.dumps {t3 - t2:.3f} s -> {len(pickled) / 1e6:.1f} MB uncompressed)")
        return 0
    if len(argv) >= 2 and argv[0] == "query":
        t0 = time.perf_counter()
        state = stasis.load(argv[1])
        t1 = time.perf_counter()
        print(f"loaded {len(state['index']):,} words in {t1 - t0:.3f} s (pid {os.getpid()})")
        for word in argv[2:]:
            hits = state["index"].get(word.lower(), [])
            where = ", ".join(f"{f}:{n}" for f, n in hits[:3])
            print(f"  {word!r}: {len(hits)} lines, e.g. {where}")
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
