"""csv readers and writers (the C objects of _csv), rebuilt around their restored file or iterator
with the same dialect; a reader keeps its line_num. DictReader and DictWriter are plain Python
objects around these. A reader is captured between records (where a program's next() leaves it);
its file, when a text file being iterated, continues at the next line (handlers/files.py)."""
from __future__ import annotations

import gc
from typing import Any, Callable, Dict, Iterator, Tuple

_DIALECT_FIELDS = ("delimiter", "quotechar", "escapechar", "doublequote", "skipinitialspace",
                   "lineterminator", "quoting", "strict")


def _dialect_state(d: Any) -> dict:
    return {k: getattr(d, k) for k in _DIALECT_FIELDS}


class LinesAlreadyRead:
    """The input of a restored csv.reader: `count` empty lines (which the reader consumes at once,
    to count its line_num up to where it was), then the lines of the real input."""

    def __init__(self, count: int, lines: Any) -> None:
        self.count = count
        self.lines = lines

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        if self.count:
            self.count -= 1
            return ""
        return next(self.lines)


def _save_reader(r: Any) -> Tuple:
    import _csv
    parts = [o for o in gc.get_referents(r) if not isinstance(o, (type, _csv.Dialect))]
    if len(parts) != 1:
        raise TypeError("it is in the middle of a record (a multi-line field), or its input cannot be found")
    lines = parts[0]
    if isinstance(lines, LinesAlreadyRead) and not lines.count:
        lines = lines.lines  # restored once already: its real input
    return (lines, _dialect_state(r.dialect), r.line_num)


def _load_reader(state: Tuple) -> Any:
    import csv
    lines, dialect, line_num = state
    r = csv.reader(LinesAlreadyRead(line_num, iter(lines)) if line_num else lines, **dialect)
    for _ in range(line_num):
        next(r)
    return r


def _save_writer(w: Any) -> Tuple:
    writes = [o for o in gc.get_referents(w) if callable(o) and not isinstance(o, type)]
    if len(writes) != 1:
        raise TypeError("its output's write method cannot be found")
    return (writes[0], _dialect_state(w.dialect))


class _Output:
    """What csv.writer needs of its output: a write method."""

    def __init__(self, write: Any) -> None:
        self.write = write


def _load_writer(state: Tuple) -> Any:
    import csv
    write, dialect = state
    return csv.writer(_Output(write), **dialect)


def _save_dialect(d: Any) -> dict:
    return _dialect_state(d)


def _load_dialect(state: dict) -> Any:
    import _csv
    return _csv.Dialect(**state)


def csv_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import _csv
    import io
    reader_type = type(_csv.reader([]))
    writer_type = type(_csv.writer(io.StringIO()))
    return {reader_type: ("stasis.csv.reader", _save_reader, _load_reader),
            writer_type: ("stasis.csv.writer", _save_writer, _load_writer),
            _csv.Dialect: ("stasis.csv.dialect", _save_dialect, _load_dialect)}
