"""The checkpoint writer: the child that periodic.py forks writes the snapshot from its
copy-on-write image of the program while the program goes on.

The child is the forking thread alone, holding the GIL (engine/checkpoint_api.cpp fork_writer).
It shares every open file's offset with the program, which keeps reading and writing: so first it
gives each regular file a description of its own at the offset the file had at the fork, and it
takes out of the program's buffered files the bytes they had not written yet (`pending_writes`,
written at resume: the program may die before it writes them itself). Then it writes the snapshot
and leaves with os._exit, never running the program's exit handlers or flushing its streams.

Also here: where checkpoints go (PATH, the kept PATH.1 ... PATH.<keep-1>), and the other half of
pending_writes, at resume."""
from __future__ import annotations

import fcntl
import glob
import io
import os
import sys
from typing import Iterable, List, NoReturn, Sequence, Tuple

from .. import _engine

PARENT_GONE = 3     # exit status of a writer whose program had already ended (engine knows it too)
WINDOW = 2 << 20    # bytes around a file's offset in which its buffered bytes are looked for


def write_checkpoint(session, threads, path: str, files: Sequence[tuple], *, trigger: str,
                     requested_at: float, captured_at: float, checkpoint: int | None, keep: int) -> NoReturn:
    """In the child: writes the checkpoint to `path` (keeping `keep` of them) and exits 0, or
    says why not on stderr and exits 1."""
    status = 1
    try:
        # The suspension record of this checkpoint (in this child's copy of the session only).
        session.trigger, session.requested_at, session.captured_at = trigger, requested_at, captured_at
        pending = take_pending_writes(files)
        settle_child_processes(os.getppid())
        rotate(path, keep)
        session.write_snapshot(threads, path, checkpoint=checkpoint, pending_writes=pending)
        status = 0
    except BaseException as e:  # a failed writer says why; the program goes on
        what = str(e) or type(e).__name__
        if not isinstance(e, Exception) or type(e).__module__.split(".")[0] != "stasis":
            what = f"{type(e).__name__}: {what}"
        _say(f"stasis: warning: the checkpoint {path} was not written: {what}; the program goes on\n")
    os._exit(status)


def _say(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))  # not sys.stderr: its lock may be held
    except OSError:
        pass


# --- the program's files, seen from the child -------------------------------------------------

def take_pending_writes(files: Sequence[tuple]) -> List[Tuple[str, int, bytes]]:
    """`files` = [(fd, offset, size, flags)] of the open regular files at the fork. Gives each a
    description of its own positioned where the program's was (so that tell() and reads in the
    child see the fork's state, whatever the program does meanwhile), and returns the bytes the
    program's buffered file objects held for them: [(path, offset, data)].

    Those bytes are found by flushing the buffers into a private copy of the file's neighbourhood
    (a memfd, sparse, with the file's real bytes around the offset) and comparing it with the
    file: nothing reaches the real file from the child, so the program's own later writes are never
    undone or doubled."""
    shadows = {}
    for fd, offset, size, flags in files:
        if flags & os.O_ACCMODE == os.O_RDONLY:
            continue
        try:
            shadows[fd] = _Shadow(fd, offset, size, flags)
        except OSError:
            continue  # cannot be shadowed (vanished, no permission): left as it is
    pending: List[Tuple[str, int, bytes]] = []
    if shadows:
        for f in _engine.objects_of_types((io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)):
            try:
                if not f.closed and f.fileno() in shadows:
                    f.flush()
            except Exception:  # a broken file object is the walk's to report
                pass
        for shadow in shadows.values():
            pending.extend(shadow.changes())
    for fd, offset, _size, flags in files:
        shadow = shadows.get(fd)
        _own_description(fd, shadow.original if shadow else fd,
                         shadow.position() if shadow else offset, flags)
        if shadow:
            shadow.close()
    return pending


class _Shadow:
    """A memfd standing in for one writable file at descriptor `fd`: same size, same offset, the
    file's bytes within WINDOW of the offset, holes elsewhere."""

    def __init__(self, fd: int, offset: int, size: int, flags: int) -> None:
        self.fd, self.size = fd, size
        self.path = os.readlink(f"/proc/self/fd/{fd}")
        if not self.path.startswith("/") or self.path.endswith(" (deleted)"):
            raise OSError("not a file that can be named")
        self.start, self.end = max(0, offset - WINDOW), min(size, offset + WINDOW)
        # The file read through a description of our own (the program's may be write-only).
        self.reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        self.original = os.dup(fd)
        try:
            memfd = os.memfd_create("stasis-file-view", os.MFD_CLOEXEC)
            try:
                os.ftruncate(memfd, size)
                if self.end > self.start:
                    os.pwrite(memfd, os.pread(self.reader, self.end - self.start, self.start), self.start)
                os.lseek(memfd, offset, os.SEEK_SET)
                if flags & os.O_APPEND:
                    fcntl.fcntl(memfd, fcntl.F_SETFL, os.O_APPEND)
                os.dup2(memfd, fd, inheritable=False)
            finally:
                os.close(memfd)
        except OSError:
            os.close(self.original)
            os.close(self.reader)
            raise

    def position(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def changes(self) -> Iterable[Tuple[str, int, bytes]]:
        """What the flushes wrote that the file does not hold: in the window, and past the old end."""
        grown = os.fstat(self.fd).st_size
        for start, end in ((self.start, self.end), (max(self.size, self.end), grown)):
            if end <= start:
                continue
            mine = os.pread(self.fd, end - start, start)
            theirs = os.pread(self.reader, end - start, start)
            for a, b in _differing_runs(mine, theirs):
                yield (self.path, start + a, mine[a:b])

    def close(self) -> None:
        os.close(self.original)
        os.close(self.reader)


def _differing_runs(mine: bytes, theirs: bytes, gap: int = 64) -> List[List[int]]:
    """[start, end) runs where `mine` differs from `theirs` (where `theirs` is shorter, every byte
    past its end differs); runs less than `gap` apart are merged."""
    runs: List[List[int]] = []
    n, block, i = len(mine), 4096, 0
    while i < n:
        j = min(i + block, n)
        if mine[i:j] != theirs[i:j]:
            for k in range(i, j):
                if k >= len(theirs) or mine[k] != theirs[k]:
                    if runs and k - runs[-1][1] < gap:
                        runs[-1][1] = k + 1
                    else:
                        runs.append([k, k + 1])
        i = j
    return runs


def _own_description(fd: int, source: int, position: int, flags: int) -> None:
    """Points `fd` at a new open description of the file `source` refers to, at `position`: the
    child's seeks and reads no longer move the program's offset. O_APPEND is dropped (the child
    writes nothing) and so is O_DIRECT (reads of any alignment)."""
    mode = flags & os.O_ACCMODE
    try:
        new = os.open(f"/proc/self/fd/{source}", mode | os.O_CLOEXEC | (flags & os.O_NONBLOCK))
    except OSError:
        return  # stays shared: a tell() may see the program's later offset
    try:
        os.lseek(new, position, os.SEEK_SET)
        os.dup2(new, fd, inheritable=False)
    except OSError:
        pass
    finally:
        os.close(new)


def settle_child_processes(program_pid: int) -> None:
    """subprocess.Popen objects as the program would see them. The writer is not the parent of
    the program's children: its poll() would get ECHILD, which subprocess takes for "ended with
    status 0". A child still running is made to look busy to poll() (its waitpid lock held, in
    the writer's copy only), so that the snapshot refuses it as a suspension would; one that has
    ended but was not collected yet gets its status from /proc, as the program's poll() would."""
    subprocess = sys.modules.get("subprocess")
    if subprocess is None:
        return
    for p in _engine.objects_of_types((subprocess.Popen,)):
        if p.returncode is not None:
            continue
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone: the program's own poll() would see ECHILD too
        if len(fields) < 3 or int(fields[1]) != program_pid:
            continue
        if fields[0] == "Z" and len(fields) > 49:
            p._handle_exitstatus(int(fields[49]))
        else:
            p._waitpid_lock.acquire(False)


# --- at resume --------------------------------------------------------------------------------

def apply_pending_writes(writes: Sequence[tuple]) -> None:
    """Writes the bytes a checkpoint found buffered (ProgramState.pending_writes) where they
    belong, where the file does not hold them already."""
    for item in writes or ():
        try:
            path, offset, data = item
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except (TypeError, ValueError):
            sys.stderr.write("stasis: warning: a pending write of the snapshot is malformed; skipped\n")
            continue
        except OSError as e:
            sys.stderr.write(f"stasis: warning: cannot write the {len(data)} bytes the program had "
                             f"buffered for {path}: {e.strerror}\n")
            continue
        try:
            if os.pread(fd, len(data), offset) != data:
                os.pwrite(fd, data, offset)
        except OSError as e:
            sys.stderr.write(f"stasis: warning: cannot write the {len(data)} bytes the program had "
                             f"buffered for {path}: {e.strerror}\n")
        finally:
            os.close(fd)


# --- where checkpoints go ---------------------------------------------------------------------

def rotate(path: str, keep: int) -> None:
    """With keep > 1: PATH.<k-1> becomes PATH.<k> (the oldest is dropped) and PATH.1 becomes PATH,
    each as a second name made first and renamed over the old one: at every moment every name
    holds a complete snapshot, whenever the writer is killed. PATH stays in place until the new
    snapshot replaces it."""
    if keep <= 1 or not os.path.exists(path):
        return
    for k in range(keep - 1, 0, -1):
        newer = f"{path}.{k - 1}" if k > 1 else path
        if not os.path.exists(newer):
            continue
        link = f"{path}.{k}.link-{os.getpid()}"
        try:
            os.link(newer, link)
        except FileExistsError:
            os.unlink(link)
            os.link(newer, link)
        except OSError:  # a file system without hard links: a copy
            import shutil
            shutil.copyfile(newer, link)
        os.replace(link, f"{path}.{k}")


def kept(path: str, keep: int) -> List[str]:
    """PATH and its kept predecessors, newest first (those that exist)."""
    return [p for p in [path] + [f"{path}.{k}" for k in range(1, max(keep, 1))] if os.path.exists(p)]


def remove_leftovers(path: str, pid: int | None = None) -> None:
    """Removes what a writer that was killed may leave beside PATH: the engine's temporary file
    (PATH.tmp-*) and a rotation's links (PATH.<k>.link-PID)."""
    patterns = [glob.escape(path) + ".tmp-*"]
    patterns.append(glob.escape(path) + (f".*.link-{pid}" if pid else ".*.link-*"))
    for pattern in patterns:
        for leftover in glob.glob(pattern):
            try:
                os.unlink(leftover)
            except OSError:
                pass
