"""The `stasis` command line (ARCHITECTURE.md §2). Errors of Stasis end with one line on stderr and
the exit status of their class (stasis/errors.py); never a traceback of Stasis internals."""
from __future__ import annotations

import sys
import types
from typing import List, NamedTuple, Optional, Sequence, Tuple

from . import errors
from .errors import EXIT_USAGE, StasisError

# argparse, json, datetime and math are imported where they are used: `stasis run` parses its
# command line by hand (_split_run_args) and every chain step pays for this module's imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


class UsageError(Exception):
    """A bad command line: one line on stderr and exit status 64. `command` names the command whose
    `--help` explains what to give ("" for `stasis --help`)."""

    def __init__(self, message: str, command: str = "") -> None:
        super().__init__(message)
        self.command = command


class ShowHelp(Exception):
    """`stasis run --help`: run has its own splitter, whose help is the `run` subparser's."""

    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command


def _parser_class() -> type:
    import argparse

    class _Parser(argparse.ArgumentParser):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("allow_abbrev", False)  # `run` takes no abbreviations either
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> None:  # argparse would exit 2, which programs use too
            raise UsageError(f"{self.prog}: {message}", self.prog[len("stasis "):])
    return _Parser


# --- run / resume: one table of their options -----------------------------------------------------
# The table makes `resume`'s parser, `run`'s hand-written splitter (everything after SCRIPT or
# -m MODULE is the program's own), `stasis run --help`, the man page and the bash completion
# (cli_help.py), so that none of them can drift from another.

class Option(NamedTuple):
    flag: str
    metavar: Optional[str]          # None: a flag without a value
    help: str                       # one line: what it does, its default
    commands: Tuple[str, ...] = ("run", "resume")
    repeat: bool = False            # may be given more than once (values collected in order)
    optional: bool = False          # --flag or --flag=VALUE
    check: Optional[str] = None     # "seconds", "count", "signals", "path": validated before anything runs
    session: bool = True            # asks for a suspendable session (see cmd_run)
    resume_help: Optional[str] = None   # resume's help, where it differs from run's

    def help_for(self, command: str) -> str:
        return self.resume_help if command == "resume" and self.resume_help else self.help


SESSION_OPTIONS: Tuple[Option, ...] = (
    Option("--snapshot", "PATH", "write the snapshot to PATH (default STEM.snap in the working directory, "
           "STEM the script's or module's name)", check="path",
           resume_help="write the next snapshot to PATH, leaving SNAPSHOT as it is (default: SNAPSHOT itself, "
           "replaced once the new one is complete)"),
    Option("--quota", "SECONDS", "suspend once SECONDS of wall-clock time have passed (a positive "
           "number; default: no quota)", check="seconds"),
    Option("--suspend-after", "N", "suspend at the program's N-th safe point (N >= 1; a testing aid; "
           "default: never)", check="count"),
    Option("--signal", "NAME", "suspend when NAME arrives (USR1, SIGTERM, or a comma list such as "
           "USR1,TERM; repeatable; default SIGUSR1; `stasis suspend PID` sends the first)",
           repeat=True, check="signals"),
    Option("--safe-point-timeout", "SECONDS", "give up a suspension request after SECONDS without a "
           "safe point, say why on stderr and go on (default 10; time Stasis spends rewriting modules "
           "on a first run does not count)", check="seconds"),
    Option("--checkpoint-every", "SECONDS", "write a checkpoint every SECONDS while the program keeps "
           "running (forked writer; default: none)", check="seconds"),
    Option("--keep", "N", "keep the last N periodic checkpoints: PATH, PATH.1 ... PATH.<N-1> "
           "(default 1; needs --checkpoint-every)", check="count"),
    Option("--snapshot-on-crash", "PATH", "when an uncaught exception is about to end the program, "
           "snapshot it first (default PATH: STEM.crash.snap beside the snapshot)", optional=True,
           check="path"),
    Option("--resume-if-present", None, "resume --snapshot PATH if it is a snapshot of this very "
           "program (same script and arguments), else start it; remove PATH when it ends with 0",
           commands=("run",)),
    Option("--key-file", "KEY", "sign the snapshots written with the key in file KEY and refuse "
           "unsigned or altered ones (default $STASIS_KEY_FILE; none: unsigned)", session=False),
    Option("--rewrite", "GLOB", "also compile modules whose dotted name matches GLOB into the "
           "resumable form (repeatable)", repeat=True, session=False),
    Option("--no-rewrite", "GLOB", "keep modules whose dotted name matches GLOB plain: no safe "
           "points in them (repeatable)", repeat=True, session=False),
    Option("--rebind", "OLD=NEW", "bind a socket saved at OLD (HOST:PORT, [V6]:PORT, :PORT, a Unix "
           "path, @NAME) at NEW instead (repeatable)", commands=("resume",), repeat=True, session=False),
    Option("--tcp-established", None, "keep established TCP connections across the suspension by TCP "
           "repair (root, CAP_NET_ADMIN)", session=False),
)


def session_options(command: str) -> List[Option]:
    return [o for o in SESSION_OPTIONS if command in o.commands]


# `stasis run` on its own is `run [options] SCRIPT [ARGS...]`: help for what the table does not hold.
_RUN_USAGE = "stasis run [options] SCRIPT [ARGS...]\n       stasis run [options] -m MODULE [ARGS...]"
_RUN_MODULE_HELP = ("run MODULE as python3 -m does (the rest are its arguments); suspendable only with a "
                    "suspension option such as --snapshot or --signal, else it runs as plain python3 -m would")


def _split_run_args(argv: Sequence[str]) -> types.SimpleNamespace:
    """Parses `run` options up to the program; everything after SCRIPT (or -m MODULE) is the
    program's, exactly as python3 would pass it."""
    table = {o.flag: o for o in session_options("run")}
    ns = types.SimpleNamespace(module=False, target=None, args=[], values={})
    i = 0
    while i < len(argv):
        a = argv[i]
        name, eq, inline = a.partition("=")
        option = table.get(name)
        if option is not None:
            if option.metavar is None:
                if eq:
                    raise UsageError(f"stasis run: {name} takes no value", "run")
                ns.values[name] = True
            elif option.optional:
                ns.values[name] = inline if eq else ""
            else:
                if eq:
                    value = inline
                else:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"stasis run: {name} needs a value ({option.metavar})", "run")
                    value = argv[i]
                if option.repeat:
                    ns.values.setdefault(name, []).append(value)
                else:
                    ns.values[name] = value
        elif a in ("-h", "--help"):
            raise ShowHelp("run")
        elif a == "-m":
            i += 1
            if i >= len(argv):
                raise UsageError("stasis run: -m needs a module name", "run")
            ns.module, ns.target, ns.args = True, argv[i], list(argv[i + 1:])
            return ns
        elif a == "--":
            i += 1
            break
        elif a.startswith("-") and a != "-":
            raise UsageError(f"stasis run: unknown option {a}", "run")
        else:
            break
        i += 1
    if i >= len(argv):
        raise UsageError("stasis run: give SCRIPT or -m MODULE", "run")
    ns.target, ns.args = argv[i], list(argv[i + 1:])
    return ns


def _option_dest(opt: str) -> str:
    # "--snapshot" must not share its name with resume's SNAPSHOT argument, which it would replace.
    return "option_" + opt[2:].replace("-", "_")


def _checked_values(command: str, values: dict) -> dict:
    """The values of run/resume options, checked before anything of the program runs: a bad one
    is a usage error (exit 64) naming the option and what it needs. Returns them converted."""
    out = dict(values)
    table = {o.flag: o for o in SESSION_OPTIONS}
    import math
    for name, value in values.items():
        check = table[name].check if name in table else None
        if value is None or check is None:
            continue
        if check == "seconds":
            try:
                seconds = float(value)
            except ValueError:
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds > 0):
                raise UsageError(f"stasis {command}: {name} needs a positive number of seconds, not {value!r}",
                                 command)
            out[name] = seconds
        elif check == "count":
            try:
                count = int(value)
            except ValueError:
                count = 0
            if count < 1:
                raise UsageError(f"stasis {command}: {name} needs a whole number of 1 or more, not {value!r}",
                                 command)
            out[name] = count
        elif check == "signals":
            out[name] = _signal_names(command, value)
        elif check == "path" and value:
            _check_output_path(command, name, value)
    if out.get("--keep") is not None and out.get("--checkpoint-every") is None:
        raise UsageError(f"stasis {command}: --keep counts periodic checkpoints: give --checkpoint-every too",
                         command)
    if out.get("--checkpoint-every") is not None and out.get("--suspend-after") is not None:
        raise UsageError(f"stasis {command}: --checkpoint-every and --suspend-after do not go together (a "
                         "pending --suspend-after request holds every checkpoint back)", command)
    return out


def _check_output_path(command: str, name: str, path: str) -> None:
    """A snapshot to write must be a file in a directory that exists: found out now, not when the
    program is suspended hours later."""
    import os
    if os.path.isdir(path):
        raise UsageError(f"stasis {command}: {name} {path} is a directory: give the snapshot's file path", command)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"stasis {command}: {name} {path}: directory {parent} does not exist", command)


def _check_snapshot_argument(command: str, path: str) -> None:
    """A snapshot to read that is a directory is a usage error (64); a missing or unreadable file
    is left to the reader, which says why with SnapshotIOError (98)."""
    import os
    if os.path.isdir(path):
        raise UsageError(f"stasis {command}: {path} is a directory, not a snapshot file", command)


def _program_options(values: dict, key_file, rewrite, no_rewrite):
    """Options of the program from checked values (_checked_values)."""
    from .program import Options
    o = Options(snapshot=values.get("--snapshot"), quota=values.get("--quota"),
                suspend_after=values.get("--suspend-after"), key_file=key_file,
                rewrite=list(rewrite or []), no_rewrite=list(no_rewrite or []))
    if values.get("--signal"):
        o.signals = list(values["--signal"])
    o.snapshot_on_crash = values.get("--snapshot-on-crash")
    if values.get("--safe-point-timeout") is not None:
        o.safe_point_timeout = values["--safe-point-timeout"]
    o.checkpoint_every = values.get("--checkpoint-every")
    if values.get("--keep") is not None:
        o.keep = values["--keep"]
    return o


def _signal_names(command: str, values) -> List[str]:
    """--signal given once or more, each a name or a comma-separated list: USR1, SIGTERM, usr1,term."""
    import signal
    names = []
    for value in ([values] if isinstance(values, str) else values):
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            full = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
            if not isinstance(getattr(signal, full, None), signal.Signals) or full in ("SIGKILL", "SIGSTOP"):
                raise UsageError(f"stasis {command}: --signal: unknown signal {name!r} (use a name such as "
                                 "USR1 or TERM; not KILL or STOP, which cannot be caught)", command)
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError(f"stasis {command}: --signal needs a signal name such as USR1", command)
    return names


def _check_key_file(key_file: Optional[str]) -> None:
    """The key is read now (SnapshotIOError, 98, when it cannot be), not at the first suspension."""
    from . import read_key
    read_key(key_file)


def _prepare_hook(no_rewrite: Sequence[str]) -> None:
    """Installs the import hook before Stasis's own start-up imports threading, queue or socket,
    so that those blocking stdlib modules run rewritten (resumable) code too."""
    # The standard modules this CLI has always imported before the hook, now imported where they
    # are used: imported here, first, they stay plain as they always were, in `run` and `resume`
    # alike (a program's frame in a library module must find the same kind of code when it is
    # rebuilt; and json's frames hold its C encoder, which a snapshot cannot keep, so they must not
    # become safe points).
    import argparse  # noqa: F401
    import datetime  # noqa: F401
    import json  # noqa: F401
    import signal  # noqa: F401
    from .compiler_hooks import runner
    runner.prepare(no_rewrite)


def cmd_run(argv: Sequence[str]) -> int:
    ns = _split_run_args(argv)
    values = _checked_values("run", ns.values)
    rewrite, no_rewrite = values.get("--rewrite", []), values.get("--no-rewrite", [])
    key_file = values.get("--key-file")
    _check_key_file(key_file)
    _prepare_hook(no_rewrite)
    session = any(o.session and o.flag in values for o in SESSION_OPTIONS)
    if session or not ns.module:
        # A suspendable session (signal, quota, suspend-after). `-m MODULE` without suspension
        # options runs as plain `python3 -m` would (no session), which CPython's own test suite
        # needs under the rewriter (the conformance oracle).
        from . import program
        options = _program_options(values, key_file, rewrite, no_rewrite)
        if values.get("--tcp-established"):
            _configure_sockets(tcp_established=True)
        batch_path = None
        if values.get("--resume-if-present"):
            resumable = _resumable(ns, options, key_file)
            batch_path = options.snapshot
            if resumable is not None:
                return _finished(program.resume(resumable, options), batch_path)
        _start_update_channel()
        return _finished(program.run(ns.target, ns.args, module=ns.module, options=options), batch_path)
    from . import startup_signals
    startup_signals.release()  # no session: the signals act as under python3 -m
    from .compiler_hooks import runner
    _start_update_channel()
    return runner.run(ns.target, ns.args, module=ns.module, rewrite=rewrite, no_rewrite=no_rewrite)


def _resumable(ns: types.SimpleNamespace, options, key_file: Optional[str]) -> Optional[str]:
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
    chosen = batch.choose(options.snapshot, identity, read_key(key_file))
    # Said once: run and resume re-execute this command line with the program's hash seed first.
    seed = os.environ.get("PYTHONHASHSEED")
    if chosen is None and seed not in (None, "random"):
        batch.announce(None, options.snapshot, identity)
    elif chosen is not None and seed == batch.hash_seed(chosen, read_key(key_file)):
        batch.announce(chosen, options.snapshot, identity)
    return chosen


def _finished(status: int, batch_path: Optional[str] = None) -> int:
    """The program has ended (not suspended: that ends the process with 75 before this). With
    --resume-if-present and status 0, the job is done: its snapshots go (program/batch.py)."""
    from .program import periodic
    periodic.finished()
    if batch_path is not None:
        from .program import batch
        batch.finished(status, batch_path)
    return status


def _start_update_channel() -> None:
    from .updater import control
    control.serve_updates()  # `stasis ctl PID ...` reaches every program started by `stasis run`


def cmd_resume(args: argparse.Namespace) -> int:
    values = {o.flag: getattr(args, _option_dest(o.flag)) for o in session_options("resume")}
    values = _checked_values("resume", {k: v for k, v in values.items() if v is not None})
    _check_key_file(args.option_key_file)
    no_rewrite = values.get("--no-rewrite", [])
    _prepare_hook(no_rewrite)  # before `program` imports threading: threads' stacks run in it
    patches = _read_patches(args.patches)  # read now: loading changes to the program's directory
    from . import program
    _refuse_signed_without_key(args.snapshot, args.option_key_file, "resume it; the snapshots it writes are "
                               "signed with it")
    options = _program_options(values, args.option_key_file, values.get("--rewrite", []), no_rewrite)
    from . import handover
    handover.setup_restore()  # a process started by `stasis restart`: the sockets it inherits
    _configure_sockets(rebind=values.get("--rebind", []), tcp_established=bool(values.get("--tcp-established")),
                       resuming=True)
    _start_update_channel()
    return _finished(program.resume(args.snapshot, options, patches=patches))


# --- patch: (kind, argument) pairs in command-line order ------------------------------------------

def _patch_arguments(p: argparse.ArgumentParser, auto: bool) -> None:
    p.add_argument("--source", dest="patches", action="append", default=[], metavar="PATH[=MODULE]",
                   type=lambda v: ("source", v),
                   help="a new source file of one of the program's modules (matched by its path relative "
                        "to the script's directory; =MODULE names it; repeatable, applied in order)")
    p.add_argument("--update", dest="patches", action="append", metavar="FILE", type=lambda v: ("update", v),
                   help="an update module, as for `stasis ctl PID apply` (stasis.update; repeatable)")
    if auto:
        p.add_argument("--patch", dest="patches", action="extend", nargs="+", metavar="FILE",
                       type=lambda v: ("auto", v),
                       help="one or more files, each a new source of the program's module of that file name, "
                            "else an update module (default: no patch)")


def _read_patches(pairs: Sequence) -> list:
    if not pairs:
        return []
    from .updater import snapshot_patch
    return [snapshot_patch.read_spec(kind, arg) for kind, arg in pairs]


def cmd_patch(args: argparse.Namespace) -> int:
    """Applies patches to a suspended program's snapshot and writes the patched snapshot."""
    if not args.patches:
        raise UsageError("stasis patch: give at least one --source PATH or --update FILE", "patch")
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
        raise UsageError(f"stasis resume: {e}", "resume") from None
    net.settings.tcp_established = tcp_established  # and the snapshots this run writes keep them too
    if resuming:
        net.reserve_fds()


def _refuse_signed_without_key(snapshot: str, key_file: Optional[str], to: str) -> None:
    """A signed snapshot runs only verified: without its key it is refused (95), as `patch` does;
    resuming it unverified would also write its next snapshot unsigned, which no reader holding
    the key accepts."""
    import os
    from . import read_key
    from .program.patch import _signed
    if not os.path.isfile(snapshot):
        return  # a FIFO must not be opened here (it would wait for a writer): the reader refuses it
    if _signed(snapshot) and read_key(key_file) is None:
        raise errors.SignatureError(f"{snapshot} is signed: give its key (--key-file KEY or STASIS_KEY_FILE) to {to}")


def cmd_debug(args: argparse.Namespace) -> int:
    """Rebuilds a suspended program and opens pdb at its suspension point; the snapshot is only
    read, so every debug session starts from the same state."""
    _prepare_hook([])
    from . import program
    _refuse_signed_without_key(args.snapshot, args.key_file, "debug it")
    return program.resume(args.snapshot, _program_options({}, args.key_file, [], []), debug=True)


def cmd_suspend(args: argparse.Namespace) -> int:
    """Asks a process running under Stasis to suspend, waits for it to end, prints the path."""
    import os
    import signal
    import time
    from . import program
    record = os.path.join(program.pid_dir(), f"{args.pid}.txt")
    def gave_up() -> list:  # the lines `gave up: WHY` the process added to its record
        try:
            with open(record) as f:
                return [line[len("gave up: "):].strip() for line in f if line.startswith("gave up: ")]
        except OSError:
            return []

    try:
        with open(record) as f:
            signum, path = int(f.readline()), f.readline().strip()
    except (OSError, ValueError):
        raise errors.StasisError(f"process {args.pid} is not running under `stasis run` (no record "
                                 f"in {program.pid_dir()})") from None
    earlier = len(gave_up())
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
        reasons = gave_up()
        if len(reasons) > earlier:
            raise errors.NotSuspendableError(f"process {args.pid} could not suspend: {reasons[-1]}; "
                                             "it keeps running")
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
        raise UsageError(f"stasis restart: --timeout needs a positive number of seconds, not {args.timeout:g}", "restart")
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
    from .program.progress import size_text
    return size_text(n)


def format_inspect(path: str, info: dict) -> str:
    import datetime
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
    from . import _engine, read_key
    from .program import inspect_view
    if args.depth is not None and args.depth < 1:
        raise UsageError(f"stasis inspect: --depth needs a count of 1 or more, not {args.depth}")
    if args.top < 1:
        raise UsageError(f"stasis inspect: --top needs a count of 1 or more, not {args.top}")
    key = read_key(args.key_file)
    # A program snapshot is described as it is read (the same one pass over the payload): its
    # objects are never built (program/inspect_view.py).
    info = _engine.inspect(args.snapshot, key=key, describe=True)
    view = info.pop("view", None)
    program = None
    if view is not None:
        program = inspect_view.inspect_program(args.snapshot, {**info, "view": view}, key, depth=args.depth,
                                               show_locals=args.locals, top=args.top)
    del view
    if args.json:
        out = {"path": args.snapshot, **info}
        if program is not None:
            out.update(inspect_view.jsonable(program))
        import json
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    else:
        text = format_inspect(args.snapshot, info)
        if program is not None:
            text += inspect_view.format_program(program, info["hash_seed"], args.locals)
        sys.stdout.write(text)
    return 0


# --- entry ------------------------------------------------------------------------------------

COMMANDS_EPILOG = """\
exit status: the program's own; 75 when it was suspended and its snapshot is complete; 64 for a bad
command line; 90-104 for errors of Stasis (`stasis help exit-status`).

topics: stasis help exit-status | environment | suspension | signing
"""


# The subcommands of _parser (tests/cli/test_option_table.py checks that this is all of them).
_COMMANDS = ("run", "resume", "suspend", "restart", "inspect", "rewrite", "patch", "debug", "ctl", "help")


def _help_width() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (with bz2 and lzma): argparse's
    formatters ask it for their width, and every command line builds some."""
    import os
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


def _sized(formatter: type) -> type:
    """`formatter` with argparse's default width (the terminal's, less 2) found by _help_width."""
    class Sized(formatter):  # type: ignore[valid-type,misc]
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: Optional[int] = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             _help_width() - 2 if width is None else width)
    return Sized


class _LeftOut:
    """A subcommand _parser leaves out: whatever is asked of it does nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


def _parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The CLI's parser; with `only`, the subcommands other than that one are left out (a command
    line is parsed by its own subparser; building all of them cost every `stasis resume`)."""
    import argparse
    p = _parser_class()(prog="stasis", description="Suspend a running Python program into a snapshot file; resume "
                "it later, here or elsewhere; patch it, inspect it, debug it.",
                usage="stasis [-h] COMMAND [ARGS...]", epilog=COMMANDS_EPILOG,
                formatter_class=_sized(argparse.RawDescriptionHelpFormatter))
    subparsers = p.add_subparsers(dest="command", metavar="COMMAND")

    def add_parser(name: str, **kwargs):
        if only not in (None, name):
            return _LeftOut()
        return subparsers.add_parser(name, formatter_class=_sized(argparse.HelpFormatter), **kwargs)
    # `run` is parsed by _split_run_args (the program's own arguments follow SCRIPT): this parser
    # is its help, man page and completion.
    rn = add_parser("run", help="run a program under Stasis, suspendable", usage=_RUN_USAGE,
                    description="Run SCRIPT (or -m MODULE) under Stasis: it can be suspended into a "
                    "snapshot (exit status 75) by a quota, a signal, `stasis suspend PID` or itself, "
                    "and continued with `stasis resume`. Options go before SCRIPT; what follows "
                    "SCRIPT is the program's own.")
    rn.add_argument("-m", dest="module", metavar="MODULE", help=_RUN_MODULE_HELP)
    _session_arguments(rn, "run")
    rn.add_argument("script", metavar="SCRIPT", nargs="?", help="the program to run (a .py file)")
    rn.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER, help="the program's own arguments")
    r = add_parser("resume", help="continue a suspended program from its snapshot",
                   description="Continue a suspended (or crashed) program from SNAPSHOT in this "
                   "process: its modules, heap and every thread's stack. Exit status: the program's, "
                   "or 75 when it is suspended again.")
    r.add_argument("snapshot", metavar="SNAPSHOT", help="the snapshot to continue from (only read, unless "
                   "--snapshot is not given: a new suspension then replaces it)")
    _session_arguments(r, "resume")
    _patch_arguments(r, auto=True)
    r.set_defaults(func=cmd_resume)
    s = add_parser("suspend", help="suspend a process running under Stasis; print its snapshot's path",
                   description="Ask process PID (started by `stasis run` or `stasis resume`) to "
                   "suspend, by its first --signal; wait until it has ended and print the snapshot's path. "
                   "When the process gives up the request (no safe point within its own "
                   "--safe-point-timeout), exit 99 at once with its reason; it keeps running.")
    s.add_argument("pid", type=int, metavar="PID", help="the process (as printed by $! or ps)")
    s.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="give up waiting after SECONDS, exit 99; the process keeps running (default 60)")
    s.set_defaults(func=cmd_suspend)
    rs = add_parser("restart", help="hand a running service over to a new process, keeping its state "
                    "and sockets (no failed request)",
                    description="Start a new process of the program running as PID, hand it the "
                    "program's state and its very sockets, apply the patches on the way; print the "
                    "new PID. If anything fails, the old process goes on serving.")
    rs.add_argument("pid", type=int, metavar="PID", help="the running process (started by `stasis run`)")
    _patch_arguments(rs, auto=True)  # applied in the new process before it takes over, as resume does
    rs.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                    help="seconds for the whole switch (default 120); after that the old process goes on")
    rs.set_defaults(func=cmd_restart)
    i = add_parser("inspect", help="describe a snapshot; for a program: its threads, frames, locals, heap",
                   description="Describe a snapshot without building anything from it. For a suspended "
                               "program: every thread and its frames (outermost first) with their source "
                               "lines and locals, the heap by type, the modules, the hash seed, the "
                               "command line, the suspension and the patch history.")
    i.add_argument("snapshot", metavar="SNAPSHOT", help="the snapshot file (nothing in it is run or imported)")
    i.add_argument("--json", action="store_true", help="machine-readable, stable keys")
    i.add_argument("--key-file", metavar="KEY", help="verify the signature with this key (default $STASIS_KEY_FILE)")
    i.add_argument("--locals", action=argparse.BooleanOptionalAction, default=True,
                   help="show each frame's locals (default; --no-locals: frames only)")
    i.add_argument("--depth", type=int, metavar="N", help="show only the innermost N frames of each thread")
    i.add_argument("--top", type=int, default=10, metavar="N",
                   help="rows of the heap tables, by type and by module (default 10)")
    i.set_defaults(func=cmd_inspect)
    w = add_parser("rewrite", help="print the resumable form of a module",
                   description="Print the resumable form Stasis compiles FILE into (a listing of "
                   "its lowered statements and resume points); FILE is not run.")
    w.add_argument("file", metavar="FILE", help="a Python source file")
    w.set_defaults(func=cmd_rewrite)
    pa = add_parser("patch", help="patch a suspended or crashed program's snapshot with fixed code",
                    description="Apply new sources of the program's modules and update modules, in "
                    "the order given, to the program in SNAPSHOT; frames on the stacks continue in "
                    "the new code. Refused patches change nothing (exit 102).")
    pa.add_argument("snapshot", metavar="SNAPSHOT", help="the snapshot to patch")
    _patch_arguments(pa, auto=False)
    pa.add_argument("-o", "--output", metavar="OUT",
                    help="write the patched snapshot here (default: replace SNAPSHOT, keeping the old one as "
                         "SNAPSHOT.before-patch-N)")
    pa.add_argument("--key-file", metavar="KEY",
                    help="verify and sign with the key in file KEY (default $STASIS_KEY_FILE)")
    pa.set_defaults(func=cmd_patch)
    d = add_parser("debug", help="open pdb at a snapshot's suspension point, or where a crash was raised",
                   description="Rebuild the program in SNAPSHOT and open pdb where it stood: the "
                   "suspension point, or the frame that raised (crash snapshots). The snapshot is only "
                   "read: every session starts from the same state.")
    d.add_argument("snapshot", metavar="SNAPSHOT", help="a program snapshot")
    d.add_argument("--key-file", metavar="KEY",
                   help="verify the signature with the key in file KEY (default $STASIS_KEY_FILE)")
    d.set_defaults(func=cmd_debug)
    c = add_parser("ctl", help="patch, instrument or profile a live process (stasis ctl --help)",
                   add_help=False)
    c.add_argument("rest", nargs=argparse.REMAINDER)
    c.set_defaults(func=cmd_ctl)
    h = add_parser("help", help="help on a command or a topic: stasis help [COMMAND|TOPIC]",
                   description="Show the help of COMMAND, or of TOPIC: exit-status, environment, "
                   "suspension, signing. Without an argument, the list of commands.")
    h.add_argument("topic", metavar="COMMAND|TOPIC", nargs="?", help="a command or a topic")
    h.set_defaults(func=lambda args: cmd_help(p, args.topic))
    from .cli_help import synopsis
    for name, command in subparsers.choices.items():  # "usage: stasis resume SNAPSHOT [options]"
        command.prog = f"stasis {name}"
        command.usage = "\n       ".join(synopsis(name, command))
    return p


def _session_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """run's and resume's options, from the one table (SESSION_OPTIONS)."""
    for o in session_options(command):
        kwargs = dict(dest=_option_dest(o.flag), help=o.help_for(command))
        if o.metavar is None:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = o.metavar
            if o.optional:
                kwargs.update(nargs="?", const="")
            elif o.repeat:
                kwargs["action"] = "append"
        p.add_argument(o.flag, **kwargs)


def cmd_help(parser: argparse.ArgumentParser, topic: Optional[str]) -> int:
    from . import cli_help
    sys.stdout.write(cli_help.help_text(parser, topic))
    return 0


def _one_line(message: str) -> str:
    """An error message as one line of plain text: a snapshot's strings end up in messages (module
    names, handler keys), and their newlines or terminal escape sequences are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from . import startup
    if not startup.begun(argv):  # the launcher does it before importing this module
        startup.begin(argv, settle=sys.argv[1:] == argv)  # may re-execute this command
    try:
        if argv and argv[0] == "run":
            return cmd_run(argv[1:])
        if argv and argv[0] == "ctl":  # its own parser (options such as --all-children come first)
            from .updater import ctl
            return ctl.main(argv[1:])
        # The command's own subparser only (not for `help` and `--help`, which show them all).
        parser = _parser(argv[0] if argv and argv[0] in _COMMANDS and argv[0] != "help" else None)
        args, unknown = parser.parse_known_args(argv)
        if unknown and getattr(args, "command", None) not in (None, "ctl"):
            raise UsageError(f"stasis {args.command}: unknown option or argument {unknown[0]}", args.command)
        if unknown:
            parser.parse_args(argv)  # its own message
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if isinstance(getattr(args, "snapshot", None), str):
            _check_snapshot_argument(args.command, args.snapshot)
        if getattr(args, "output", None):
            _check_output_path(args.command, "-o", args.output)
        return args.func(args)
    except ShowHelp as e:
        from . import cli_help
        sys.stdout.write(cli_help.help_text(_parser(), e.command))
        return 0
    except UsageError as e:
        hint = f"stasis {e.command} --help" if e.command else "stasis --help"
        print(f"{_one_line(str(e))} (see `{hint}`)", file=sys.stderr)
        return EXIT_USAGE
    except StasisError as e:
        print(f"stasis: error: {_one_line(str(e))}", file=sys.stderr)
        from . import handover
        handover.report_failure(str(e), e.code)  # a process started by `stasis restart` tells the old one
        return e.code
    except KeyboardInterrupt:
        return 130
