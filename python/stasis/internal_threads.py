"""Threads of Stasis itself (quota timer, suspension coordinator, update channel): bare threads,
not threading.Thread objects, so that the program's threading.enumerate() and active_count() are
what plain python3 would show, and so that a suspension never captures or waits for them."""
from __future__ import annotations

import _thread
from typing import Any, Callable, Set

idents: Set[int] = set()


def start(fn: Callable[..., Any], *args: Any) -> None:
    def main() -> None:
        idents.add(_thread.get_ident())
        try:
            fn(*args)
        finally:
            idents.discard(_thread.get_ident())
    _thread.start_new_thread(main, ())
