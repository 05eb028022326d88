"""The `stasis` command line (ARCHITECTURE.md §2). Errors of Stasis end with one line on stderr and
the exit status of their class (stasis/errors.py); never a traceback of Stasis internals."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Callable, List, Optional, Sequence

from . import errors
from .errors import EXIT_USAGE, NotAvailableError, StasisError


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit 2, which programs use too
        raise UsageError(f"{self.prog}: {message}")


def _not_available(what: str, issue: int) -> Callable[[argparse.Namespace], int]:
    def command(_args: argparse.Namespace) -> int:
        raise NotAvailableError(f"`stasis {what}` is not available yet (being built in issue {issue})")
    return command


# --- run / resume: options, then SCRIPT | -m MODULE, then the program's own arguments -------------

_SUSPEND_OPTIONS = ("--snapshot", "--quota", "--suspend-after", "--signal", "--safe-point-timeout")


def _split_run_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses `run` options up to the program; everything after SCRIPT (or -m MODULE) is the
    program's, exactly as python3 would pass it."""
    ns = argparse.Namespace(rewrite=[], no_rewrite=[], module=False, target=None, args=[],
                            suspend_options={}, key_file=None, tcp_established=False)
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
        elif name in _SUSPEND_OPTIONS:
            ns.suspend_options[name] = value()
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
        o.signal = values["--signal"]
    o.snapshot_on_crash = values.get("--snapshot-on-crash")
    if values.get("--safe-point-timeout") is not None:
        o.safe_point_timeout = num("--safe-point-timeout", float)
    return o


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
    if ns.suspend_options or not ns.module:
        # A suspendable session (signal, quota, suspend-after). `-m MODULE` without suspension
        # options runs as plain `python3 -m` would (no session), which CPython's own test suite
        # needs under the rewriter (the conformance oracle).
        from . import program
        options = _program_options(ns.suspend_options, ns.key_file, ns.rewrite, ns.no_rewrite)
        if ns.tcp_established:
            _configure_sockets(tcp_established=True)
        _start_update_channel()
        return program.run(ns.target, ns.args, module=ns.module, options=options)
    try:
        from .compiler_hooks import runner
    except ImportError:
        raise NotAvailableError("`stasis run` is not available yet (compiler_hooks, issue 4)") from None
    _start_update_channel()
    return runner.run(ns.target, ns.args, module=ns.module, rewrite=ns.rewrite,
                      no_rewrite=ns.no_rewrite)


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
    return program.resume(args.snapshot, options, patches=patches)


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
    try:
        from .compiler_hooks import rewriter
    except ImportError:
        raise NotAvailableError("`stasis rewrite` is not available yet (compiler_hooks, issue 4)") from None
    try:
        with open(args.file, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        raise errors.SnapshotIOError(f"cannot read {args.file}: {e.strerror}") from None
    sys.stdout.write(rewriter.format_resumable(source, args.file))
    return 0


def cmd_ctl(args: argparse.Namespace) -> int:
    try:
        from .updater import ctl
    except ImportError:
        raise NotAvailableError("`stasis ctl` is not available yet (updater, issue 6)") from None
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
        r.add_argument(opt, dest=_option_dest(opt))
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


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.argv[1:] == argv:
        from .startup import settle_hash_seed
        settle_hash_seed(argv)  # may re-execute this command: before any other start-up work
    try:
        if argv and argv[0] == "run":
            return cmd_run(argv[1:])
        if argv and argv[0] == "ctl":  # its own parser (options such as --all-children come first)
            try:
                from .updater import ctl
            except ImportError:
                raise NotAvailableError("`stasis ctl` is not available yet (updater, issue 6)") from None
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
        print(f"stasis: error: {e}", file=sys.stderr)
        from . import handover
        handover.report_failure(str(e), e.code)  # a process started by `stasis restart` tells the old one
        return e.code
    except KeyboardInterrupt:
        return 130
