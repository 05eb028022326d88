"""Stasis: suspend a running CPython 3.11 program into a snapshot and resume it elsewhere.

Object graphs:  dumps(obj) -> bytes, loads(data), dump(obj, path), load(path)
Programs:       suspend(path=None), checkpoint(path) -> bool   (see `stasis run`)
Errors:         StasisError and its subclasses (stasis.errors)
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

from . import _engine
from .errors import (EXIT_SUSPENDED, CorruptSnapshotError, IncompatibleSnapshotError,
                     NotASnapshotError, NotAvailableError, NotSuspendableError, SignatureError,
                     SnapshotError, SnapshotIOError, StasisError, TruncatedSnapshotError,
                     UnsupportedObjectError, BY_CODE)

__all__ = [
    "dumps", "loads", "dump", "load", "inspect", "suspend", "checkpoint",
    "StasisError", "SnapshotError", "NotASnapshotError", "TruncatedSnapshotError",
    "CorruptSnapshotError", "IncompatibleSnapshotError", "SignatureError",
    "UnsupportedObjectError", "NotAvailableError", "SnapshotIOError", "NotSuspendableError",
    "EXIT_SUSPENDED", "FORMAT_VERSION", "__version__",
]

_engine.register_error_classes(BY_CODE)

FORMAT_VERSION: int = _engine.FORMAT_VERSION
__version__: str = _engine.ENGINE_VERSION

PathLike = Union[str, bytes, "os.PathLike[str]"]


def read_key(key_file: Optional[PathLike] = None) -> Optional[bytes]:
    """The signing key: the bytes of `key_file`, else of $STASIS_KEY_FILE, else None."""
    path = key_file if key_file is not None else os.environ.get("STASIS_KEY_FILE") or None
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            key = f.read()
    except OSError as e:
        raise SnapshotIOError(f"cannot read key file {os.fsdecode(path)}: {e.strerror}") from None
    if not key:
        raise SnapshotIOError(f"key file {os.fsdecode(path)} is empty")
    return key


def dumps(obj: Any, *, key_file: Optional[PathLike] = None, level: int = 3) -> bytes:
    """Snapshot the object graph reachable from `obj` into bytes (a complete snapshot file)."""
    return _engine.dumps(obj, key=read_key(key_file), level=level)


def loads(data: bytes, *, key_file: Optional[PathLike] = None) -> Any:
    """Rebuild an object graph from `dumps` output, validating it completely first."""
    return _engine.loads(data, key=read_key(key_file))


def dump(obj: Any, path: PathLike, *, key_file: Optional[PathLike] = None, level: int = 3) -> None:
    """Write a snapshot of `obj` to `path` atomically (an existing file is replaced only when the
    new one is complete and durable)."""
    _engine.dump(obj, path, key=read_key(key_file), level=level)


def load(path: PathLike, *, key_file: Optional[PathLike] = None) -> Any:
    """Read the object graph of the snapshot at `path`, validating it completely first."""
    return _engine.load(path, key=read_key(key_file))


def inspect(path: PathLike, *, key_file: Optional[PathLike] = None) -> dict:
    """Describe a snapshot: preamble fields, sizes and a summary of its records."""
    return _engine.inspect(path, key=read_key(key_file))


def suspend(path: Optional[PathLike] = None) -> None:
    """Suspend the whole program at its next safe point (the line after this call) into a
    snapshot, and exit with status 75. Needs a program started with `stasis run`."""
    from . import program
    program.suspend(None if path is None else os.fsdecode(path))


def checkpoint(path: PathLike) -> bool:
    """Write a snapshot of the whole program and continue (needs `stasis run`)."""
    raise NotAvailableError(
        "stasis.checkpoint() is not available yet: whole-program suspend/resume is being built "
        "(issue 5); use stasis.dump() to save data")
