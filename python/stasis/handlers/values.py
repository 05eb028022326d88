"""Values of library types made again from their parameters: struct.Struct (its format),
functools.lru_cache wrappers (around the same function), re.Match (the same search again), json's
C scanner (its settings), the decimal module's context."""
from __future__ import annotations

import _functools
import _struct
import functools
import threading
from typing import Any, Callable, Dict, Tuple

# ---- struct.Struct: made again from its format -------------------------------------------------


def _save_struct(st: Any) -> str:
    return st.format


def _load_struct(fmt: str) -> Any:
    if type(fmt) not in (str, bytes):
        raise TypeError("a Struct's format is not a str")
    import struct
    return struct.Struct(fmt)


# ---- functools.lru_cache ---------------------------------------------------------------------
# Under `stasis run`, lru_cache makes wrappers of functools' pure-Python implementation
# (pure_python_lru_cache): a closure whose cache, LRU links and hit/miss counts are ordinary heap,
# kept by a snapshot like any closure. The C accelerator's cache cannot be read back in LRU order
# nor filled again without calling the function, so a C wrapper (made before the program started,
# or outside `stasis run`) is made again around the same function with an empty cache.


def pure_python_lru_cache() -> None:
    """functools.lru_cache/cache make pure-Python wrappers from now on: functools' own Python
    definition of _lru_cache_wrapper (which the C one replaces at import) is compiled again from
    functools.py into the functools module."""
    if getattr(functools._lru_cache_wrapper, "__module__", None) == "functools" and \
            isinstance(functools._lru_cache_wrapper, type(pure_python_lru_cache)):
        return
    path = functools.__file__
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError:
        return  # no source: the C wrapper stays (its cache restarts empty on resume)
    # Only the definition is compiled (every run and resume does this; parsing the whole module
    # cost more than the rest of the hand-over of handlers): from its `def` line to the next line
    # that starts a top-level statement, at its own line numbers.
    start = next((i for i, line in enumerate(lines) if line.startswith("def _lru_cache_wrapper(")), None)
    if start is None:
        return
    end = next((j for j in range(start + 1, len(lines)) if lines[j][:1] not in ("", " ", "\t", "\n", "#")),
               len(lines))
    try:
        code = compile("\n" * start + "".join(lines[start:end]), path, "exec", dont_inherit=True)
    except SyntaxError:
        return
    exec(code, vars(functools))



def _save_hashed_seq(key: Any) -> tuple:
    return tuple(key)


def _load_hashed_seq(items: tuple) -> Any:
    """A key of the pure-Python lru_cache: its hash is computed again (it caches the hash of its
    items, and objects hashed by identity hash differently in a new process)."""
    return functools._HashedSeq(items)


def _save_lru_cache(wrapper: Any) -> Tuple:
    params = wrapper.cache_parameters()
    extra = {k: v for k, v in vars(wrapper).items() if k != "__wrapped__"}
    return (wrapper.__wrapped__, params["maxsize"], params["typed"], extra)


def _load_lru_cache(state: Tuple) -> Any:
    # Checked before anything is made: lru_cache treats a callable maxsize as the function, and
    # the extra attributes are copied with dict.update (an object that is not a dict would have
    # its own keys() called).
    if type(state) is not tuple or len(state) != 4:
        raise TypeError("an lru_cache wrapper's state is not (function, maxsize, typed, attributes)")
    func, maxsize, typed, extra = state
    if not callable(func) or not (maxsize is None or type(maxsize) is int) or type(typed) is not bool \
            or type(extra) is not dict or not all(type(k) is str for k in extra):
        raise TypeError("an lru_cache wrapper's state is not (function, maxsize, typed, attributes)")
    wrapper = functools.update_wrapper(
        _functools._lru_cache_wrapper(func, maxsize, typed, functools._CacheInfo), func)
    vars(wrapper).update(extra)
    return wrapper


# ---- re.Match: made again by the same search over the same string --------------------------------


def _rematch(pattern: Any, string: Any, pos: int, endpos: int, regs: Tuple) -> Any:
    """The match of `pattern` in string[pos:endpos] whose group spans are `regs`: what match(),
    fullmatch() or search() from pos gives, or a later match of finditer()/scanner()."""
    for attempt in (pattern.match, pattern.fullmatch):
        m = attempt(string, pos, endpos)
        if m is not None and m.regs == regs:
            return m
    scanner = pattern.scanner(string, pos, endpos)
    for m in iter(scanner.search, None):
        if m.regs == regs:
            return m
        if m.start() > regs[0][0]:
            break
    return None


def _save_match(m: Any) -> Tuple:
    state = (m.re, m.string, m.pos, m.endpos, m.regs)
    if _rematch(*state) is None:
        raise TypeError("the same search cannot find it again")
    return state


def _load_match(state: Tuple) -> Any:
    m = _rematch(*state)
    if m is None:
        from ..errors import CorruptSnapshotError
        raise CorruptSnapshotError(f"a re.Match of the snapshot (pattern {state[0].pattern!r}, span "
                                   f"{state[4][0]}) is not found again in its string")
    return m


# ---- json's C scanner (json.decoder.JSONDecoder().scan_once): made again from its settings ------

_SCANNER_FIELDS = ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int", "parse_constant")


class ScannerContext:
    """What json.scanner.c_make_scanner reads from its context (a JSONDecoder, usually)."""

    def __init__(self, **settings: Any) -> None:
        vars(self).update(settings)
        self.memo: Dict[Any, Any] = {}


def _save_json_scanner(scanner: Any) -> dict:
    return {k: getattr(scanner, k) for k in _SCANNER_FIELDS}


def _load_json_scanner(settings: dict) -> Any:
    from json.scanner import c_make_scanner
    return c_make_scanner(ScannerContext(**settings))


# ---- XML parsers: refused, saying why ---------------------------------------------------------


def _refuse_xml_parser(parser: Any) -> Any:
    raise TypeError("an expat XML parser (XMLParser, XMLPullParser, iterparse) keeps the document "
                    "it is in the middle of in C, where no snapshot can read it; parse the whole "
                    "document (ElementTree.parse, or iterparse to its end) before the program is "
                    "suspended, and keep the Elements: those are captured")


def _unreachable_load(state: Any) -> Any:
    from ..errors import CorruptSnapshotError
    raise CorruptSnapshotError("an XML parser cannot be in a snapshot")


def xml_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """Registered once the program has imported xml.etree.ElementTree: its parsers are refused
    with the reason (without a handler they would be refused as objects that cannot be pickled)."""
    import pyexpat
    import xml.etree.ElementTree as ET
    return {t: ("stasis.xml_parser", _refuse_xml_parser, _unreachable_load)
            for t in (ET.XMLParser, pyexpat.XMLParserType)}


def _save_decimal_module(module: Any) -> Any:
    """The main thread's decimal context (precision, rounding, traps...): a context variable of
    that thread, read from whichever thread writes the snapshot."""
    from .. import _engine
    context = _engine.thread_context_value(threading.main_thread().ident, "decimal_context")
    return context if context is not None else module.getcontext()


def _load_decimal_module(module: Any, context: Any) -> None:
    module.setcontext(context)


# A super object answers attribute lookups through the MRO after its class: pickle's
# __reduce_ex__ of `super(B, b)` is b's own (copyreg.__newobj__(B)), so without a handler it was
# written as a new B instance — and a suspended `super().f()` (the rewriter keeps `super()` in a
# temporary) resumed calling B.f again. Its fields are read through the type's descriptors.
_SUPER_FIELDS = (super.__dict__["__thisclass__"], super.__dict__["__self__"])


def _save_super(s: super) -> Tuple[Any, Any]:
    thisclass, obj = (field.__get__(s) for field in _SUPER_FIELDS)
    return (thisclass, obj)


def _load_super(state: Any) -> super:
    thisclass, obj = state
    if not isinstance(thisclass, type):
        raise TypeError("a super object's class is not a class")
    return super(thisclass) if obj is None else super(thisclass, obj)


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import re
    return {
        super: ("stasis.super", _save_super, _load_super),
        _functools._lru_cache_wrapper: ("stasis.lru_cache", _save_lru_cache, _load_lru_cache),
        _struct.Struct: ("stasis.struct", _save_struct, _load_struct),
        re.Match: ("stasis.re_match", _save_match, _load_match),
        functools._HashedSeq: ("stasis.lru_cache_key", _save_hashed_seq, _load_hashed_seq),
    }


def json_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """json's C scanner: registered once the program has imported json."""
    from json.scanner import c_make_scanner
    if c_make_scanner is None:
        return {}
    return {c_make_scanner: ("stasis.json_scanner", _save_json_scanner, _load_json_scanner)}


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"decimal": (_save_decimal_module, _load_decimal_module)}
