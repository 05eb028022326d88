"""Profile output, made by the ctl client from the call-tree rows the targets send: folded
stacks ("process;thread;f;g self-microseconds"), a summary table and an SVG flame graph."""
from __future__ import annotations

import html
import zlib
from typing import Any, Dict, List, Sequence, Tuple

Row = Tuple[int, str, List[str], int, int, int]   # pid, thread name, path, calls, total ns, self ns

# Generator and coroutine functions are timed apart from the call trees: wall time per call from
# the first resumption to the end, awaits included. Their names carry this mark everywhere.
ASYNC_MARK = " [generator/coroutine: wall time]"


def rows_of(pid: int, result: Dict[str, Any]) -> List[Row]:
    names = result.get("threads", {})
    rows: List[Row] = []
    for tid, keys, calls, total, self_, is_async in result["rows"]:
        if is_async:
            keys = [keys[-1] + ASYNC_MARK]
        rows.append((pid, names.get(tid, f"thread-{tid}"), keys, calls, total, self_))
    return rows


def folded(rows: Sequence[Row]) -> str:
    """One line per stack: its self time in microseconds (at least 1 for a stack that ran, so a
    sub-microsecond function still shows)."""
    agg: Dict[str, int] = {}
    for pid, thread, path, calls, _total, self_ns in rows:
        if not calls:
            continue
        key = ";".join([f"process {pid}", f"thread {thread}"] + list(path))
        agg[key] = agg.get(key, 0) + max(1, round(self_ns / 1000))
    return "".join(f"{k} {v}\n" for k, v in sorted(agg.items()))


def summary(rows: Sequence[Row]) -> str:
    stats: Dict[str, Dict[str, Any]] = {}
    for _pid, _thread, path, calls, total, self_ns in rows:
        fn = path[-1]
        s = stats.setdefault(fn, {"calls": 0, "total": 0, "self": 0, "callees": set()})
        s["calls"] += calls
        s["self"] += self_ns
        if fn not in path[:-1]:          # count recursive time once, at the outermost call
            s["total"] += total
        if len(path) > 1:
            stats.setdefault(path[-2], {"calls": 0, "total": 0, "self": 0, "callees": set()})["callees"].add(fn)
    lines = [f"{'function':<48} {'calls':>9} {'total ms':>10} {'self ms':>9} {'us/call':>9}  callees"]
    for fn, s in sorted(stats.items(), key=lambda kv: -kv[1]["total"]):
        per = s["total"] / s["calls"] / 1000 if s["calls"] else 0.0
        lines.append(f"{fn:<48} {s['calls']:>9} {s['total'] / 1e6:>10.3f} {s['self'] / 1e6:>9.3f} {per:>9.2f}  "
                     f"{', '.join(sorted(s['callees'])) or '-'}")
    return "\n".join(lines) + "\n"


def flamegraph_svg(folded_text: str, title: str = "stasis profile", width: int = 1200) -> str:
    """A static SVG flame graph (root at the bottom), one rectangle per stack prefix, width
    proportional to inclusive time, with the time in each rectangle's tooltip."""
    tree: Dict[str, Any] = {"n": 0, "c": {}}
    for line in folded_text.splitlines():
        stack, _, value = line.rpartition(" ")
        v = int(value)
        node = tree
        node["n"] += v
        for frame in stack.split(";"):
            node = node["c"].setdefault(frame, {"n": 0, "c": {}})
            node["n"] += v
    depth = _depth(tree)
    row_h, pad = 17, 30
    height = pad + row_h * depth + 10
    total = tree["n"] or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           '<rect width="100%" height="100%" fill="#f8f8f8"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{html.escape(title)}</text>']

    def draw(node: Dict[str, Any], name: str, x: float, level: int) -> None:
        w = node["n"] / total * (width - 20)
        if level >= 0 and w >= 0.5:
            y = height - 10 - (level + 1) * row_h
            hue = zlib.crc32(name.encode()) % 60
            out.append(f'<g><title>{html.escape(name)} ({node["n"] / 1000:.3f} ms, '
                       f'{100 * node["n"] / total:.1f}%)</title>'
                       f'<rect x="{10 + x:.2f}" y="{y}" width="{w:.2f}" height="{row_h - 1}" '
                       f'fill="hsl({hue},85%,60%)" rx="2"/>')
            chars = int(w / 7)
            if chars >= 3:
                label = name if len(name) <= chars else name[:chars - 2] + ".."
                out.append(f'<text x="{12 + x:.2f}" y="{y + 12}">{html.escape(label)}</text>')
            out.append("</g>")
        cx = x
        for child_name, child in sorted(node["c"].items()):
            draw(child, child_name, cx, level + 1)
            cx += child["n"] / total * (width - 20)

    draw(tree, "all", 0.0, -1)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _depth(node: Dict[str, Any]) -> int:
    return 1 + max((_depth(c) for c in node["c"].values()), default=0) if node["c"] else 0


def lines_table(result: Dict[str, Any]) -> str:
    out = [f"{result['function']} ({result['file']})",
           f"{'line':>6} {'hits':>9} {'total ms':>10} {'us/hit':>9}  source"]
    for line, hits, ns, text in result["rows"]:
        per = ns / hits / 1000 if hits else 0.0
        out.append(f"{line:>6} {hits:>9} {ns / 1e6:>10.3f} {per:>9.2f}  {text}")
    return "\n".join(out) + "\n"
