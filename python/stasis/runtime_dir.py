"""The per-user runtime directory: where processes running under Stasis keep their control sockets
(`<pid>.sock`, updater/channel.py) and their records for `stasis suspend PID` (`pids/<pid>.txt`).

Other users must not be able to pre-empt it, read it or plant files in it, and a directory they
made must never stop Stasis from running. In order:

1. `$XDG_RUNTIME_DIR/stasis`, when $XDG_RUNTIME_DIR is a directory of ours that others cannot
   write to (systemd makes it 0700 per user);
2. `/tmp/stasis-<uid>`, made 0700 if missing, used when it is a real directory (not a symbolic
   link) owned by us with no access for group or others;
3. otherwise (someone else made it, or opened it up) a fresh private directory
   `/tmp/stasis-<uid>-XXXXXXXX` (mkdtemp, 0700): the oldest such directory that is ours and
   private is reused, so that every process of the user, clients included, finds the same one.

`candidates()` lists, for clients, every directory where a process of this user may have put its
files. `clean_stale()` removes the sockets and records of processes that no longer exist.
"""
from __future__ import annotations

import os
import stat
from typing import List, Optional

_TMP = "/tmp"


def _private(path: str) -> bool:
    """A real directory, owned by us, that group and others cannot access."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _xdg() -> Optional[str]:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.isabs(runtime):
        return None
    try:
        st = os.stat(runtime)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return os.path.join(runtime, "stasis")


def _fallbacks() -> List[str]:
    """The fresh private directories of this user, oldest first."""
    prefix = f"stasis-{os.getuid()}-"
    try:
        names = os.listdir(_TMP)
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(_TMP, name)
        if name.startswith(prefix) and _private(path):
            try:
                found.append((os.lstat(path).st_mtime, name, path))
            except OSError:
                pass
    return [p for _, _, p in sorted(found)]


def _make(path: str) -> bool:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    return _private(path)


def runtime_dir() -> str:
    """The runtime directory of this user (made if needed); never fails for another user's doing."""
    xdg = _xdg()
    if xdg and _make(xdg):
        return xdg
    shared = os.path.join(_TMP, f"stasis-{os.getuid()}")
    if _make(shared):
        return shared
    existing = _fallbacks()
    if existing:
        return existing[0]
    import tempfile  # only here: start-up imports this module, and this fallback is rare
    return tempfile.mkdtemp(prefix=f"stasis-{os.getuid()}-", dir=_TMP)


def candidates() -> List[str]:
    """Every directory where a process of this user may keep its runtime files, most likely first."""
    out = []
    xdg = _xdg()
    for path in ([xdg] if xdg else []) + [os.path.join(_TMP, f"stasis-{os.getuid()}")] + _fallbacks():
        if _private(path) and path not in out:
            out.append(path)
    return out


def find(name: str) -> Optional[str]:
    """The path of `name` (a socket or record) in the first candidate directory that has it."""
    for d in candidates():
        path = os.path.join(d, name)
        if os.path.lexists(path):
            return path
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(directory: str) -> int:
    """Removes `<pid>.sock` and `<pid>.txt` files of processes that no longer exist (a killed
    program leaves them); returns how many. Files of live processes, and anything else, stay."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        stem, dot, ext = name.partition(".")
        if ext not in ("sock", "txt") or not stem.isdigit() or int(stem) == os.getpid():
            continue
        if _pid_alive(int(stem)):
            continue
        path = os.path.join(directory, name)
        try:
            if os.lstat(path).st_uid == os.getuid():
                os.unlink(path)
                removed += 1
        except OSError:
            pass
    return removed
