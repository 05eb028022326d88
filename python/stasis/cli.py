"""The `stasis` command line (ARCHITECTURE.md §2). Errors of Stasis end with one line on stderr and
the exit status of their class (stasis/errors.py); never a traceback of Stasis internals."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import List, Optional, Sequence

from . import errors
from .errors import EXIT_USAGE, StasisError


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit 2, which programs use too
        raise UsageError(f"{self.prog}: {message}")


# --- run / resume: options, then SCRIPT | -m MODULE, then the program's own arguments -------------

_SUSPEND_OPTIONS = ("--snapshot", "--quota", "--suspend-after", "--signal", "--safe-point-timeout",
                    "--checkpoint-every", "--keep")
_REPEATABLE = ("--signal",)  # --signal USR1 --signal TERM (or --signal USR1,TERM)


def _split_run_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses `run` options up to the program; everything after SCRIPT (or -m MODULE) is the
    program's, exactly as python3 would pass it."""
    ns = argparse.Namespace(rewrite=[], no_rewrite=[], module=False, target=None, args=[],
                            suspend_options={}, key_file=None, resume_if_present=False, tcp_established=False)
    i = 0
    while i < len(argv):
        a = argv[i]
        name, eq, inline = a.partition("=")
        def value() -> str:
            nonlocal i
            if eq:
                return inline
            i += 1
            if i >= len(argv):
                raise UsageError(f"stasis run: {name} needs a value")
            return argv[i]
        if name == "--rewrite":
            ns.rewrite.append(value())
        elif name == "--no-rewrite":
            ns.no_rewrite.append(value())
        elif name in _REPEATABLE:
            ns.suspend_options.setdefault(name, []).append(value())
        elif name in _SUSPEND_OPTIONS:
            ns.suspend_options[name] = value()
        elif a == "--resume-if-present":
            ns.resume_if_present = True
        elif name == "--key-file":
            ns.key_file = value()
        elif name == "--snapshot-on-crash":
            ns.suspend_options[name] = inline if eq else ""
        elif a == "--tcp-established":
            ns.tcp_established = True
        elif a == "-m":
            i += 1
            if i >= len(argv):
                raise UsageError("stasis run: -m needs a module name")
            ns.module, ns.target, ns.args = True, argv[i], list(argv[i + 1:])
            return ns
        elif a == "--":
            i += 1
            break
        elif a.startswith("-") and a != "-":
            raise UsageError(f"stasis run: unknown option {a}")
        else:
            break
        i += 1
    if i >= len(argv):
        raise UsageError("stasis run: give SCRIPT or -m MODULE")
    ns.target, ns.args = argv[i], list(argv[i + 1:])
    return ns


def _option_dest(opt: str) -> str:
    # "--snapshot" must not share its name with resume's SNAPSHOT argument, which it would replace.
    return "option_" + opt[2:].replace("-", "_")


def _program_options(values: dict, key_file, rewrite, no_rewrite):
    from .program import Options
    def num(name, kind):
        v = values.get(name)
        if v is None:
            return None
        try:
            return kind(v)
        except ValueError:
            raise UsageError(f"stasis: {name} needs a number, not {v!r}") from None
    o = Options(snapshot=values.get("--snapshot"), quota=num("--quota", float),
                suspend_after=num("--suspend-after", int), key_file=key_file,
                rewrite=list(rewrite), no_rewrite=list(no_rewrite))
    if values.get("--signal"):
        o.signals = _signal_names(values["--signal"])
    o.snapshot_on_crash = values.get("--snapshot-on-crash")
    if values.get("--safe-point-timeout") is not None:
        o.safe_point_timeout = num("--safe-point-timeout", float)
    o.checkpoint_every = num("--checkpoint-every", float)
    if o.checkpoint_every is not None and not o.checkpoint_every > 0:
        raise UsageError(f"stasis: --checkpoint-every needs a positive number of seconds, not {values['--checkpoint-every']!r}")
    keep = num("--keep", int)
    if keep is not None:
        if keep < 1:
            raise UsageError(f"stasis: --keep needs a count of 1 or more, not {values['--keep']!r}")
        if o.checkpoint_every is None:
            raise UsageError("stasis: --keep counts periodic checkpoints: give --checkpoint-every too")
        o.keep = keep
    if o.checkpoint_every is not None and o.suspend_after is not None:
        raise UsageError("stasis: --checkpoint-every and --suspend-after do not go together (a pending "
                         "--suspend-after request holds every checkpoint back)")
    return o


def _signal_names(values) -> List[str]:
    """--signal given once or more, each a name or a comma-separated list: USR1, SIGTERM, usr1,term."""
    from .program.options import signal_number
    names = []
    for value in ([values] if isinstance(values, str) else values):
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            try:
                signal_number(name)
            except StasisError as e:
                raise UsageError(f"stasis: --signal: {e}") from None
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError("stasis: --signal needs a signal name such as SIGUSR1")
    return names


def _prepare_hook(no_rewrite: Sequence[str]) -> None:
    """Installs the import hook before Stasis's own start-up imports threading, queue or socket,
    so that those blocking stdlib modules run rewritten (resumable) code too."""
    try:
        from .compiler_hooks import runner
    except ImportError:
        return
    runner.prepare(no_rewrite)


def cmd_run(argv: Sequence[str]) -> int:
    ns = _split_run_args(argv)
    _prepare_hook(ns.no_rewrite)
    if ns.suspend_options or not ns.module or ns.resume_if_present:
        # A suspendable session (signal, quota, suspend-after). `-m MODULE` without suspension
        # options runs as plain `python3 -m` would (no session), which CPython's own test suite
        # needs under the rewriter (the conformance oracle).
        from . import program
        options = _program_options(ns.suspend_options, ns.key_file, ns.rewrite, ns.no_rewrite)
        if ns.tcp_established:
            _configure_sockets(tcp_established=True)
        batch_path = None
        if ns.resume_if_present:
            resumable = _resumable(ns, options)
            batch_path = options.snapshot
            if resumable is not None:
                return _finished(program.resume(resumable, options), batch_path)
        _start_update_channel()
        return _finished(program.run(ns.target, ns.args, module=ns.module, options=options), batch_path)
    from . import startup_signals
    startup_signals.release()  # no session: the signals act as under python3 -m
    from .compiler_hooks import runner
    _start_update_channel()
    return runner.run(ns.target, ns.args, module=ns.module, rewrite=ns.rewrite,
                      no_rewrite=ns.no_rewrite)


def _resumable(ns: argparse.Namespace, options) -> Optional[str]:
    """--resume-if-present: the snapshot at --snapshot PATH to resume (a complete one, of this very
    program), or None to start the program (program/batch.py)."""
    import os
    from . import read_key
    from .program import batch
    from .program.session import program_identity
    if options.snapshot is None:
        stem = ns.target.rsplit(".", 1)[-1] if ns.module else os.path.splitext(os.path.basename(ns.target))[0]
        options.snapshot = stem + ".snap"
    options.snapshot = os.path.abspath(options.snapshot)
    identity = program_identity(ns.target, ns.args, module=ns.module)
    chosen = batch.choose(options.snapshot, identity, read_key(ns.key_file))
    # Said once: run and resume re-execute this command line with the program's hash seed first.
    seed = os.environ.get("PYTHONHASHSEED")
    if chosen is None and seed not in (None, "random"):
        batch.announce(None, options.snapshot, identity)
    elif chosen is not None and seed == batch.hash_seed(chosen, read_key(ns.key_file)):
        batch.announce(chosen, options.snapshot, identity)
    return chosen


def _finished(status: int, batch_path: Optional[str] = None) -> int:
    """The program has ended (not suspended: that ends the process with 75 before this). With
    --resume-if-present and status 0, the job is done: its snapshots go (program/batch.py)."""
    from .program import batch, periodic
    periodic.finished()
    if batch_path is not None:
        batch.finished(status, batch_path)
    return status


def _start_update_channel() -> None:
    try:
        from .updater import control
    except ImportError:
        return  # live updates are not built into this version
    control.serve_updates()  # `stasis ctl PID ...` reaches every program started by `stasis run`


def cmd_resume(args: argparse.Namespace) -> int:
    _prepare_hook(args.no_rewrite)  # before `program` imports threading: threads' stacks run in it
    patches = _read_patches(args.patches)  # read now: loading changes to the program's directory
    from . import program
    values = {opt: getattr(args, _option_dest(opt)) for opt in _SUSPEND_OPTIONS}
    values["--snapshot-on-crash"] = args.snapshot_on_crash
    options = _program_options(values, args.key_file, args.rewrite, args.no_rewrite)
    from . import handover
    handover.setup_restore()  # a process started by `stasis restart`: the sockets it inherits
    _configure_sockets(rebind=args.rebind, tcp_established=args.tcp_established, resuming=True)
    _start_update_channel()
    return _finished(program.resume(args.snapshot, options, patches=patches))


# --- patch: (kind, argument) pairs in command-line order ------------------------------------------

def _patch_arguments(p: argparse.ArgumentParser, auto: bool) -> None:
    p.add_argument("--source", dest="patches", action="append", default=[], metavar="PATH[=MODULE]",
                   type=lambda v: ("source", v),
                   help="a new source file of one of the program's modules (matched by its path relative "
                        "to the script's directory; =MODULE names it)")
    p.add_argument("--update", dest="patches", action="append", metavar="FILE", type=lambda v: ("update", v),
                   help="an update module, as for `stasis ctl PID apply` (stasis.update)")
    if auto:
        p.add_argument("--patch", dest="patches", action="extend", nargs="+", metavar="FILE",
                       type=lambda v: ("auto", v),
                       help="one or more files, each a new source of the program's module of that file name, "
                            "else an update module")


def _read_patches(pairs: Sequence) -> list:
    if not pairs:
        return []
    from .updater import snapshot_patch
    return [snapshot_patch.read_spec(kind, arg) for kind, arg in pairs]


def cmd_patch(args: argparse.Namespace) -> int:
    """Applies patches to a suspended program's snapshot and writes the patched snapshot."""
    if not args.patches:
        raise UsageError("stasis patch: give at least one --source PATH or --update FILE")
    _prepare_hook([])  # first: the loaded program's threading code is the rewritten one
    patches = _read_patches(args.patches)
    from .program import patch
    lines = patch.patch_snapshot(args.snapshot, patches, args.output, _program_options({}, args.key_file, [], []))
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


def _configure_sockets(rebind: Sequence[str] = (), tcp_established: bool = False, resuming: bool = False) -> None:
    """Sockets of the program (stasis/handlers/net.py): --rebind rules and --tcp-established; on
    resume, the descriptor numbers the snapshot's sockets had are kept free for them."""
    from .handlers import net
    try:
        net.configure_restore(list(rebind), tcp_established)
    except ValueError as e:
        raise UsageError(f"stasis resume: {e}") from None
    net.settings.tcp_established = tcp_established  # and the snapshots this run writes keep them too
    if resuming:
        net.reserve_fds()


def cmd_debug(args: argparse.Namespace) -> int:
    """Rebuilds a suspended program and opens pdb at its suspension point; the snapshot is only
    read, so every debug session starts from the same state."""
    _prepare_hook([])
    from . import program
    return program.resume(args.snapshot, _program_options({}, args.key_file, [], []), debug=True)


def cmd_suspend(args: argparse.Namespace) -> int:
    """Asks a process running under Stasis to suspend, waits for it to end, prints the path."""
    import os
    import signal
    import time
    from . import program
    record = os.path.join(program.pid_dir(), f"{args.pid}.txt")
    try:
        with open(record) as f:
            signum, path = int(f.readline()), f.readline().strip()
    except (OSError, ValueError):
        raise errors.StasisError(f"process {args.pid} is not running under `stasis run` (no record "
                                 f"in {program.pid_dir()})") from None
    try:
        os.kill(args.pid, signum)
    except ProcessLookupError:
        raise errors.StasisError(f"process {args.pid} is not running") from None
    def alive() -> bool:  # a zombie (ended, not yet waited for by its parent) counts as ended
        try:
            with open(f"/proc/{args.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not alive():
            break
        time.sleep(0.05)
    else:
        raise errors.NotSuspendableError(f"process {args.pid} did not suspend within {args.timeout:g} s; "
                                         "it keeps running (see its stderr for what blocked it)")
    if not os.path.exists(path):
        raise errors.StasisError(f"process {args.pid} ended without writing {path}")
    print(path)
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """Hands a running program over to a new process of itself (with its state and its sockets),
    applying patches on the way; prints the new PID (stasis/handover.py)."""
    from . import handover
    if args.timeout <= 0:
        raise UsageError("stasis restart: --timeout must be positive")
    return handover.command(args.pid, _read_patches(args.patches), args.timeout)


def cmd_rewrite(args: argparse.Namespace) -> int:
    from .compiler_hooks import listing
    try:
        with open(args.file, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        raise errors.SnapshotIOError(f"cannot read {args.file}: {e.strerror}") from None
    sys.stdout.write(listing.format_resumable(source, args.file))
    return 0


def cmd_ctl(args: argparse.Namespace) -> int:
    from .updater import ctl
    return ctl.main(list(args.rest))


# --- inspect ----------------------------------------------------------------------------------

def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_inspect(path: str, info: dict) -> str:
    created = datetime.datetime.fromtimestamp(info["created_unix"], datetime.timezone.utc)
    ratio = info["raw_size"] / info["compressed_size"] if info["compressed_size"] else 0.0
    ops = ", ".join(f"{name} {count:,}" for name, count in
                    sorted(info["ops"].items(), key=lambda kv: (-kv[1], kv[0])))
    lines = [
        f"snapshot   {path} ({_size(info['file_size'])})",
        f"format     version {info['format_version']}, written by Stasis {info['engine_version']}",
        f"python     {info['implementation']} {info['python_version']}",
        f"created    {created:%Y-%m-%d %H:%M:%S} UTC on {info['host'] or '?'}",
        f"signature  {info['signature']}",
        f"payload    {info['payload_kind']}: {info['objects']:,} objects, {info['memo_count']:,} shared; "
        f"{_size(info['raw_size'])} -> {_size(info['compressed_size'])} zstd ({ratio:.1f}x); "
        f"{info['record_count']:,} records",
        f"ops        {ops}",
    ]
    return "\n".join(lines) + "\n"


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import inspect
    info = inspect(args.snapshot, key_file=args.key_file)
    if args.json:
        info = {"path": args.snapshot, **info}
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_inspect(args.snapshot, info))
    return 0


# --- entry ------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stasis", description="Suspend a Python program into a snapshot; resume it later.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run a program under Stasis: run [options] SCRIPT|-m MODULE [ARGS]",
                   add_help=False)
    r = sub.add_parser("resume", help="continue a suspended program")
    r.add_argument("snapshot")
    for opt in _SUSPEND_OPTIONS:
        r.add_argument(opt, dest=_option_dest(opt), action="append" if opt in _REPEATABLE else "store")
    r.add_argument("--rewrite", action="append", default=[])
    r.add_argument("--no-rewrite", action="append", default=[])
    _patch_arguments(r, auto=True)
    r.add_argument("--snapshot-on-crash", nargs="?", const="", metavar="PATH",
                   help="write a snapshot when an exception is about to end the program (default path: "
                        "STEM.crash.snap beside the snapshot)")
    r.add_argument("--key-file")
    r.add_argument("--rebind", action="append", default=[], metavar="OLD=NEW",
                   help="bind a socket recorded at OLD (HOST:PORT, :PORT, a Unix path, @NAME) at NEW")
    r.add_argument("--tcp-established", action="store_true",
                   help="make established TCP connections saved by TCP repair again (root)")
    r.set_defaults(func=cmd_resume)
    s = sub.add_parser("suspend", help="suspend a process running under Stasis")
    s.add_argument("pid", type=int)
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    s.set_defaults(func=cmd_suspend)
    rs = sub.add_parser("restart", help="hand a running service over to a new process, keeping its state "
                        "and sockets (no failed request)")
    rs.add_argument("pid", type=int)
    _patch_arguments(rs, auto=True)  # applied in the new process before it takes over, as resume does
    rs.add_argument("--timeout", type=float, default=120.0,
                    help="seconds for the whole switch (default 120); after that the old process goes on")
    rs.set_defaults(func=cmd_restart)
    i = sub.add_parser("inspect", help="describe a snapshot")
    i.add_argument("snapshot")
    i.add_argument("--json", action="store_true", help="machine-readable, stable keys")
    i.add_argument("--key-file", help="verify the signature with this key (default $STASIS_KEY_FILE)")
    i.set_defaults(func=cmd_inspect)
    w = sub.add_parser("rewrite", help="print the resumable form of a module")
    w.add_argument("file")
    w.set_defaults(func=cmd_rewrite)
    pa = sub.add_parser("patch", help="patch a suspended program: patch SNAPSHOT (--source PATH | --update FILE)... "
                                       "[-o OUT]")
    pa.add_argument("snapshot")
    _patch_arguments(pa, auto=False)
    pa.add_argument("-o", "--output", metavar="OUT",
                    help="write the patched snapshot here (default: replace SNAPSHOT, keeping the old one as "
                         "SNAPSHOT.before-patch-N)")
    pa.add_argument("--key-file", help="verify and sign with this key (default $STASIS_KEY_FILE)")
    pa.set_defaults(func=cmd_patch)
    d = sub.add_parser("debug", help="open pdb at a snapshot's suspension point")
    d.add_argument("snapshot")
    d.add_argument("--key-file")
    d.set_defaults(func=cmd_debug)
    c = sub.add_parser("ctl", help="patch, instrument or profile a live process", add_help=False)
    c.add_argument("rest", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_ctl)
    return p


def _one_line(message: str) -> str:
    """An error message as one line of plain text: a snapshot's strings end up in messages (module
    names, handler keys), and their newlines or terminal escape sequences are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("run", "resume"):
        # The suspension signals are kept from now on, until the program's handlers take over
        # (a batch job's time-limit warning may come while Stasis starts).
        from . import startup_signals
        startup_signals.hold(startup_signals.numbers(startup_signals.names_in(argv[0], argv[1:])))
    if sys.argv[1:] == argv:
        from .startup import settle_hash_seed
        settle_hash_seed(argv)  # may re-execute this command: before any other start-up work
    try:
        if argv and argv[0] == "run":
            return cmd_run(argv[1:])
        if argv and argv[0] == "ctl":  # its own parser (options such as --all-children come first)
            from .updater import ctl
            return ctl.main(argv[1:])
        parser = _parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.func(args)
    except UsageError as e:
        print(f"{e}\n(see `stasis --help`)", file=sys.stderr)
        return EXIT_USAGE
    except StasisError as e:
        print(f"stasis: error: {_one_line(str(e))}", file=sys.stderr)
        from . import handover
        handover.report_failure(str(e), e.code)  # a process started by `stasis restart` tells the old one
        return e.code
    except KeyboardInterrupt:
        return 130
