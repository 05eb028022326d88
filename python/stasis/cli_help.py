"""The help of the `stasis` command line, all made from its parser (cli.py) so that none of it can
drift from what the commands accept: `stasis help [COMMAND|TOPIC]`, the man page stasis(1), the
bash completion, and the "Command line" block of README.md.

The build writes the man page and the completion (python/stasis/CMakeLists.txt):
    python -m stasis.cli_help --man build/share/man/man1/stasis.1 \\
                              --completion build/share/bash-completion/completions/stasis
`--readme` prints the README block (tests/cli/test_option_table.py checks README.md holds it)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Tuple

# --- topics -----------------------------------------------------------------------------------

_ENVIRONMENT = (
    ("STASIS_KEY_FILE", "a file whose bytes are the signing key: snapshots written are signed, and "
     "snapshots read must be signed with it (as --key-file KEY; the option wins)"),
    ("STASIS_CONTROL_DIR", "the directory of the control sockets of running programs (stasis ctl, "
     "suspend, restart); default $XDG_RUNTIME_DIR/stasis, else a private /tmp/stasis-UID"),
    ("XDG_RUNTIME_DIR", "where the per-user runtime directory (control sockets, process records) is made"),
    ("PYTHONHASHSEED", "stasis run keeps it for the program (else picks one); resume always uses the "
     "snapshot's"),
    ("STASIS_CACHE_DIR", "the cache of rewritten (resumable) modules; default $XDG_CACHE_HOME/stasis, "
     "else ~/.cache/stasis"),
    ("STASIS_CHECKPOINT_LOG", "FILE: append one JSON line per periodic checkpoint (freeze, fork and "
     "write times)"),
    ("STASIS_CHECKPOINT_HUGEPAGES", "0: do not ask the kernel for huge pages between checkpoints"),
)

_SUSPENSION = """\
A program started by `stasis run` (or continued by `stasis resume`) is suspended when
  - its --quota of wall-clock seconds is spent;
  - one of its --signal signals arrives (SIGUSR1 unless --signal is given; repeatable: a batch
    job wants USR1 for the time-limit warning and TERM for preemption);
  - `stasis suspend PID` asks (it sends the first --signal and prints the snapshot's path);
  - the program calls stasis.suspend(), or reaches its --suspend-after N-th safe point.
The threads stop at their next safe point, the snapshot is written (to --snapshot PATH; default
STEM.snap in the working directory, or the snapshot resumed from), and the process exits 75.
A signal that comes while Stasis is still starting or resuming is kept and suspends the program
as soon as it runs. When no safe point comes within --safe-point-timeout seconds (default 10),
stderr says what blocked it and the program goes on; if it then ends, the exit status is 104.
--checkpoint-every SECONDS writes snapshots while the program keeps running (--keep N of them);
stasis.checkpoint(PATH) does so from the program.
Continue with `stasis resume PATH`; repeat while the exit status is 75.
"""

_SIGNING = """\
With --key-file KEY (or STASIS_KEY_FILE=KEY), the snapshots written are signed with HMAC-SHA256
over the key in file KEY, and a snapshot read with a key must carry a matching signature: an
unsigned or altered file is refused before anything is decompressed, with exit status 95. Sign
snapshots that cross a trust boundary: resuming runs the program's code. `stasis patch` signs
the patched snapshot with the key it verified the input with.
"""


def _exit_status_text() -> str:
    from . import errors
    rows = [("0..", "the program's own exit status when it ends"),
            (str(errors.EXIT_USAGE), "bad command line (one line on stderr; nothing was started)"),
            (str(errors.EXIT_SUSPENDED), "the program was suspended and its snapshot is complete")]
    for cls in sorted(errors.ALL, key=lambda c: c.code):
        doc = " ".join((cls.__doc__ or "").split())
        if cls is errors.StasisError:
            doc = "an internal error (a bug: please report it)."
        rows.append((str(cls.code), f"{cls.__name__}: {doc}"))
    return "".join(f"  {code:<4} {text}\n" for code, text in rows) + \
        "Errors of Stasis end with one line on stderr (`stasis: error: ...`), never a traceback.\n"


def _environment_text() -> str:
    return "".join(f"  {name}\n      {text}\n" for name, text in _ENVIRONMENT)


TOPICS: Dict[str, Tuple[str, object]] = {
    "exit-status": ("what each exit status means", _exit_status_text),
    "environment": ("environment variables Stasis reads", _environment_text),
    "suspension": ("what suspends a program: quota, signals, stasis suspend, safe points", lambda: _SUSPENSION),
    "signing": ("signed snapshots: --key-file, STASIS_KEY_FILE", lambda: _SIGNING),
}


def topic_text(name: str) -> str:
    return TOPICS[name][1]()  # type: ignore[operator]


# --- the parser, read ---------------------------------------------------------------------------

def subparsers(parser: argparse.ArgumentParser) -> List[Tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of every command, in the parser's order."""
    for action in parser._actions:  # argparse keeps no public list of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), p) for name, p in action.choices.items()]
    return []


def _ctl_parser() -> Optional[argparse.ArgumentParser]:
    try:
        from .updater import ctl
    except ImportError:
        return None
    return ctl._parser()


def command_parser(parser: argparse.ArgumentParser, name: str) -> Optional[argparse.ArgumentParser]:
    if name == "ctl":
        return _ctl_parser()
    return {n: p for n, _, p in subparsers(parser)}.get(name)


def options_of(p: argparse.ArgumentParser) -> List[argparse.Action]:
    """The optional arguments of a command (not -h), in the order of its --help."""
    return [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def positionals_of(p: argparse.ArgumentParser) -> List[argparse.Action]:
    return [a for a in p._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def _flags(a: argparse.Action) -> str:
    """`-o, --output OUT`, `--snapshot-on-crash[=PATH]`, `--tcp-established`."""
    names = ", ".join(a.option_strings)
    if a.nargs == 0:
        return names
    metavar = a.metavar or a.dest.upper()
    if a.nargs == "?":
        return f"{names}[={metavar}]"
    if a.nargs == "+":
        return f"{names} {metavar}..."
    return f"{names} {metavar}"


def synopsis(name: str, p: argparse.ArgumentParser) -> List[str]:
    if name == "run":
        return ["stasis run [options] SCRIPT [ARGS...]", "stasis run [options] -m MODULE [ARGS...]"]
    if name == "ctl":
        return ["stasis ctl [--all-children] PID COMMAND [ARGS...]"]
    words = ["stasis", name]
    for a in positionals_of(p):
        words.append(f"[{a.metavar}]" if a.nargs == "?" else a.metavar or a.dest.upper())
    if options_of(p):
        words.append("[options]")
    return [" ".join(words)]


# --- stasis help --------------------------------------------------------------------------------

def help_text(parser: argparse.ArgumentParser, topic: Optional[str]) -> str:
    from .cli import UsageError
    if topic is None:
        return parser.format_help()
    if topic in TOPICS:
        return topic_text(topic)
    p = command_parser(parser, topic)
    if p is None:
        raise UsageError(f"stasis help: no command or topic {topic!r} (commands: "
                         f"{', '.join(n for n, _, _ in subparsers(parser))}; topics: {', '.join(TOPICS)})", "help")
    return p.format_help()


# --- README's "Command line" block ----------------------------------------------------------------

def readme_block(parser: argparse.ArgumentParser) -> str:
    """Every command with its one-line help, then each of its options with its help: the block of
    README.md's "Command line" section."""
    lines: List[str] = []
    for name, summary, p in subparsers(parser):
        if name == "help":
            continue
        if name == "ctl":
            ctl = _ctl_parser()
            lines.append(f"{synopsis(name, p)[0]:<43} {summary.split(' (')[0]} (updater/README.md)")
            if ctl is None:
                continue
            for a in options_of(ctl):
                lines.append(f"    {_flags(a):<30} {a.help}")
            for sub, sub_help, sp in subparsers(ctl):
                words = " ".join([sub, *(a.metavar or a.dest for a in positionals_of(sp))])
                lines.append(f"    {words:<30} {sub_help}")
                for a in options_of(sp):
                    lines.append(f"        {_flags(a):<26} {a.help}")
            continue
        first, *rest = synopsis(name, p)
        lines.append(f"{first:<43} {summary}")
        lines.extend(rest)
        for a in options_of(p):
            lines.append(f"    {_flags(a):<30} {a.help}")
    lines.append(f"{'stasis help [COMMAND|TOPIC]':<43} help on a command, or on a topic: {', '.join(TOPICS)}")
    return "\n".join(lines) + "\n"


# --- man page (roff, by hand) -------------------------------------------------------------------

def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    out = []
    for line in text.split("\n"):
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def man_page(parser: argparse.ArgumentParser, version: str) -> str:
    m = [f'.TH STASIS 1 "" "Stasis {version}" "User Commands"',
         ".SH NAME", "stasis \\- suspend a running Python program into a snapshot and resume it later",
         ".SH SYNOPSIS"]
    commands = subparsers(parser)
    for name, _, p in commands:
        for line in synopsis(name, p):
            m += [".br", "\\fB" + _roff(line) + "\\fR"]
    m += [".SH DESCRIPTION", _roff(parser.description or ""),
          "Each command's options are listed below; \\fBstasis help\\fR \\fICOMMAND\\fR prints the same.",
          ".SH COMMANDS"]
    for name, summary, p in commands:
        if name == "ctl":
            p = _ctl_parser() or p
        m += [f'.SS "{_roff(synopsis(name, p)[0])}"', _roff(p.description or summary)]
        for a in positionals_of(p):
            if a.help:
                m += [".TP", "\\fI" + _roff(a.metavar or a.dest) + "\\fR", _roff(a.help)]
        for a in options_of(p):
            m += [".TP", "\\fB" + _roff(_flags(a)) + "\\fR", _roff(a.help or "")]
        if name == "ctl":
            for sub, sub_help, sp in subparsers(p):
                args = " ".join(a.metavar or a.dest for a in positionals_of(sp))
                m += [".TP", f"\\fB{_roff(sub)}\\fR {_roff(args)}", _roff(sub_help)]
                for a in options_of(sp):
                    m += [".RS", ".TP", "\\fB" + _roff(_flags(a)) + "\\fR", _roff(a.help or ""), ".RE"]
    m += [".SH EXIT STATUS", ".nf", _roff(_exit_status_text()), ".fi",
          ".SH ENVIRONMENT"]
    for var, text in _ENVIRONMENT:
        m += [".TP", f"\\fB{_roff(var)}\\fR", _roff(text)]
    m += [".SH SUSPENSION", ".nf", _roff(_SUSPENSION), ".fi",
          ".SH SIGNING", _roff(" ".join(_SIGNING.split())),
          ".SH SEE ALSO", "\\fBpython3\\fR(1), \\fBpdb\\fR, README.md and FORMAT.md of Stasis", ""]
    return "\n".join(m)


# --- bash completion ----------------------------------------------------------------------------

_FILE_METAVARS = {"PATH", "KEY", "FILE", "OUT", "SNAPSHOT", "PATH[=MODULE]", "SCRIPT"}
_SIGNALS = "USR1 USR2 TERM INT HUP QUIT ALRM XCPU"


def bash_completion(parser: argparse.ArgumentParser) -> str:
    commands = [n for n, _, _ in subparsers(parser)]
    file_opts, signal_opts, value_opts = set(), set(), set()
    per_command = []
    for name, _, p in subparsers(parser):
        if name == "ctl":
            p = _ctl_parser() or p
        actions = options_of(p)
        if name == "ctl":  # and the options of its commands (ctl PID profile --seconds ...)
            actions += [a for _, _, sp in subparsers(p) for a in options_of(sp)]
        opts = []
        for a in actions:
            if a.option_strings[0] in opts:
                continue
            opts += a.option_strings
            if a.nargs in (0, "?"):
                continue
            bucket = (signal_opts if a.option_strings == ["--signal"] else
                      file_opts if (a.metavar or "") in _FILE_METAVARS else value_opts)
            bucket.update(a.option_strings)
        opts.append("--help")
        per_command.append(f'        {name}) opts="{" ".join(opts)}" ;;')
    value_opts -= file_opts | signal_opts
    return f"""# bash completion for stasis (generated from its parser by stasis.cli_help: do not edit)
_stasis() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="" cmd="${{COMP_WORDS[1]}}" opts=""
    [ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{' '.join(commands)} --help" -- "$cur"))
        return 0
    fi
    case "$prev" in
        {'|'.join(sorted(signal_opts))}) COMPREPLY=($(compgen -W "{_SIGNALS}" -- "$cur")); return 0 ;;
        {'|'.join(sorted(file_opts))}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
        {'|'.join(sorted(value_opts))}) return 0 ;;
    esac
    case "$cmd" in
{chr(10).join(per_command)}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [ "$cmd" = help ]; then
        COMPREPLY=($(compgen -W "{' '.join(c for c in commands if c != 'help')} {' '.join(TOPICS)}" -- "$cur"))
    elif [ "$cmd" = suspend ] || [ "$cmd" = restart ] || [ "$cmd" = ctl ]; then
        COMPREPLY=($(compgen -W "$(ps -o pid= -u "$(id -u)" 2>/dev/null)" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}}
complete -o filenames -F _stasis stasis
"""


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: List[str]) -> int:
    from .cli import _parser
    from . import __version__
    g = argparse.ArgumentParser(prog="python -m stasis.cli_help", description="write the CLI's documentation")
    g.add_argument("--man", metavar="FILE", help="write the man page stasis(1) to FILE")
    g.add_argument("--completion", metavar="FILE", help="write the bash completion script to FILE")
    g.add_argument("--readme", action="store_true", help="print README.md's Command line block")
    args = g.parse_args(argv)
    parser = _parser()
    if args.man:
        _write(args.man, man_page(parser, __version__))
    if args.completion:
        _write(args.completion, bash_completion(parser))
    if args.readme:
        sys.stdout.write(readme_block(parser))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
