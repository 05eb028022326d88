"""`stasis inspect` of a program snapshot: where the program stands — every thread, its frames with
their source lines and locals — then its heap, modules, hash seed, command line, suspension and
patch history; as text (like `py-spy dump`) or as data (`--json`).

Nothing is built from the snapshot (FORMAT.md "Threat model"): the engine describes the payload's
objects without making them (format/describe.h, `_engine.inspect(describe=True)`), and this module
reads that description node by node as plain values — type names as recorded, scalars as values,
containers as items and lengths. No code object, function, class or module of the snapshot is
made, imported or run; a value that cannot be shown from its record is shown as `<type name>`.
Source lines come from the sources the snapshot carries (layout.ModuleSource), else from a
regular file at the frame's path, else nothing. Every string of the snapshot that reaches the
terminal has its control characters escaped.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import stat
from typing import Any, Dict, List, Optional, Tuple

from .. import _engine
from ..errors import CorruptSnapshotError, StasisError
from .progress import size_text

REPR_WIDTH = 60             # a local's short repr, at most
HELD_BUDGET = 2_000_000     # objects visited per "what it holds" estimate
HELD_TOTAL = 20_000_000     # and for all of them together: past it, sizes are not estimated
_ALL = 1 << 62
_PEEK = 16                  # item ids read of a value that is only described (its repr needs no more)

# The fields of the Code op's tuple (FORMAT.md, "Code"): CPython 3.11's CodeType arguments.
_CO_FLAGS, _CO_CONSTS, _CO_FILENAME, _CO_NAME, _CO_QUALNAME, _CO_FIRSTLINENO, _CO_LINETABLE = 5, 7, 10, 11, 12, 13, 14
_RESUME_MARKER = ".stasis-resume-table"  # compiler_hooks/resume_points.py: the last constant

_TRIGGERS = {"api": "stasis.suspend()", "checkpoint": "stasis.checkpoint()", "periodic": "--checkpoint-every",
             "quota": "--quota", "signal": "a signal", "suspend-after": "--suspend-after",
             "crash": "--snapshot-on-crash"}


def escape(text: Any) -> str:
    """A snapshot's string, safe for a terminal: control and other unprintable characters escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# --- the description, node by node ---------------------------------------------------------------

class Node:
    """One described object (engine view node): kind, recorded type, length, plain value, items."""
    __slots__ = ("view", "id", "kind", "type", "len", "truncated", "value", "items", "pairs", "refs")

    def __init__(self, view: Any, node_id: int, limit: int = _ALL) -> None:
        d = _engine.view_node(view, node_id, limit)
        self.view, self.id = view, node_id
        self.kind: str = d["kind"]
        self.type: Tuple[str, str] = d["type"]
        self.len: int = d["len"]
        self.truncated: bool = d["truncated"]
        self.value: Any = d["value"]
        self.items: List[int] = d["items"]
        self.pairs: List[int] = d["pairs"]
        self.refs: List[Optional[int]] = d["refs"]

    def node(self, node_id: Optional[int], limit: int = _ALL) -> Optional["Node"]:
        return None if node_id is None else Node(self.view, node_id, limit)

    def ref(self, i: int, limit: int = _ALL) -> Optional["Node"]:
        return self.node(self.refs[i], limit)

    def elements(self, limit: int = _ALL) -> List["Node"]:
        return [Node(self.view, i, limit) for i in self.items]

    def entries(self, limit: int = _ALL) -> List[Tuple["Node", "Node"]]:
        """A dict's (key, value) pairs."""
        ids = self.items
        return [(Node(self.view, ids[i], limit), Node(self.view, ids[i + 1], limit)) for i in range(0, len(ids) - 1, 2)]

    def field(self, name: str, limit: int = _ALL) -> Optional["Node"]:
        """A str-keyed dict's value under `name` (None if absent or not a dict)."""
        if self.kind != "dict":
            return None
        ids = self.items
        for i in range(0, len(ids) - 1, 2):
            key = Node(self.view, ids[i], 0)
            if key.kind == "str" and key.value == name:
                return Node(self.view, ids[i + 1], limit)
        return None

    def plain(self, depth: int = 20) -> Any:
        """The value as plain Python data (str, int, float, bool, None, bytes; lists, tuples and
        dicts of them); raises ValueError for anything else (never builds it)."""
        k = self.kind
        if k in ("none", "true", "false", "int", "float", "complex"):
            return self.value
        if k == "bigint":
            if len(self.value) > 64:
                raise ValueError("a very large int")
            return int.from_bytes(self.value, "little", signed=True)
        if k in ("str", "bytes") and not self.truncated:
            return self.value
        if depth <= 0 or self.len > len(self.items) // (2 if k == "dict" else 1):
            raise ValueError("not plain")
        if k in ("list", "tuple"):
            out = [e.plain(depth - 1) for e in self.elements()]
            return out if k == "list" else tuple(out)
        if k == "dict":
            return {key.plain(depth - 1): val.plain(depth - 1) for key, val in self.entries()}
        raise ValueError(f"a {k}")

    def get_plain(self, name: str, default: Any = None) -> Any:
        n = self.field(name)
        if n is None:
            return default
        try:
            return n.plain()
        except (ValueError, TypeError):
            return default


def type_name(n: Node) -> str:
    module, qualname = n.type
    if n.kind == "global":
        return "class or function"
    if module in ("builtins", ""):
        return qualname
    return f"{module}.{qualname}"


def short_repr(n: Node, width: int = REPR_WIDTH) -> str:
    """A repr of at most `width` characters, made from the record (nothing built)."""
    text = _repr(n, width + 1, 3)
    return text if len(text) <= width else text[:width - 3] + "..."


def _repr(n: Node, width: int, depth: int) -> str:
    k = n.kind
    if k == "none":
        return "None"
    if k in ("true", "false"):
        return "True" if k == "true" else "False"
    if k == "ellipsis":
        return "Ellipsis"
    if k == "notimplemented":
        return "NotImplemented"
    if k in ("int", "float", "complex"):
        return repr(n.value)
    if k == "bigint":
        bits = n.len * 8
        if n.len > 64 or n.truncated:
            return f"<int of about {bits} bits>"
        return repr(int.from_bytes(n.value, "little", signed=True))
    if k == "str":
        text = repr(n.value[:width])
        return text + ("..." if n.len > width else "")
    if k in ("bytes", "bytearray"):
        if not n.value and n.len:
            return f"<{k} of {n.len:,} bytes>"
        text = repr(bytes(n.value[:width]))
        text = text if k == "bytes" else f"bytearray({text})"
        return text + ("..." if n.len > len(n.value[:width]) else "")
    if k in ("list", "tuple", "set", "frozenset", "dict"):
        return _container_repr(n, width, depth)
    if k == "global":
        module, qualname = n.value
        return f"{module}.{qualname}"
    if k == "module":
        return f"<module {n.value!r}>"
    if k == "function":
        q = n.ref(3, 0)
        return f"<function {q.value if q is not None and q.kind == 'str' else '?'}>"
    if k == "code":
        return "<code object>"
    if k == "class":
        name = n.ref(1, 0)
        return f"<class {name.value if name is not None and name.kind == 'str' else '?'!r}>"
    if k == "generator":
        f = n.ref(0, 0)
        q = f.ref(3, 0) if f is not None and f.kind == "function" else None
        return f"<{type_name(n)} {q.value if q is not None and q.kind == 'str' else '?'}>"
    if k == "cell":
        inner = n.ref(0, 8)
        return "<empty cell>" if inner is None else f"<cell: {_repr(inner, width, depth - 1)}>"
    if k == "object":
        return _object_repr(n, width, depth)
    if k == "registered":
        return _registered_repr(n, width, depth)
    return f"<{type_name(n)}>"


def _registered_repr(n: Node, width: int, depth: int) -> str:
    """Objects saved by a built-in handler, by its key: numpy arrays and dtypes by their shape
    and type code (handlers/numpy_arrays.py), the rest by name."""
    module, qualname = n.type
    state = n.ref(1, 16)
    if module == "stasis.numpy" and qualname in ("ndarray", "dtype") and state is not None and state.kind == "tuple":
        code = None
        if qualname == "dtype":
            code = _dtype_code(state)
            return f"dtype({code!r})" if code else "<numpy.dtype>"
        shape = None
        for part in state.elements(16):
            if part.kind == "registered" and part.type == ("stasis.numpy", "dtype") and code is None:
                inner = part.ref(1, 16)
                code = _dtype_code(inner) if inner is not None and inner.kind == "tuple" else None
            elif code is not None and part.kind == "tuple" and shape is None:
                try:
                    value = part.plain(1)
                except ValueError:
                    continue
                if all(isinstance(x, int) for x in value):
                    shape = value
        if shape is not None:
            return f"ndarray(shape={shape!r}, dtype={code!r})"
    return f"<{type_name(n)}>"


def _dtype_code(state: Node) -> Optional[str]:
    """The type code of a dtype's saved state ((args, state): args[0], 'f8')."""
    parts = state.elements(4)
    if parts and parts[0].kind == "tuple" and parts[0].items:
        first = Node(parts[0].view, parts[0].items[0], 0)
        if first.kind == "str":
            return first.value
    return None


def _container_repr(n: Node, width: int, depth: int) -> str:
    k = n.kind
    opening, closing = {"list": ("[", "]"), "tuple": ("(", ")"), "set": ("{", "}"), "frozenset": ("frozenset({", "})"),
                        "dict": ("{", "}")}[k]
    if n.len == 0:
        return {"set": "set()", "frozenset": "frozenset()", "tuple": "()"}.get(k, opening + closing)
    if depth <= 0:
        return opening + "..." + closing
    parts, used = [], len(opening)
    shown = 0
    sub = Node(n.view, n.id, 16 if k == "dict" else 8)  # at most 8 elements read
    pieces = sub.entries(8) if k == "dict" else [(e, None) for e in sub.elements(8)]
    for a, b in pieces:
        text = _repr(a, width, depth - 1) if b is None else f"{_repr(a, width, depth - 1)}: {_repr(b, width, depth - 1)}"
        parts.append(text)
        shown += 1
        used += len(text) + 2
        if used > width:
            break
    more = ", ..." if shown < n.len else ""
    if k == "tuple" and n.len == 1:
        return f"({parts[0]},)"
    return opening + ", ".join(parts) + more + closing


def _object_repr(n: Node, width: int, depth: int) -> str:
    name = type_name(n)
    module, qualname = n.type
    if depth > 0 and (n.items or n.pairs):  # deque, OrderedDict, defaultdict, Counter...: their items
        parts, used = [], len(qualname) + 4
        if n.items:
            for e in n.elements(8)[:8]:
                parts.append(_repr(e, width, depth - 1))
                used += len(parts[-1]) + 2
                if used > width:
                    break
            more = ", ..." if len(parts) < n.len else ""
            return f"{qualname}([{', '.join(parts)}{more}])"
        ids = n.pairs
        for i in range(0, min(len(ids), 16) - 1, 2):
            parts.append(f"{_repr(Node(n.view, ids[i], 8), width, depth - 1)}: "
                         f"{_repr(Node(n.view, ids[i + 1], 8), width, depth - 1)}")
            used += len(parts[-1]) + 2
            if used > width:
                break
        more = ", ..." if len(parts) < n.len else ""
        return f"{qualname}({{{', '.join(parts)}{more}}})"
    state = n.ref(2, 32)
    if state is not None and state.kind == "tuple" and len(state.items) == 2:
        state = state.elements(32)[0]  # (dict, slots)
    if depth > 0 and state is not None and state.kind == "dict":
        attrs = []
        used = len(qualname) + 2
        for key, val in state.entries(8):
            if key.kind != "str" or str(key.value).startswith("_"):
                continue
            text = f"{key.value}={_repr(val, width, depth - 1)}"
            attrs.append(text)
            used += len(text) + 2
            if used > width:
                break
        if attrs:
            return f"{qualname}({', '.join(attrs)})"
    return f"<{name}>"


_held_left = [HELD_TOTAL]
_codes: Dict[int, "Code"] = {}  # by node id, for one inspection


def held(n: Node) -> Tuple[Optional[int], int, bool]:
    """(estimated bytes, objects, complete) of what `n` holds; bytes None once the walks of one
    inspection have visited HELD_TOTAL objects (many frames holding one huge structure)."""
    left = _held_left[0]
    if left <= 0:
        return None, 0, False
    size, objects, complete = _engine.view_held(n.view, n.id, min(HELD_BUDGET, left))
    _held_left[0] = left - max(objects, 1)
    return size, objects, complete


def describe_value(name: str, n: Node) -> dict:
    """A local (or global): name, type, short repr, length, estimated size of what it holds."""
    if n.kind == "cell":  # a cell variable: its contents
        inner = n.ref(0, _PEEK)
        if inner is not None:
            n = inner
    size, objects, complete = held(n)
    out = {"name": name, "type": type_name(n), "repr": short_repr(n), "bytes": size, "bytes_complete": complete}
    if n.kind in ("str", "bytes", "bytearray", "list", "tuple", "dict", "set", "frozenset") or \
            (n.kind == "object" and (n.items or n.pairs)):
        out["len"] = n.len
    return out


# --- code objects: names, lines, source --------------------------------------------------------

def _varint(data: bytes, i: int) -> Tuple[int, int]:
    b = data[i]
    i += 1
    val, shift = b & 63, 0
    while b & 64:
        b = data[i]
        i += 1
        shift += 6
        val |= (b & 63) << shift
    return val, i


def _svarint(data: bytes, i: int) -> Tuple[int, int]:
    v, i = _varint(data, i)
    return (-(v >> 1) if v & 1 else v >> 1), i


def positions(linetable: bytes, firstlineno: int) -> List[Tuple[int, int, Optional[int], Optional[int], Optional[int], Optional[int]]]:
    """CPython 3.11's location table as (start, end byte offsets, line, end line, column, end column)
    (Objects/locations.md); columns are UTF-8 byte offsets. Parsed from the recorded bytes: no code
    object is made."""
    out = []
    line, i, offset = firstlineno, 0, 0
    try:
        while i < len(linetable):
            first = linetable[i]
            i += 1
            code, length = (first >> 3) & 15, (first & 7) + 1
            end = offset + 2 * length
            if code == 15:
                out.append((offset, end, None, None, None, None))
            elif code == 14:
                delta, i = _svarint(linetable, i)
                line += delta
                end_delta, i = _varint(linetable, i)
                col, i = _varint(linetable, i)
                end_col, i = _varint(linetable, i)
                out.append((offset, end, line, line + end_delta, col - 1 if col else None,
                            end_col - 1 if end_col else None))
            elif code == 13:
                delta, i = _svarint(linetable, i)
                line += delta
                out.append((offset, end, line, line, None, None))
            elif code >= 10:
                line += code - 10
                col, end_col = linetable[i], linetable[i + 1]
                i += 2
                out.append((offset, end, line, line, col, end_col))
            else:
                second = linetable[i]
                i += 1
                col = code * 8 + ((second >> 4) & 7)
                out.append((offset, end, line, line, col, col + (second & 15)))
            offset = end
    except IndexError:
        pass  # a malformed table: what was read so far
    return out


def position_at(pos: list, offset: int) -> Optional[tuple]:
    for p in pos:
        if p[0] <= offset < p[1]:
            return p
    return None


class Sources:
    """Source lines by file: the snapshot's module sources first, then regular files on disk."""

    MAX_FILE = 16 << 20

    def __init__(self, sources: Optional[Node]) -> None:
        self._recorded: Dict[str, Node] = {}
        self._lines: Dict[str, Optional[List[bytes]]] = {}
        if sources is not None and sources.kind == "dict":
            for _name, record in sources.entries():
                path = record.field("path", 0)
                src = record.field("source", 0)
                if path is not None and path.kind == "str" and src is not None and src.kind == "bytes":
                    self._recorded[path.value] = src
                    self._recorded.setdefault(os.path.normpath(path.value), src)

    def lines(self, filename: str) -> Optional[List[bytes]]:
        if filename in self._lines:
            return self._lines[filename]
        found = None
        src = self._recorded.get(filename) or self._recorded.get(os.path.normpath(filename))
        if src is not None and not src.truncated:
            found = src.value.splitlines()
        elif filename and not filename.startswith("<") and "\0" not in filename:
            found = self._from_disk(filename)
        self._lines[filename] = found
        return found

    def _from_disk(self, filename: str) -> Optional[List[bytes]]:
        try:
            st = os.stat(filename)
            if not stat.S_ISREG(st.st_mode) or st.st_size > self.MAX_FILE:
                return None  # never a FIFO or a device named by the snapshot
            fd = os.open(filename, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                with os.fdopen(fd, "rb", closefd=False) as f:
                    return f.read(self.MAX_FILE).splitlines()
            finally:
                os.close(fd)
        except (OSError, ValueError):
            return None

    def line(self, filename: str, lineno: Optional[int]) -> Optional[str]:
        lines = self.lines(filename)
        if lines is None or lineno is None or not 1 <= lineno <= len(lines):
            return None
        return lines[lineno - 1].decode("utf-8", "replace").strip()

    def segment(self, filename: str, p: Optional[tuple]) -> Optional[str]:
        """The source text of a position (its first line when it spans several)."""
        if p is None or p[2] is None:
            return None
        lines = self.lines(filename)
        if lines is None or not 1 <= p[2] <= len(lines):
            return None
        raw = lines[p[2] - 1]
        start = p[4] or 0
        stop = p[5] if p[3] == p[2] and p[5] is not None else len(raw)
        return raw[start:stop].decode("utf-8", "replace").strip() or None


class Code:
    """What the record of a code object says: names, file, line table, resume table."""

    def __init__(self, node: Node) -> None:
        self.filename, self.name, self.qualname, self.firstlineno = "?", "?", "?", 0
        self.linetable = b""
        self._rows: Optional[Dict[str, tuple]] = None
        self._positions: Optional[list] = None
        fields = node.ref(0) if node.kind == "code" else None
        if fields is None or fields.kind != "tuple" or len(fields.items) < 15:
            return
        f = fields.elements(0)
        self.filename = f[_CO_FILENAME].value if f[_CO_FILENAME].kind == "str" else "?"
        self.name = f[_CO_NAME].value if f[_CO_NAME].kind == "str" else "?"
        self.qualname = f[_CO_QUALNAME].value if f[_CO_QUALNAME].kind == "str" else self.name
        self.firstlineno = f[_CO_FIRSTLINENO].value if f[_CO_FIRSTLINENO].kind == "int" else 0
        self.linetable = f[_CO_LINETABLE].value if f[_CO_LINETABLE].kind == "bytes" else b""
        self._consts = Node(node.view, fields.items[_CO_CONSTS])

    @property
    def positions(self) -> list:
        if self._positions is None:
            self._positions = positions(self.linetable, self.firstlineno)
        return self._positions

    def row(self, row_id: Any) -> Optional[tuple]:
        """The resume-table row (id, start, begin, end, line, stack, reason) named `row_id`."""
        if self._rows is None:
            self._rows = {}
            consts = getattr(self, "_consts", None)
            if consts is not None and consts.kind == "tuple" and consts.items:
                table = Node(consts.view, consts.items[-1])
                if table.kind == "tuple" and len(table.items) == 3:
                    marker, _version, rows = table.elements()
                    if marker.value == _RESUME_MARKER and rows.kind == "tuple":
                        for row in rows.elements():
                            try:
                                values = row.plain(2)
                            except ValueError:
                                continue
                            if isinstance(values, tuple) and len(values) >= 5 and isinstance(values[0], str):
                                self._rows.setdefault(values[0], values)
        return self._rows.get(row_id) if isinstance(row_id, str) else None


# --- the program ---------------------------------------------------------------------------------

def program_view(path: str, info: dict, meta: dict, *, depth: Optional[int] = None, show_locals: bool = True,
                 top: int = 10) -> dict:
    """The data of `stasis inspect --json` for a program snapshot (info: _engine.inspect with
    describe=True, its "view" taken out; meta: the payload header's metadata)."""
    view = info["view"]
    _held_left[0] = HELD_TOTAL
    _codes.clear()
    roots = _engine.view_roots(view)
    root = Node(view, roots[0]) if roots else None
    out: Dict[str, Any] = {}
    if root is None or root.kind != "dict":
        out["problem"] = "the payload's root is not a program record"
        return out
    from .layout import PROGRAM_LAYOUT
    layout = root.get_plain("layout")
    if layout != PROGRAM_LAYOUT:
        out["problem"] = f"program layout {layout} (this Stasis reads layout {PROGRAM_LAYOUT}): shown as far as it can be read"
    out["command"] = meta.get("program") or []
    out["target"] = root.get_plain("target")
    out["argv"] = root.get_plain("argv")
    out["cwd"] = root.get_plain("cwd")
    out["generation"] = root.get_plain("generation")
    out["suspension"] = _suspension(root.field("suspension"))
    sources = Sources(root.field("sources"))
    crash = root.field("crash")
    crash_info = None
    if crash is not None and crash.kind == "dict":
        crash_info = {"summary": crash.get_plain("summary"), "thread": crash.get_plain("thread"),
                      "thread_name": crash.get_plain("thread_name"), "traceback": crash.get_plain("traceback")}
    out["crash"] = crash_info
    main_globals = None
    modules_node = root.field("modules")
    if modules_node is not None:
        main_globals = modules_node.field("__main__")
    out["threads"] = _threads(root.field("threads"), sources, depth, show_locals, crash_info, main_globals)
    out["modules"] = _modules(meta.get("modules") or [], root.field("modules"))
    out["heap"] = _heap(view, top)
    out["patches"] = _patches(root.field("patches"))
    return out


def _suspension(n: Optional[Node]) -> dict:
    if n is None or n.kind != "dict":
        return {"trigger": None, "requested_at": None, "captured_at": None, "latency_ms": None}
    trigger, requested, captured = n.get_plain("trigger"), n.get_plain("requested_at"), n.get_plain("captured_at")
    latency = None
    if isinstance(requested, (int, float)) and isinstance(captured, (int, float)):
        latency = round((captured - requested) * 1000, 3)
    return {"trigger": trigger, "requested_at": requested, "captured_at": captured, "latency_ms": latency}


def _threads(n: Optional[Node], sources: Sources, depth: Optional[int], show_locals: bool,
             crash: Optional[dict], main_globals: Optional[Node] = None) -> List[dict]:
    if n is None or n.kind != "list":
        return []
    out = []
    for record in n.elements():
        if record.kind != "dict":
            continue
        ident, name, main = record.get_plain("ident"), record.get_plain("name"), record.get_plain("main")
        daemon = False
        thread = record.field("thread")
        if thread is not None and thread.kind == "object":
            state = thread.ref(2)
            if state is not None and state.kind == "dict":
                flag = state.field("_daemonic", 0)
                daemon = flag is not None and flag.kind == "true"
        frames_node = record.field("frames")
        frames = frames_node.elements() if frames_node is not None and frames_node.kind == "list" else []
        total = len(frames)
        if depth is not None:
            frames = frames[max(0, total - depth):]
        shown = [_frame(f, sources, show_locals) for f in frames]
        if show_locals and main and shown and len(frames) == total \
                and shown[0][0]["function"] == "<module>" and not shown[0][0]["locals"]:
            shown[0][0]["locals"] = _module_data(main_globals)  # the script's frame: its globals
        t = {"name": name, "ident": ident, "main": bool(main), "daemon": daemon, "state": "running", "call": None,
             "frames": [f for f, _ in shown], "frames_omitted": total - len(frames)}
        if shown and shown[-1][1] is not None:
            t["state"], t["call"] = "blocked", shown[-1][1]
        if crash is not None and crash.get("thread") == ident:
            t["state"], t["call"] = "raising", crash.get("summary")
        out.append(t)
    return out


def _frame(record: Node, sources: Sources, show_locals: bool) -> Tuple[dict, Optional[str]]:
    """(frame data, the call it is suspended in, for a frame with a resume row)."""
    code_node = record.field("code", 0)
    code = None
    if code_node is not None:  # one Code per code object: a recursion's frames share it
        code = _codes.get(code_node.id)
        if code is None:
            code = _codes[code_node.id] = Code(Node(code_node.view, code_node.id))
    offset = record.get_plain("offset")
    row_id = record.get_plain("row")
    line, call = None, None
    if code is not None:
        if row_id is not None:
            row = code.row(row_id)
            if row is not None and isinstance(row[4], int):
                line = row[4]
                p = position_at(code.positions, row[2]) if isinstance(row[2], int) else None
                call = sources.segment(code.filename, p) or f"a call at line {line}"
            else:
                call = "a call"
        if line is None and isinstance(offset, int):
            p = position_at(code.positions, offset)
            line = p[2] if p is not None and p[2] is not None else code.firstlineno
    filename = code.filename if code is not None else "?"
    frame: Dict[str, Any] = {"file": filename, "function": code.name if code else "?",
                             "qualname": code.qualname if code else "?", "line": line,
                             "source": sources.line(filename, line)}
    if show_locals:
        frame["locals"] = _locals(record.field("locals"))
        if code is not None and code.qualname == "SocketIO.readinto" and filename.endswith("/socket.py"):
            for local in frame["locals"]:  # recorded as the type (snapshot/capture.cpp, frame_record)
                if local["repr"] == "builtins.memoryview":
                    local.update(type="memoryview", repr="<the reader's buffer, lent again on resume>")
    return frame, call


def _locals(n: Optional[Node]) -> List[dict]:
    if n is None or n.kind != "dict":
        return []
    out = []
    for key, value in n.entries(_PEEK):
        if key.kind != "str" or key.value.startswith("."):
            continue  # hidden temporaries of the resumable form
        out.append(describe_value(key.value, value))
    return out


def _module_data(globals_: Optional[Node]) -> List[dict]:
    """A module's globals that are data: not modules, functions, classes or dunder names."""
    if globals_ is None or globals_.kind != "dict":
        return []
    out = []
    for key, value in globals_.entries(_PEEK):
        if key.kind != "str" or key.value.startswith("__"):
            continue
        if value.kind in ("module", "function", "class", "global", "code"):
            continue
        out.append(describe_value(key.value, value))
    return out


def _modules(names: List[str], modules: Optional[Node]) -> List[dict]:
    globals_of: Dict[str, Node] = {}
    if modules is not None and modules.kind == "dict":
        for key, value in modules.entries():
            if key.kind == "str":
                globals_of[key.value] = value
    out = []
    for name in names or list(globals_of):
        g = globals_of.get(name)
        entry: Dict[str, Any] = {"name": name, "globals": None, "bytes": None}
        if g is not None and g.kind == "dict":
            size, _objects, complete = held(g)
            entry.update(globals=g.len, bytes=size, bytes_complete=complete)
        out.append(entry)
    return out


def _heap(view: Any, top: int) -> dict:
    rows = _engine.view_heap(view)
    by_module: Dict[str, List[int]] = {}
    for module, _qualname, count, size in rows:
        m = by_module.setdefault(module or "?", [0, 0])
        m[0] += count
        m[1] += size
    def name(module: str, qualname: str) -> str:
        return qualname if module == "builtins" else f"{module}.{qualname}" if module else qualname
    modules = sorted(by_module.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    return {"objects": sum(r[2] for r in rows), "bytes": sum(r[3] for r in rows),
            "by_type": [{"type": name(m, q), "module": m, "count": c, "bytes": b} for m, q, c, b in rows[:top]],
            "by_module": [{"module": m, "count": c, "bytes": b} for m, (c, b) in modules[:top]],
            "types": len(rows), "modules": len(modules)}


def _patches(n: Optional[Node]) -> List[dict]:
    if n is None or n.kind != "list":
        return []
    from .layout import PatchRecord
    out = []
    for p in n.elements():
        try:
            record = PatchRecord.from_payload(p.plain())
            data = record.to_payload()
            data["lines"] = record.describe()
        except Exception:  # any failure of a description is shown, never raised
            data = {"lines": ["(a patch record this Stasis cannot read)"]}
        out.append(data)
    return out


# --- text ------------------------------------------------------------------------------------------

def _when(t: Any) -> str:
    if not isinstance(t, (int, float)) or not math.isfinite(t):
        return "?"
    try:
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    except (OverflowError, OSError, ValueError):
        return "?"


def format_program(data: dict, hash_seed: Any, show_locals: bool) -> str:
    """The text of `stasis inspect` after the header lines, for a program snapshot."""
    e = escape
    lines: List[str] = []
    if data.get("problem"):
        lines.append(f"note       {e(data['problem'])}")
    command = data.get("command") or []
    if command[:1] == ["module"]:
        cmd = "-m " + " ".join(shlex.quote(e(a)) for a in command[1:])
    elif command:
        cmd = " ".join(shlex.quote(e(a)) for a in command[1:])
    else:
        cmd = " ".join(shlex.quote(e(a)) for a in (data.get("argv") or []))
    lines.append(f"command    {cmd}")
    if data.get("cwd"):
        lines.append(f"cwd        {e(data['cwd'])}")
    lines.append(f"hash seed  {hash_seed}")
    s = data.get("suspension") or {}
    trigger = s.get("trigger")
    what = _TRIGGERS[trigger] if trigger in _TRIGGERS else e(trigger)  # signal SIGTERM: as it is
    latency = s.get("latency_ms")
    lat = f", captured {latency:.1f} ms after the request" if isinstance(latency, (int, float)) else ""
    lines.append(f"suspended  by {what}: requested {_when(s.get('requested_at'))}{lat}"
                 + (f" (suspension {data['generation']})" if isinstance(data.get("generation"), int) else ""))
    if data.get("crash"):
        c = data["crash"]
        lines.append(f"crash      {e(c.get('summary'))} in thread {e(c.get('thread_name'))}")
    mods = []
    for m in data.get("modules") or []:
        if m.get("bytes") is not None and m.get("globals") is not None:
            mods.append(f"{e(m['name'])} ({m['globals']} globals, {'' if m.get('bytes_complete', True) else '>= '}"
                        f"{size_text(m['bytes'])})")
        else:
            mods.append(e(m["name"]))
    lines.append(f"modules    {', '.join(mods) if mods else '(none)'}")
    for t in data.get("threads") or []:
        lines.append("")
        flags = ["main thread" if t["main"] else "daemon" if t["daemon"] else "non-daemon"]
        state = t["state"] if not t.get("call") else \
            f"raising {e(t['call'])}" if t["state"] == "raising" else f"{t['state']} in {e(t['call'])}"
        lines.append(f"Thread {e(t['ident'])} \"{e(t['name'])}\" ({', '.join(flags)}; {state})")
        if t.get("frames_omitted"):
            lines.append(f"  ... {t['frames_omitted']} outer frame(s) not shown (--depth)")
        for f in t["frames"]:
            lines.append(f"  {e(f['function'])} ({e(f['file'])}:{e(f['line']) if f['line'] is not None else '?'})")
            if f.get("source"):
                lines.append(f"    {e(f['source'])}")
            if show_locals and f.get("locals"):
                width = max(len(e(v["name"])) for v in f["locals"])
                for v in f["locals"]:
                    parts = [e(v["type"])]
                    if "len" in v:
                        parts.append(f"len {v['len']:,}")
                    if v["bytes"] is None:
                        parts.append("size not estimated")
                    elif v["bytes"]:  # None, True, False: nothing of their own
                        parts.append(size_text(v["bytes"]) if v["bytes_complete"] else f">= {size_text(v['bytes'])}")
                    lines.append(f"        {e(v['name']).ljust(width)} = {e(v['repr'])}  [{', '.join(parts)}]")
    heap = data.get("heap") or {}
    lines.append("")
    lines.append(f"heap       {heap.get('objects', 0):,} objects, {size_text(heap.get('bytes', 0))} "
                 "(sizes estimated from the records, like sys.getsizeof)")
    if heap.get("by_type"):
        lines.append(f"  by type (top {len(heap['by_type'])} of {heap['types']}):")
        for r in heap["by_type"]:
            lines.append(f"    {r['count']:>12,}  {size_text(r['bytes']):>10}  {e(r['type'])}")
        lines.append(f"  by module of the type (top {len(heap['by_module'])} of {heap['modules']}):")
        for r in heap["by_module"]:
            lines.append(f"    {r['count']:>12,}  {size_text(r['bytes']):>10}  {e(r['module'])}")
    patches = data.get("patches") or []
    lines.append("")
    lines.append(f"patches    {len(patches) or 'none'}")
    for p in patches:
        lines.extend(f"  {e(line)}" for line in p.get("lines", []))
    return "\n".join(lines) + "\n"


def jsonable(value: Any) -> Any:
    """The program's data with only what JSON holds: a crafted snapshot's records may put bytes,
    complex numbers or tuple keys where names and numbers belong (shown as their repr)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else repr(k)): jsonable(v) for k, v in value.items()}
    return repr(value)


def inspect_program(path: str, info: dict, key: Optional[bytes], *, depth: Optional[int], show_locals: bool,
                    top: int) -> dict:
    """program_view for the snapshot at `path` (info from _engine.inspect(describe=True))."""
    header = _engine.payload_header(path, key=key, verify=False)
    try:
        meta = json.loads(header["meta"]) if header["meta"] else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    try:
        return program_view(path, info, meta, depth=depth, show_locals=show_locals, top=top)
    except StasisError:
        raise
    except Exception as e:  # any failure of a description is shown, never raised
        raise CorruptSnapshotError(f"the program records of {path} cannot be read as this Stasis writes them "
                                   f"({type(e).__name__}: {e})") from None
