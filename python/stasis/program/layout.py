"""The program snapshot's layout: typed records for the root of a suspended program's payload, its
threads and frames, and the header metadata that resume reads before it builds any object.

The field lists and the layout version are defined once, in format/program_schema.h (exported by
the engine as PROGRAM_LAYOUT, FRAME_FIELDS, THREAD_FIELDS, PROGRAM_FIELDS, META_FIELDS); the
dataclasses here are the Python side's typed view and are checked against those lists at import.
In the payload every record is a plain dict keyed by field name: the heap engine writes dicts
natively, loading them calls no class, and the C++ side (snapshot/capture.cpp builds frame
records, restore/replay.cpp reads them) reads fields by name. FORMAT.md "Program payloads"
documents each field (tests/format/test_program_layout.py checks it names exactly these).
"""
from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .. import _engine
from ..errors import CorruptSnapshotError, IncompatibleSnapshotError

PROGRAM_LAYOUT: int = _engine.PROGRAM_LAYOUT
# Names of the modules that patches given as update modules become (kept with the program: the
# functions and classes they define may be in its heap). No source file can be imported as one.
PATCH_MODULE_PREFIX = "__stasis_patch_"


def _fields(cls: type) -> tuple:
    return tuple(f.name for f in dataclasses.fields(cls))


def _check_keys(what: str, record: Any, names: tuple) -> dict:
    if not isinstance(record, dict):
        raise CorruptSnapshotError(f"{what} is a {type(record).__name__}, not a record")
    missing = [n for n in names if n not in record]
    extra = [k for k in record if k not in names]
    if missing or extra:
        detail = ", ".join([f"missing {m!r}" for m in missing] + [f"unexpected {e!r}" for e in extra])
        raise CorruptSnapshotError(f"{what} does not have the fields of layout {PROGRAM_LAYOUT}: {detail}")
    return record


@dataclass
class FrameRecord:
    """One frame of a thread's stack (snapshot/capture.h says how each field is captured)."""
    code: types.CodeType
    row: Optional[str]      # resume-table row a caller is suspended in; None for the innermost frame
    offset: int             # byte offset replay jumps to
    locals: Dict[str, Any]  # bound fast locals by name; cell variables as their cell objects
    stack: tuple            # value-stack entries pushed before the jump (structural values)

    @classmethod
    def from_payload(cls, record: Any) -> "FrameRecord":
        r = _check_keys("a frame record", record, _FRAME)
        if not isinstance(r["code"], types.CodeType) or type(r["offset"]) is not int \
                or not isinstance(r["locals"], dict) or not isinstance(r["stack"], tuple):
            raise CorruptSnapshotError("a frame record has fields of the wrong types")
        return cls(**r)

    def to_payload(self) -> dict:
        return {name: getattr(self, name) for name in _FRAME}


@dataclass
class ThreadRecord:
    """One thread of the program, its frames bottom (base) first: for the main thread from the
    __main__ frame, for another thread from the frame Thread._bootstrap_inner called (its run)."""
    ident: int
    name: str
    main: bool
    frames: List[FrameRecord]
    thread: Any = None      # the threading.Thread object of a thread other than the main thread

    @classmethod
    def from_payload(cls, record: Any) -> "ThreadRecord":
        r = _check_keys("a thread record", record, _THREAD)
        if not isinstance(r["frames"], list) or not r["frames"]:
            raise CorruptSnapshotError("a thread record has no frames")
        if type(r["main"]) is not bool or type(r["ident"]) is not int:
            raise CorruptSnapshotError("a thread record's ident or main flag has the wrong type")
        if not r["main"]:
            import threading  # a thread other than the main one is started again from its object
            if not isinstance(r["thread"], threading.Thread):
                raise CorruptSnapshotError("a thread record other than the main thread's has no Thread object")
        return cls(ident=r["ident"], name=r["name"], main=r["main"],
                   frames=[FrameRecord.from_payload(f) for f in r["frames"]], thread=r["thread"])

    def to_payload(self) -> dict:
        return {"ident": self.ident, "name": self.name, "main": self.main,
                "frames": [f.to_payload() for f in self.frames], "thread": self.thread}


@dataclass
class Suspension:
    """When and why the program was suspended."""
    trigger: str            # quota, signal NAME (signal SIGTERM), suspend-after, api (stasis.suspend), checkpoint, crash
    requested_at: float     # Unix seconds: the request
    captured_at: float      # Unix seconds: every thread's stack captured

    @classmethod
    def from_payload(cls, record: Any) -> "Suspension":
        r = _check_keys("the suspension record", record, _fields(cls))
        return cls(**r)

    def to_payload(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ModuleSource:
    """The source one of the program's own modules was compiled from (kept so that a patch given
    as a new source file can be diffed against the code that is running, and frames mapped)."""
    path: str               # the module's file when it was imported (for __main__: the script)
    source: bytes           # its source bytes, as compiled
    sha256: str             # hex digest of `source`

    @classmethod
    def from_payload(cls, record: Any) -> "ModuleSource":
        r = _check_keys("a module source record", record, _fields(cls))
        if not isinstance(r["path"], str) or not isinstance(r["source"], bytes):
            raise CorruptSnapshotError("a module source record has fields of the wrong types")
        return cls(**r)

    def to_payload(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PatchFile:
    """One file of a patch: a new source of one of the program's modules, or an update module."""
    kind: str               # "source" or "update"
    path: str               # the file as given (absolute)
    module: Optional[str]   # for a source: the program module it replaced
    sha256: str             # hex digest of the file's bytes

    @classmethod
    def from_payload(cls, record: Any) -> "PatchFile":
        return cls(**_check_keys("a patch file record", record, _fields(cls)))

    def to_payload(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PatchRecord:
    """One patch applied to the program (`stasis patch`, `stasis resume --patch`), oldest first
    in ProgramState.patches: what `stasis inspect` lists as the snapshot's patch history."""
    applied_at: float       # Unix seconds
    by: str                 # "stasis patch" or "stasis resume --patch"
    files: List[PatchFile]
    changes: List[str]      # what it changed, one line each ("redefine job.helper", ...)
    frames: List[str]       # the frames it moved to new code ("MainThread job.process line 14 -> 16")

    @classmethod
    def from_payload(cls, record: Any) -> "PatchRecord":
        r = dict(_check_keys("a patch record", record, _fields(cls)))
        if not isinstance(r["files"], list):
            raise CorruptSnapshotError("a patch record's files are not a list")
        r["files"] = [PatchFile.from_payload(f) for f in r["files"]]
        return cls(**r)

    def to_payload(self) -> dict:
        return {"applied_at": self.applied_at, "by": self.by, "files": [f.to_payload() for f in self.files],
                "changes": list(self.changes), "frames": list(self.frames)}

    def describe(self) -> List[str]:
        """Lines for `stasis inspect`: when, how, each file with its hash, then what changed."""
        import datetime
        when = datetime.datetime.fromtimestamp(self.applied_at, datetime.timezone.utc)
        lines = [f"{when:%Y-%m-%d %H:%M:%S} UTC by {self.by}"]
        for f in self.files:
            what = f"source of {f.module}" if f.kind == "source" else "update module"
            lines.append(f"  {what}: {f.path} (sha256 {f.sha256[:16]})")
        lines += [f"  {c}" for c in self.changes] + [f"  frame {fr}" for fr in self.frames]
        return lines


@dataclass
class CrashRecord:
    """Why a crash snapshot (`--snapshot-on-crash`) was written: the exception that was about to
    end the program, and the thread it was raised in. The innermost frame of that thread is
    positioned at the start of the statement that raised it."""
    thread: int             # ident (in the crashed process) of the thread that raised it
    thread_name: str
    exception: Any          # the exception object (no __traceback__), or None if it could not be kept
    summary: str            # "KeyError: 'gamma'"
    traceback: str          # the stack as it stood when it was raised, formatted like a traceback

    @classmethod
    def from_payload(cls, record: Any) -> Optional["CrashRecord"]:
        if record is None:
            return None
        return cls(**_check_keys("the crash record", record, _fields(cls)))

    def to_payload(self) -> dict:
        return {name: getattr(self, name) for name in _fields(self)}


@dataclass
class ProgramState:
    """The root record of a program payload."""
    target: str                 # the script (or module name with -m)
    argv: List[str]
    path: List[str]             # sys.path
    cwd: str
    roots: List[str]            # the import hook's selection (compiler_hooks)
    rewrite: List[str]
    no_rewrite: List[str]
    handlers: List[Any]         # stasis.HandlerRegistration of handlers registered by its own modules:
                                # written before every other object, registered as they load
    modules: Dict[str, dict]    # {name: globals} of the program's own modules, by value
    base_code: types.CodeType   # the code of __main__
    threads: List[ThreadRecord]  # the main thread first
    checkpoint: Optional[int]   # ident of the thread whose stasis.checkpoint() wrote it, or None
    random: Any                 # random.getstate()
    library: Dict[str, Any]     # {module: stasis.module_state(module)} of registered library state
    recursion_limit: int
    signals: Dict[int, Any]     # {signum: handler} set by the program
    atexit: List[tuple]         # [(func, args, kwargs)] registered by the program's own modules
    generation: int             # how many suspensions this run has been through
    suspension: Suspension
    sources: Dict[str, ModuleSource] = dataclasses.field(default_factory=dict)  # by module name
    patches: List[PatchRecord] = dataclasses.field(default_factory=list)        # oldest first
    crash: Optional[CrashRecord] = None      # set in a snapshot written by --snapshot-on-crash
    # [(path, offset, data)]: bytes the program had buffered for its files at a periodic checkpoint
    # (written by the parent later, perhaps never): written at resume (periodic.py, writer.py)
    pending_writes: List[tuple] = dataclasses.field(default_factory=list)
    layout: int = PROGRAM_LAYOUT

    @classmethod
    def from_payload(cls, root: Any) -> "ProgramState":
        layout = root.get("layout") if isinstance(root, dict) else None
        if layout != PROGRAM_LAYOUT:
            raise IncompatibleSnapshotError(f"program layout {layout} found, this Stasis reads layout "
                                            f"{PROGRAM_LAYOUT}")
        r = _check_keys("the program record", root, _PROGRAM)
        values = dict(r)
        values["threads"] = [ThreadRecord.from_payload(t) for t in r["threads"]] \
            if isinstance(r["threads"], list) else None
        if not values["threads"] or sum(t.main for t in values["threads"]) != 1:
            raise CorruptSnapshotError("the program record must hold exactly one main thread")
        values["suspension"] = Suspension.from_payload(r["suspension"])
        if not isinstance(r["sources"], dict) or not isinstance(r["patches"], list):
            raise CorruptSnapshotError("the program record's sources or patches have the wrong type")
        values["sources"] = {name: ModuleSource.from_payload(s) for name, s in r["sources"].items()}
        values["patches"] = [PatchRecord.from_payload(p) for p in r["patches"]]
        values["crash"] = CrashRecord.from_payload(r["crash"])
        if not isinstance(r["base_code"], types.CodeType):
            raise CorruptSnapshotError("the program record's base code is not a code object")
        return cls(**values)

    def to_payload(self) -> dict:
        out = {name: getattr(self, name) for name in _PROGRAM}
        out["threads"] = [t.to_payload() for t in self.threads]
        out["suspension"] = self.suspension.to_payload()
        out["sources"] = {name: s.to_payload() for name, s in self.sources.items()}
        out["patches"] = [p.to_payload() for p in self.patches]
        out["crash"] = self.crash.to_payload() if self.crash is not None else None
        return out

    def patch_history(self) -> List[PatchRecord]:
        """The patches applied to this program, oldest first (for `stasis inspect`)."""
        return list(self.patches)

    @property
    def main_thread(self) -> ThreadRecord:
        return next(t for t in self.threads if t.main)


@dataclass
class ProgramMeta:
    """The payload header's `meta` JSON: what resume sets up before it builds any object."""
    modules: List[str]          # the program's own modules, created empty first
    sys_path: List[str]
    roots: List[str]
    rewrite: List[str]
    no_rewrite: List[str]
    threads: int
    handler_modules: List[str]  # modules whose handlers the payload needs, imported first (library
                                # modules with built-in handlers; modules that called stasis.register)
    program: List[str] = dataclasses.field(default_factory=list)  # ["script", realpath | "module",
    #                                                                name, *args]: what was run

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ProgramMeta":
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise CorruptSnapshotError("the snapshot's program metadata is not valid JSON") from None
        r = _check_keys("the program metadata", raw, _META)
        for name in _META:
            want = int if name == "threads" else list
            value = r[name]
            if type(value) is not want or (want is list and not all(isinstance(x, str) for x in value)):
                raise CorruptSnapshotError(f"the program metadata field {name!r} has the wrong type")
        return cls(**r)


_FRAME = _fields(FrameRecord)
_THREAD = _fields(ThreadRecord)
_PROGRAM = ("layout",) + tuple(n for n in _fields(ProgramState) if n != "layout")
_META = _fields(ProgramMeta)

# The typed view and the schema must agree, field for field (format/program_schema.h).
for _ours, _theirs, _what in ((_FRAME, _engine.FRAME_FIELDS, "frame"), (_THREAD, _engine.THREAD_FIELDS, "thread"),
                              (_PROGRAM, _engine.PROGRAM_FIELDS, "program"), (_META, _engine.META_FIELDS, "meta")):
    if set(_ours) != set(_theirs):
        raise ImportError(f"stasis: the {_what} record of program/layout.py {_ours} differs from "
                          f"format/program_schema.h {_theirs}: rebuild the engine")
