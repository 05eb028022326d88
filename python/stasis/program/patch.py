"""`stasis patch SNAPSHOT (--source PATH | --update FILE)... [-o OUT]`: loads a suspended program,
applies the patches (stasis/updater/snapshot_patch.py) and writes it again as a program snapshot
whose stacks run the new code. The original is never lost: with -o it is not touched; without, it
is kept as SNAPSHOT.before-patch-N (N: the patch's number in the snapshot's history), linked
before the patched file replaces SNAPSHOT atomically — and only once the patched file is
complete. A refused patch writes nothing."""
from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence

from .. import _engine
from ..errors import SignatureError, SnapshotIOError
from .layout import ProgramMeta
from .options import Options
from .resume import load_program
from .session import _key


def _signed(path: str) -> bool:
    """Flag bit 0 of the preamble (FORMAT.md): an HMAC follows the footer. Unreadable or foreign
    files are left to load_program to report; so are FIFOs and devices, which are not opened here
    (a FIFO would wait for a writer)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return len(head) == 16 and head[:8] == b"\x89STASIS\n" and bool(int.from_bytes(head[12:16], "little") & 1)


def backup_path(snapshot: str, number: int) -> str:
    return f"{snapshot}.before-patch-{number}"


def patch_snapshot(snapshot: str, patches: Sequence, out: Optional[str], options: Options) -> List[str]:
    """Writes the patched program; returns the lines that describe what was done."""
    snapshot = os.path.abspath(snapshot)
    target = os.path.abspath(out) if out else snapshot
    if _signed(snapshot) and _key(options.key_file) is None:
        # Without the key the patched program would be written unsigned: a signed snapshot would
        # silently become one that no reader holding the key accepts.
        raise SignatureError(f"{snapshot} is signed: give its key (--key-file KEY or STASIS_KEY_FILE) to patch "
                             "it; the patched snapshot is signed with it")
    loaded = load_program(snapshot, options)
    state = loaded.state
    from ..updater import snapshot_patch
    record = snapshot_patch.apply_patches(state, patches, by="stasis patch")

    from .. import _ensure_builtin_handlers, handlers
    from ..handlers import threads as thread_handlers
    _ensure_builtin_handlers()
    meta = ProgramMeta(modules=list(state.modules), sys_path=list(loaded.meta.sys_path), roots=list(loaded.meta.roots),
                       rewrite=list(loaded.meta.rewrite), no_rewrite=list(loaded.meta.no_rewrite),
                       threads=len(state.threads),
                       handler_modules=sorted(set(loaded.meta.handler_modules) |
                                              {m for m in handlers.MODULE_HANDLERS if m in sys.modules}),
                       program=list(loaded.meta.program))  # still the same program (--resume-if-present)
    partial = f"{target}.patching"
    with thread_handlers.write_held_rlocks(loaded.rlocks):
        _engine.dump(state.to_payload(), partial, kind="program", hash_seed=int(loaded.seed), key=loaded.key,
                     by_value=list(state.modules), meta=meta.to_json())
    lines = [f"patch {len(state.patches)} of {os.path.basename(snapshot)}:"] + [f"  {c}" for c in record.changes] + \
            [f"  frame {f}" for f in record.frames]
    try:
        if target == snapshot:
            kept = backup_path(snapshot, len(state.patches))
            if os.path.exists(kept):
                os.unlink(kept)
            os.link(snapshot, kept)
            lines.append(f"the snapshot before this patch is kept as {kept}")
        os.replace(partial, target)
    except OSError as e:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise SnapshotIOError(f"cannot put the patched snapshot in place of {target}: {e.strerror}") from None
    lines.append(f"wrote {target}")
    return lines
