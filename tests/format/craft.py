"""Crafts snapshot files from a hand-written op stream, with every checksum valid: what a hostile
writer can produce. Used by the hostile-file tests (tests/format/test_hostile.py) and to write the
hostile fuzz seeds (tests/fuzz/hostile/regen.py).

The container is built the way format/snapshot_file.cpp writes it (FORMAT.md): a preamble taken
from a real snapshot of the same kind (so its versions match this build), a zstd frame (the zstd
command, which writes the content checksum the reader verifies) of a cereal portable-binary archive
with the PayloadHeader, OpChunk and PayloadEnd records, and the footer.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import zlib
from typing import Dict, Iterable, Optional, Union

from stasis import _engine

# --- op codes: read from THE op table (format/schema.h STASIS_OPS), so a crafted stream always
# uses this build's codes; each op is a module constant named in UPPER_SNAKE_CASE (IntSmall ->
# INT_SMALL), and OPS maps every name of the table to its code.
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "format", "schema.h")


def _op_table() -> Dict[str, int]:
    with open(SCHEMA) as f:
        text = f.read()
    table = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"X\((\w+), 0x([0-9A-Fa-f]{2}),", text)}
    if not table:
        raise RuntimeError(f"craft: no op table found in {SCHEMA}")
    return table


OPS: Dict[str, int] = _op_table()
for _name, _code in OPS.items():
    globals()[re.sub(r"(?<!^)(?=[A-Z])", "_", _name).upper()] = _code
del _name, _code


def uvar(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def svar(v: int) -> bytes:
    return uvar(2 * v if v >= 0 else -2 * v - 1)  # zigzag


class Ops:
    """A small assembler: Ops().str("os").str("system").op(GLOBAL).bytes() ..."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def op(self, code: int, *args: int) -> "Ops":
        self.buf.append(code)
        for a in args:
            self.buf += uvar(a)
        return self

    def raw(self, data: bytes) -> "Ops":
        self.buf += data
        return self

    def int(self, v: int) -> "Ops":
        return self.op(INT_SMALL).raw(svar(v))

    def str(self, s: str) -> "Ops":
        b = s.encode("utf-8", "surrogatepass")
        return self.op(STR, len(b)).raw(b)

    def bytes_(self, b: bytes) -> "Ops":
        return self.op(BYTES, len(b)).raw(b)

    def global_(self, module: str, qualname: str) -> "Ops":
        return self.str(module).str(qualname).op(GLOBAL)

    def module(self, name: str) -> "Ops":
        return self.str(name).op(MODULE)

    def tuple(self, n: int) -> "Ops":
        return self.op(TUPLE, n)

    def value(self, v) -> "Ops":
        """Plain values: None, bool, int, str, bytes, tuples and flat lists/dicts of them."""
        if v is None:
            return self.op(NONE)
        if v is True or v is False:
            return self.op(TRUE if v else FALSE)
        if isinstance(v, int):
            return self.int(v) if -2**62 < v < 2**62 else self.op(INT_BIG, (v.bit_length() + 8) // 8).raw(
                v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True))
        if isinstance(v, str):
            return self.str(v)
        if isinstance(v, bytes):
            return self.bytes_(v)
        if isinstance(v, tuple):
            for x in v:
                self.value(x)
            return self.tuple(len(v))
        if isinstance(v, list):
            self.op(EMPTY_LIST)
            for x in v:
                self.value(x)
            return self.op(APPENDS, len(v)) if v else self
        if isinstance(v, dict):
            self.op(EMPTY_DICT)
            for k, x in v.items():
                self.value(k)
                self.value(x)
            return self.op(SET_ITEMS, len(v)) if v else self
        raise TypeError(f"craft: no plain encoding for {type(v).__name__}")

    def bytes(self) -> bytes:
        return bytes(self.buf)


def _compress(raw: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", "--check", "-3"], input=raw, capture_output=True,
                          check=True).stdout


def _preamble(kind: str) -> bytes:
    real = _engine.dumps(None, kind=kind)
    size = 12 + int.from_bytes(real[10:12], "little") + 4
    return real[:size]


def _string(s: Union[str, bytes]) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def payload(ops: bytes, *, kind: str = "objects", root_count: int = 1, hash_seed: int = 0,
            meta: Union[str, bytes] = "", memo_count: int = 0, chunk: int = 1 << 18) -> bytes:
    """The raw cereal archive: header, op chunks, end record."""
    out = bytearray(b"\x01")  # PortableBinaryArchive: little-endian
    out += b"\x01" + struct.pack("<I", 1) + _string(kind) + struct.pack("<QQ", root_count, hash_seed)
    out += _string(meta)
    chunks = [ops[i:i + chunk] for i in range(0, len(ops), chunk)] or []
    for c in chunks:
        out += b"\x02" + struct.pack("<Q", len(c)) + c
    out += b"\x03" + struct.pack("<I", 1) + struct.pack("<QQQQ", len(chunks), len(ops), 0, memo_count)
    return bytes(out)


FOOTER_SIZE = 40


def footer(compressed_size: int, raw_size: int, records: int) -> bytes:
    """The footer (FORMAT.md): sizes, record count, reserved word, its CRC, the end marker."""
    fields = struct.pack("<QQQI", compressed_size, raw_size, records, 0)
    return fields + struct.pack("<I", zlib.crc32(fields)) + b"STASEND\n"


def snapshot(ops: Union[bytes, Ops], *, kind: str = "objects", key: Optional[bytes] = None,
             raw_payload: Optional[bytes] = None, **kw) -> bytes:
    """A complete snapshot file around `ops`, every checksum valid (and signed with `key`)."""
    if isinstance(ops, Ops):
        ops = ops.bytes()
    raw = raw_payload if raw_payload is not None else payload(ops, kind=kind, **kw)
    head = bytearray(_preamble(kind))
    if key is not None:  # set the signed flag and recompute the preamble CRC
        head[12:16] = struct.pack("<I", struct.unpack("<I", head[12:16])[0] | 1)
        head[-4:] = struct.pack("<I", zlib.crc32(bytes(head[:-4])))
    body = _compress(raw)
    records = 2 + len(range(0, len(ops), 1 << 18)) if raw_payload is None else 3
    data = bytes(head) + body + footer(len(body), len(raw), records)
    if key is not None:
        data += hmac.new(key, data, hashlib.sha256).digest()
    return data


SEGMENT_MAGIC = 0x184D2A5E
PLANE_COMPRESSED = 0x80000000


def segment(data: bytes, width: int = 1, compress: Iterable[int] = (), checksum: Optional[int] = None,
            planes: Optional[list] = None) -> bytes:
    """A buffer segment (FORMAT.md): skippable-frame magic, size, raw size, width, one length
    word per plane, the planes (byte b of every item of `width` bytes; those in `compress` as a
    zstd frame), then the XXH64 of everything after the size field. `planes` replaces the
    stored planes (a list of bytes, to craft damage)."""
    stored = []
    for b in range(width):
        plane = data[b::width] if width > 1 else data
        stored.append(_compress(plane) if b in set(compress) else plane)
    if planes is not None:
        stored = planes
    words = [len(p) | (PLANE_COMPRESSED if b in set(compress) else 0) for b, p in enumerate(stored)]
    body = struct.pack("<IB", len(data), width) + b"".join(struct.pack("<I", w) for w in words) + b"".join(stored)
    if checksum is None:
        checksum = xxh64(body)
    return struct.pack("<II", SEGMENT_MAGIC, len(body) + 8) + body + struct.pack("<Q", checksum)


def raw_segment(data: bytes, checksum: Optional[int] = None) -> bytes:
    """A segment holding `data` as it is (one plane, not compressed)."""
    return segment(data, checksum=checksum)


def snapshot_with_segments(segments: bytes, make_ops, **kw) -> bytes:
    """A snapshot whose payload is: a zstd frame with the header record, `segments` (raw
    segments, or any bytes), then a zstd frame with the op chunks of make_ops(at) — `at` being the
    payload offset of `segments` — and the end record. Every checksum valid."""
    first = _compress(payload(b"", **kw)[:-(1 + 4 + 32)])  # the header record only
    ops = make_ops(len(first))
    ops = ops.bytes() if isinstance(ops, Ops) else ops
    whole = payload(ops, **kw)
    rest = whole[len(payload(b"", **kw)) - (1 + 4 + 32):]
    head = _preamble(kw.get("kind", "objects"))
    body = first + segments + _compress(rest)
    records = 2 + len(range(0, len(ops), 1 << 18))
    return head + body + footer(len(body), len(whole), records)


def xxh64(data: bytes) -> int:
    """XXH64 with seed 0 (the checksum of a raw segment), for crafting."""
    m = (1 << 64) - 1
    p1, p2, p3, p4, p5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                          0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)

    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & m

    def rnd(acc, v):
        return rotl((acc + v * p2) & m, 31) * p1 & m

    n, i = len(data), 0
    if n >= 32:
        v = [(p1 + p2) & m, p2, 0, (-p1) & m]
        while i + 32 <= n:
            for j in range(4):
                v[j] = rnd(v[j], int.from_bytes(data[i + 8 * j:i + 8 * j + 8], "little"))
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
        for x in v:
            h = ((h ^ rnd(0, x)) * p1 + p4) & m
    else:
        h = p5
    h = (h + n) & m
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, int.from_bytes(data[i:i + 8], "little")), 27) * p1 + p4) & m
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * p1 & m), 23) * p2 + p3) & m
        i += 4
    while i < n:
        h = rotl(h ^ (data[i] * p5 & m), 11) * p1 & m
        i += 1
    h = (h ^ (h >> 33)) * p2 & m
    h = (h ^ (h >> 29)) * p3 & m
    return h ^ (h >> 32)


def program_meta(**fields) -> str:
    meta = {"modules": ["__main__"], "sys_path": [], "roots": [], "rewrite": [], "no_rewrite": [],
            "threads": 1, "handler_modules": [], "program": ["script", "/srv/prog.py"]}
    meta.update(fields)
    return json.dumps(meta)


def code_fields(code) -> tuple:
    """The 18 fields of the Code op (FORMAT.md), of a real code object."""
    return (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_nlocals,
            code.co_stacksize, code.co_flags, code.co_code, code.co_consts, code.co_names,
            code.co_varnames, code.co_filename, code.co_name, code.co_qualname, code.co_firstlineno,
            code.co_linetable, code.co_exceptiontable, code.co_freevars, code.co_cellvars)


def ops_of_code(fields: Iterable) -> Ops:
    """A Code op from 18 plain fields (nested code objects in co_consts are not supported)."""
    o = Ops()
    for f in fields:
        o.value(f)
    return o.tuple(18).op(CODE)


# --- building blocks of hostile streams (tests/format/test_hostile_*.py) --------------------------

def instance(o: Ops, module: str, qualname: str, attrs: dict) -> Ops:
    """An instance of an importable class made as plain instances are (NewObj, then Build of its
    __dict__), whose attributes are `attrs`: {name: plain value, or a callable(o) that writes the
    value's ops}."""
    o.global_(module, qualname).op(TUPLE, 0).op(NEW_OBJ).op(EMPTY_DICT)
    for name, value in attrs.items():
        o.str(name)
        value(o) if callable(value) else o.value(value)
    return o.op(SET_ITEMS, len(attrs)).op(BUILD)


def partial_of(o: Ops, module: str, qualname: str, *args) -> Ops:
    """functools.partial(module.qualname, *args): data, which loading itself never calls."""
    o.global_("functools", "partial").global_(module, qualname)
    for a in args:
        o.value(a)
    return o.op(TUPLE, 1 + len(args)).op(REDUCE)


def environ_gadget(o: Ops, command: str, via: str = "decodekey") -> Ops:
    """An os._Environ whose key codec is os.system and whose data holds `command`: its repr and
    iteration call decodekey(command), its __setitem__ encodekey(key) — library code calling an
    attribute the snapshot chose."""
    return instance(o, "os", "_Environ", {
        "encodekey": lambda o: o.global_("posix", "system") if via == "encodekey" else o.global_("builtins", "str"),
        "decodekey": lambda o: o.global_("posix", "system") if via == "decodekey" else o.global_("builtins", "str"),
        "encodevalue": lambda o: o.global_("builtins", "str"),
        "decodevalue": lambda o: o.global_("builtins", "str"),
        "_data": {command: "v"},
    })


def klass(o: Ops, name: str, bases: Iterable = (), attrs: Optional[dict] = None,
          meta: tuple = ("builtins", "type")) -> Ops:
    """A class by value: Class(meta, name, bases, {__module__, **attrs}); bases are (module,
    qualname) pairs; attrs values are plain or callables writing their ops."""
    o.global_(*meta).str(name)
    bases = list(bases)
    for b in bases:
        o.global_(*b)
    o.op(TUPLE, len(bases)).op(EMPTY_DICT).str("__module__").str("hostile")
    for k, v in (attrs or {}).items():
        o.str(k)
        v(o) if callable(v) else o.value(v)
    return o.op(SET_ITEMS, 1 + len(attrs or {})).op(CLASS)


def function_of(o: Ops, code, name: str = "f") -> Ops:
    """A function by value around `code` (a code object without nested code objects), with
    builtins as its globals and no closure."""
    return o.raw(ops_of_code(code_fields(code)).bytes()).module("builtins").str(name).str(name).op(NONE).op(FUNCTION)
