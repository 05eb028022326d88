"""pandas objects (registered once the program has imported pandas; nothing here imports it).

pandas pickles its frames through reconstructors of its own: a BlockManager is called with its
blocks and axes, a block is made by `_unpickle_block(values, placement, ndim)`, an index by
`_new_Index(cls, d)` / `_new_DatetimeIndex(cls, d)`, Categorical and the datetime arrays by
Cython's `__pyx_unpickle_NDArrayBacked` and `__setstate__`, Timestamp and Timedelta by functions of
their own. None of those is on the list of what loading may call (core/allowlist.h), so each kind
is saved here as the values it is made of — numpy arrays, other pandas objects, built-in values —
and its load function checks that it got exactly those (a pandas class, arrays, a slice...)
before it calls pandas' own reconstructor. DataFrame, Series and the dtypes need nothing: they
reduce to `cls.__new__(cls)` and a state of the objects above.

pytz time zones (pandas' default) likewise: `pytz.timezone(name)` and the zone's localized
variant by its offsets (pytz._p), for a zone name pytz knows.
"""
from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, Tuple

pd: Any = None


def _pandas_class(cls: Any, base: Any, what: str) -> Any:
    if not isinstance(cls, type) or not issubclass(cls, base) or not cls.__module__.startswith("pandas."):
        raise TypeError(f"{what}: {cls!r} is not a pandas {base.__name__} class")
    return cls


# --- the block manager and its blocks --------------------------------------------------------


def _save_block_manager(m: Any) -> Tuple:
    return (tuple(m.blocks), list(m.axes))


def _load_block_manager(state: Any) -> Any:
    from pandas.core.internals.blocks import Block
    from pandas.core.internals.managers import BlockManager
    blocks, axes = state
    if type(blocks) is not tuple or not all(isinstance(b, Block) for b in blocks):
        raise TypeError("a BlockManager's blocks are not pandas blocks")
    if type(axes) is not list or not all(isinstance(a, pd.Index) for a in axes):
        raise TypeError("a BlockManager's axes are not pandas indexes")
    return BlockManager(blocks, axes)


def _save_block(b: Any) -> Tuple:
    return (b.values, b.mgr_locs.indexer, b.ndim)


def _placement_indexer(indexer: Any, what: str) -> Any:
    import numpy as np
    if not isinstance(indexer, (slice, np.ndarray)):
        raise TypeError(f"{what} is neither a slice nor an array")
    return indexer


def _load_block(state: Any) -> Any:
    import numpy as np
    from pandas._libs.internals import _unpickle_block
    from pandas.api.extensions import ExtensionArray
    values, placement, ndim = state
    if not isinstance(values, (np.ndarray, ExtensionArray)) or type(values).__module__.split(".")[0] not in (
            "numpy", "pandas"):
        raise TypeError("a pandas block's values are neither a numpy array nor a pandas array")
    _placement_indexer(placement, "a pandas block's placement")
    if type(ndim) is not int or ndim not in (1, 2):
        raise TypeError("a pandas block's dimension is malformed")
    return _unpickle_block(values, placement, ndim)


def _save_placement(p: Any) -> Any:
    return p.indexer


def _load_placement(indexer: Any) -> Any:
    from pandas._libs.internals import BlockPlacement
    return BlockPlacement(_placement_indexer(indexer, "a pandas BlockPlacement's indexer"))


# --- arrays: Categorical, DatetimeArray, TimedeltaArray, PeriodArray ---------------------------


def _save_backed(a: Any) -> Tuple:
    return (type(a), a.__reduce__()[2])


def _load_backed(state: Any) -> Any:
    from pandas._libs.arrays import NDArrayBacked
    cls, inner = state
    cls = _pandas_class(cls, NDArrayBacked, "a pandas array")
    if type(inner) is not tuple:
        raise TypeError("a pandas array's state is not a tuple")
    a = NDArrayBacked.__new__(cls)
    a.__setstate__(inner)
    return a


# --- indexes -------------------------------------------------------------------------------------


def _save_index(idx: Any) -> Tuple:
    cls, d = idx.__reduce__()[1]
    return (cls, d)


def _load_index(state: Any) -> Any:
    from pandas.core.indexes.base import _new_Index
    from pandas.core.indexes.datetimes import _new_DatetimeIndex
    cls, d = state
    cls = _pandas_class(cls, pd.Index, "a pandas index")
    if type(d) is not dict or not all(type(k) is str for k in d):
        raise TypeError("a pandas index's fields are not a dict of names")
    return (_new_DatetimeIndex if issubclass(cls, pd.DatetimeIndex) else _new_Index)(cls, d)


# --- scalars -------------------------------------------------------------------------------------


def _reduce_args(x: Any) -> Tuple:
    """The arguments pandas pickles a Timestamp or Timedelta with (its own function's)."""
    return x.__reduce__()[1]


def _load_timestamp(state: Any) -> Any:
    from pandas._libs.tslibs.timestamps import _unpickle_timestamp
    value, freq, tz, reso = state
    if type(value) is not int or type(reso) is not int or (tz is not None and not isinstance(tz, datetime.tzinfo)):
        raise TypeError("a pandas Timestamp's state is malformed")
    if freq is not None and not isinstance(freq, pd.DateOffset):
        raise TypeError("a pandas Timestamp's freq is not a DateOffset")
    return _unpickle_timestamp(value, freq, tz, reso)


def _load_timedelta(state: Any) -> Any:
    from pandas._libs.tslibs.timedeltas import _timedelta_unpickle
    value, reso = state
    if type(value) is not int or type(reso) is not int:
        raise TypeError("a pandas Timedelta's state is malformed")
    return _timedelta_unpickle(value, reso)


def _save_period_dtype(d: Any) -> str:
    return d.freq.freqstr


def _load_period_dtype(freq: Any) -> Any:
    if type(freq) is not str:
        raise TypeError("a PeriodDtype's frequency is not a str")
    return pd.PeriodDtype(freq)


_PLAIN = (int, float, bool, str, type(None))


def _save_offset(o: Any) -> Tuple:
    r = o.__reduce_ex__(5)
    if r[0] is not type(o):
        raise TypeError(f"{type(o).__name__} reduces to {r[0]!r}, not to its class")
    return (type(o), r[1], r[2] if len(r) > 2 else None)


def _load_offset(state: Any) -> Any:
    from pandas._libs.tslibs.offsets import BaseOffset
    cls, args, inner = state
    cls = _pandas_class(cls, BaseOffset, "a pandas date offset")
    if type(args) is not tuple or not all(type(a) in _PLAIN for a in args):
        raise TypeError("a pandas date offset's arguments are not plain values")
    if inner is not None and (type(inner) is not dict or not all(
            type(k) is str and type(v) in _PLAIN for k, v in inner.items())):
        raise TypeError("a pandas date offset's state is not a dict of plain values")
    o = cls(*args)
    if inner:
        o.__setstate__(inner)
    return o


def pandas_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """Registered once the program has imported pandas."""
    global pd
    import pandas
    from pandas._libs.arrays import NDArrayBacked
    from pandas._libs.internals import BlockPlacement
    from pandas._libs.tslibs import offsets
    from pandas.core.internals.blocks import Block
    from pandas.core.internals.managers import BlockManager
    pd = pandas
    return {
        BlockManager: ("stasis.pandas.block_manager", _save_block_manager, _load_block_manager),
        Block: ("stasis.pandas.block", _save_block, _load_block),
        BlockPlacement: ("stasis.pandas.block_placement", _save_placement, _load_placement),
        NDArrayBacked: ("stasis.pandas.array", _save_backed, _load_backed),
        pandas.Index: ("stasis.pandas.index", _save_index, _load_index),
        pandas.Timestamp: ("stasis.pandas.timestamp", _reduce_args, _load_timestamp),
        pandas.Timedelta: ("stasis.pandas.timedelta", _reduce_args, _load_timedelta),
        pandas.PeriodDtype: ("stasis.pandas.period_dtype", _save_period_dtype, _load_period_dtype),
        offsets.BaseOffset: ("stasis.pandas.offset", _save_offset, _load_offset),
    }


# --- pytz ----------------------------------------------------------------------------------------


def _save_pytz(tz: Any) -> Tuple:
    """(zone name, None) for UTC and static zones, (zone name, (utcoffset, dst, tzname)) for one of
    a DST zone's localized variants, as pytz pickles them (pytz._p)."""
    import pytz
    if tz is pytz.utc:
        return ("UTC", None)
    args = tz.__reduce__()[1]
    return (tz.zone, tuple(args[1:]) if len(args) == 4 else None)


def _load_pytz(state: Any) -> Any:
    import pytz
    zone, variant = state
    if type(zone) is not str:
        raise TypeError("a pytz zone name is not a str")
    if zone == "UTC" and variant is None:
        return pytz.utc
    if zone not in pytz.all_timezones_set:
        raise ValueError(f"pytz does not know the time zone {zone!r} here")
    if variant is None:
        return pytz.timezone(zone)
    utcoffset, dst, tzname = variant
    if type(utcoffset) is not int or type(dst) is not int or type(tzname) is not str:
        raise TypeError("a pytz zone's variant is malformed")
    return pytz._p(zone, utcoffset, dst, tzname)


def pytz_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """Registered once the program has imported pytz (pandas does)."""
    import pytz
    return {pytz.BaseTzInfo: ("stasis.pytz.zone", _save_pytz, _load_pytz),
            type(pytz.utc): ("stasis.pytz.zone", _save_pytz, _load_pytz)}
