"""`stasis ctl [--all-children] PID COMMAND ...` — the client of the control channel.

Commands: apply FILE | list | revert ID | profile PATTERN [--seconds N] [--folded FILE] [--svg FILE]
| trace FUNC [--seconds N] | watch FUNC VAR [--seconds N] | lines FUNC LINES [--seconds N] | ping.
With --all-children the command goes to PID and every descendant process serving updates (a
pre-fork server's workers), in parallel, and the output is reported per process. The exit status
is 0 when every process succeeded, else the error code of the first failure (stasis.errors).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
from typing import Any, Dict, List, Sequence, Tuple

from ..errors import EXIT_USAGE, StasisError
from . import channel, render
from .errors import ControlChannelError

_TIMEOUT_SLACK = 60.0  # beyond a command's own duration (apply may wait for a safe point)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message)


class _Usage(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stasis ctl", description="patch, instrument or profile a live process: one started by "
                "`stasis run`, or any that called stasis.serve_updates()")
    p.add_argument("--all-children", action="store_true",
                   help="also every descendant of PID serving updates (a pre-forking server's workers)")
    p.add_argument("pid", type=int, metavar="PID", help="the process")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    seconds = dict(type=float, default=10.0, metavar="SECONDS", help="how long to collect (default 10)")
    a = sub.add_parser("apply", help="run an update file in the process")
    a.add_argument("file", metavar="FILE", help="an update module (stasis.update: redefine, add_field, "
                   "convert, instrument...)")
    sub.add_parser("list", help="list updates")
    r = sub.add_parser("revert", help="revert one update (any order)")
    r.add_argument("update", type=int, metavar="N", help="the update's number, as `list` shows it")
    pr = sub.add_parser("profile", help="function-level timing of functions matching a glob")
    pr.add_argument("pattern", metavar="GLOB", help="dotted names of the functions to time (app.*)")
    pr.add_argument("--seconds", **seconds)
    pr.add_argument("--folded", metavar="FILE", help="also write the stacks in folded form (flamegraph.pl's "
                    "input) to FILE")
    pr.add_argument("--svg", metavar="FILE", help="also write a flame graph to FILE")
    t = sub.add_parser("trace", help="arguments and return values of a function")
    t.add_argument("function", metavar="FUNCTION", help="its dotted name (module.func, module.Class.method)")
    t.add_argument("--seconds", **seconds)
    w = sub.add_parser("watch", help="every value a local variable takes")
    w.add_argument("function", metavar="FUNCTION", help="its dotted name (module.func, module.Class.method)")
    w.add_argument("variable", metavar="VARIABLE", help="the local variable's name")
    w.add_argument("--seconds", **seconds)
    ln = sub.add_parser("lines", help="time per line of a function")
    ln.add_argument("function", metavar="FUNCTION", help="its dotted name (module.func, module.Class.method)")
    ln.add_argument("lines", metavar="LINES", help="e.g. 10-20,25 or all")
    ln.add_argument("--seconds", **seconds)
    sub.add_parser("ping", help="check that the process serves updates")
    return p


def descendants(pid: int) -> List[int]:
    """PIDs of every descendant of pid (from /proc), children before grandchildren."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, queue = [], [pid]
    while queue:
        for c in sorted(children.get(queue.pop(0), [])):
            out.append(c)
            queue.append(c)
    return out


def _request(args: argparse.Namespace) -> Tuple[Dict[str, Any], float]:
    req: Dict[str, Any] = {"protocol": channel.PROTOCOL, "op": args.command}
    seconds = float(getattr(args, "seconds", 0.0) or 0.0)
    if args.command == "apply":
        path = os.path.abspath(args.file)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ControlChannelError(f"cannot read {path}: {e.strerror}") from None
        req.update(path=path, sha256=hashlib.sha256(data).hexdigest())
    elif args.command == "revert":
        req["update"] = args.update
    elif args.command == "profile":
        req.update(pattern=args.pattern, seconds=seconds)
    elif args.command in ("trace", "watch", "lines"):
        req.update(function=args.function, seconds=seconds)
        if args.command == "watch":
            req["variable"] = args.variable
        if args.command == "lines":
            req["lines"] = args.lines
    return req, seconds


def call(pid: int, request: Dict[str, Any], timeout: float, on_event=None) -> Dict[str, Any]:
    """Sends one request to process pid; returns its final reply (events go to on_event)."""
    with channel.connect(pid, timeout=timeout) as sock:
        channel.send(sock, request)
        while True:
            try:
                reply = channel.recv(sock)
            except TimeoutError:
                raise ControlChannelError(f"process {pid} did not answer within {timeout:g} s") from None
            if reply is None:
                raise ControlChannelError(f"process {pid} closed the connection without an answer")
            if "event" in reply:
                if on_event:
                    on_event(reply["event"])
                continue
            return reply


def _format(pid: int, args: argparse.Namespace, reply: Dict[str, Any]) -> str:
    if args.command == "apply":
        return f"update {reply['update']} applied: {'; '.join(reply['actions'])}\n"
    if args.command == "revert":
        return f"update {reply['update']} reverted: {'; '.join(reply['actions'])}\n"
    if args.command == "list":
        if not reply["updates"]:
            return "no updates\n"
        return "".join(f"{u['id']:>4} {u['state']:<9} {'' if u['revertible'] else '(not revertible) '}"
                       f"{u['source']}: {'; '.join(u['actions'])}\n" for u in reply["updates"])
    if args.command == "ping":
        return f"pid {reply['pid']} (parent {reply['ppid']}), Python {reply['python']}: {' '.join(reply['argv'])}\n"
    if args.command == "lines":
        return render.lines_table(reply)
    if args.command in ("trace", "watch"):
        dropped = reply.get("dropped_events")
        note = f"; {dropped} events dropped: the client did not keep up" if dropped else ""
        return f"({args.command} ended; update {reply['update']} reverted{note})\n"
    return ""


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except _Usage as e:
        print(f"stasis ctl: {e}\n(see `stasis ctl --help`)", file=sys.stderr)
        return EXIT_USAGE
    try:
        request, seconds = _request(args)
        pids = [args.pid]
        if args.all_children:
            pids += [p for p in descendants(args.pid) if os.path.exists(channel.socket_path(p))]
    except StasisError as e:
        print(f"stasis: error: {e}", file=sys.stderr)
        return e.code
    multi = len(pids) > 1 or args.all_children
    results: Dict[int, Any] = {}
    out_lock = threading.Lock()

    def run(pid: int) -> None:
        prefix = f"[pid {pid}] " if multi else ""

        def on_event(text: str) -> None:
            with out_lock:
                sys.stdout.write(prefix + text + "\n")
                sys.stdout.flush()
        try:
            results[pid] = call(pid, request, seconds + _TIMEOUT_SLACK, on_event)
        except StasisError as e:
            results[pid] = {"ok": False, "error": str(e), "code": e.code}
        except OSError as e:
            results[pid] = {"ok": False, "error": f"process {pid}: {e}", "code": ControlChannelError.code}

    # Daemon threads: Ctrl-C ends the client at once; each target sees the hang-up and reverts
    # whatever tool it was running for us.
    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in pids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    status = 0
    profile_rows: List[render.Row] = []
    for pid in pids:
        reply = results[pid]
        prefix = f"[pid {pid}] " if multi else ""
        if not reply.get("ok"):
            print(f"{prefix}stasis: error: {reply.get('error')}", file=sys.stderr)
            if reply.get("traceback"):
                print(reply["traceback"], file=sys.stderr, end="")
            status = status or int(reply.get("code") or 1)
            continue
        if args.command == "profile":
            profile_rows += render.rows_of(pid, reply)
            for s in reply.get("skipped", []):
                print(f"{prefix}skipped {s}", file=sys.stderr)
            continue
        for w in reply.get("warnings", []):
            print(f"{prefix}stasis: warning: {w}", file=sys.stderr)
        text = _format(pid, args, reply)
        sys.stdout.write("".join(prefix + line + "\n" for line in text.splitlines()) if multi else text)
    if args.command == "profile" and any(results[p].get("ok") for p in pids):
        folded = render.folded(profile_rows)
        sys.stdout.write(render.summary(profile_rows))
        try:
            if args.folded:
                with open(args.folded, "w") as f:
                    f.write(folded)
            if args.svg:
                with open(args.svg, "w") as f:
                    f.write(render.flamegraph_svg(folded, f"stasis profile {args.pattern} (pids {', '.join(map(str, pids))})"))
        except OSError as e:
            print(f"stasis: error: cannot write profile output: {e}", file=sys.stderr)
            status = status or ControlChannelError.code
    sys.stdout.flush()
    return status
