"""numpy: arrays of every dtype and layout, views that keep their base, memory-mapped arrays
mapped again from their file, numpy scalars, ufuncs, random generators, and numpy.random's global
generator (module state). Registered once the program has imported numpy
(handlers.MODULE_HANDLERS): nothing here imports numpy otherwise.

Memory. An array that owns its memory is saved as a pickle.PickleBuffer over that memory: the
engine writes it straight from the array (the Buffer op: no Python copy; a large one in segments
stored as they are or as byte planes with the planes that compress well compressed, FORMAT.md
"Buffer segments") and loads it into one bytearray, over which the array is built again without a second
copy (so a restored array's `.base` is that bytearray, and OWNDATA is False; everything else —
dtype, shape, strides, flags, contents — is the same). A view is saved as (its base, byte offset,
dtype, shape, strides): it comes back as a view of the restored base, so writes through one are
seen through the other, as before. A numpy.memmap is mapped again from its file (same dtype,
offset, shape, order, mode; 'w+' is reopened 'r+' so the file is not truncated; a copy-on-write
'c' map gets its modified contents back).

Not supported (UnsupportedObjectError naming the path): structured dtypes with object fields,
arrays over an mmap.mmap that is not a numpy.memmap's, numpy.nditer and flat iterators.
"""
from __future__ import annotations

import importlib
import sys
from _pickle import PickleBuffer  # pickle.PickleBuffer itself; pickle.py would cost every start-up
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import CorruptSnapshotError, SnapshotIOError

# The kinds of saved array (first item of the state).
# The memory comes first, right after the kind: the Buffer op builds only a bytearray, so the loader
# runs it before the payload is verified (FORMAT.md), whereas a dtype (a class call) waits for that:
# written later, it does not make the reader hold (or decompress twice) the array's bytes meanwhile.
_OWNED_C = 0   # (0, buffer, dtype, shape): owns its memory, C-contiguous, writeable (the common case)
_OWNED = 1     # (1, buffer, dtype, shape, strides, writeable): owns its memory, any dense layout
_VIEW = 2      # (2, base, offset, dtype, shape, strides, writeable): a view of another object's memory
_OBJECTS = 3   # (3, dtype, shape, strides, items, writeable): object dtype, items through the heap engine
_SUBCLASS = 4  # (4, class, state of one of the kinds above, __dict__ or None, mmap attribute names)
_MEMMAP = 5    # (5, class, filename, dtype, mode, offset, shape, order, contents or None)
_MASKED = 6    # (6,): numpy.ma.masked, the singleton

np: Any = None  # numpy, once registered
_words: Dict[Any, Any] = {}  # dtype -> the unsigned dtype its buffer is written as (False: itself)


def _word(dtype: Any) -> Any:
    """How an array of `dtype` hands its memory to the Buffer op: False when its own buffer
    export has the item size as width (1, 2, 4, 8-byte numbers), else an unsigned integer dtype
    to view it as (complex: its parts; datetimes, strings and records: the widest word that
    divides the item), so that byte planes line up with numbers."""
    w = _words.get(dtype)
    if w is None:
        size = dtype.itemsize
        if size in (1, 2, 4, 8) and dtype.kind in "biuf":
            w = False
        else:
            width = size // 2 if dtype.kind == "c" else 4 if dtype.kind == "U" else size
            w = next(np.dtype(f"u{n}") for n in (8, 4, 2, 1) if width % n == 0 and size % n == 0)
        _words[dtype] = w
    return w


def _buffer(c: Any) -> Any:
    """The memory of C-contiguous array `c`, for the Buffer op (no copy)."""
    if c.nbytes == 0:
        return bytearray()
    w = _word(c.dtype)
    return PickleBuffer(c if w is False else c.reshape(-1).view(w))


def _address(a: Any) -> int:
    return a.__array_interface__["data"][0]


def _span(a: Any) -> Tuple[int, int]:
    """(lowest, highest + 1) byte address that array `a` can touch."""
    lo = hi = _address(a)
    if a.size:
        for n, s in zip(a.shape, a.strides):
            if s < 0:
                lo += (n - 1) * s
            else:
                hi += (n - 1) * s
        hi += a.itemsize
    return lo, hi


def _dense_order(a: Any) -> Optional[Tuple[int, ...]]:
    """The axis order in which `a` is C-contiguous (strides descending), or None if it has gaps."""
    order = tuple(sorted(range(a.ndim), key=lambda i: -abs(a.strides[i])))
    return order if a.transpose(order).flags.c_contiguous and min(a.strides, default=0) >= 0 else None


# ---- saving ----------------------------------------------------------------------------------


def _save_array(a: Any) -> Tuple:
    cls = type(a)
    if cls is np.ndarray:
        if a.base is None:  # the common case first, without calls: an owner of plain numbers
            flags = a.flags
            if flags.c_contiguous and flags.writeable and a.size and _words.get(a.dtype) is False:
                return (_OWNED_C, PickleBuffer(a), a.dtype, a.shape)
        return _save_plain(a)
    if cls.__name__ == "MaskedConstant" and a is getattr(sys.modules.get("numpy.ma"), "masked", None):
        return (_MASKED,)
    if isinstance(a, np.memmap) and a.base is not None and getattr(a, "_mmap", None) is a.base:
        return _save_memmap(a)
    state = _save_plain(a)
    attrs = getattr(a, "__dict__", None)
    mmap_names: Tuple[str, ...] = ()
    if attrs:
        import mmap
        mmap_names = tuple(k for k, v in attrs.items() if isinstance(v, mmap.mmap))
        attrs = {k: v for k, v in attrs.items() if k not in mmap_names}
    return (_SUBCLASS, cls, state, attrs or None, mmap_names)


def _save_plain(a: Any) -> Tuple:
    """The state of array `a` ignoring its class."""
    base = a.base
    if base is None:
        dtype = a.dtype
        if dtype.hasobject:
            return _save_objects(a)
        flags = a.flags
        if flags.c_contiguous and flags.writeable and a.size:
            return (_OWNED_C, _buffer(a), dtype, a.shape)
        if not a.size:
            return (_OWNED, bytearray(), dtype, a.shape, a.strides, flags.writeable)
        order = _dense_order(a)
        if order is None:  # an owner with gaps (not made by numpy itself): kept as a C copy
            return (_OWNED_C, _buffer(np.ascontiguousarray(a)), dtype, a.shape)
        return (_OWNED, _buffer(a.transpose(order)), dtype, a.shape, a.strides, flags.writeable)
    return _save_view(a, base)


def _save_objects(a: Any) -> Tuple:
    if a.dtype != np.dtype(object):
        raise TypeError(f"a numpy array of the structured dtype {a.dtype} holds Python objects in "
                        "its fields; only dtype=object arrays of objects are supported")
    order = _dense_order(a)
    if order is None:
        a = a.copy()
        order = tuple(range(a.ndim))
    items = a.transpose(order).ravel().tolist() if a.ndim else [a[()]]
    return (_OBJECTS, a.dtype, a.shape, a.strides, items, a.flags.writeable)


def _save_view(a: Any, base: Any) -> Tuple:
    import mmap
    if isinstance(base, _Interface):  # a restored view of an object array: view its array
        base = base.base
    if isinstance(base, np.ndarray):
        # numpy points a view at the array that owns the memory, or at the first object of
        # another type: a base with gaps (a view itself) is followed down to what it views.
        while isinstance(base, np.ndarray) and base.base is not None and _dense_order(base) is None:
            base = base.base
    if isinstance(base, np.ndarray):
        start = _span(base)[0]
    elif isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap):
        raise TypeError("it views an mmap.mmap, which cannot be mapped again from a snapshot; "
                        "map files with numpy.memmap (re-opened from its file on resume)")
    else:
        try:
            start = _address(np.frombuffer(base, np.uint8))
        except (TypeError, ValueError) as e:
            raise TypeError(f"it views a {type(base).__module__}.{type(base).__qualname__} whose "
                            f"memory numpy cannot address as one buffer ({e})") from None
    return (_VIEW, base, _address(a) - start, a.dtype, a.shape, a.strides, a.flags.writeable)


def _save_memmap(a: Any) -> Tuple:
    """A numpy.memmap that maps its file: mapped again from it. The file keeps what was written
    through a shared map ('r+', 'w+': flushed now); a copy-on-write map ('c') keeps its contents."""
    mode = a.mode
    if mode in ("r+", "w+"):
        a.flush()
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    contents = None
    if mode == "c":
        contents = _buffer(a if order == "C" else a.T)
    return (_MEMMAP, type(a), a.filename, a.dtype, mode, a.offset, a.shape, order, contents)


# ---- loading -----------------------------------------------------------------------------------


def _load_array(state: Tuple) -> Any:
    try:
        kind = state[0]
        if kind == _OWNED_C:
            return np.ndarray(state[3], state[2], state[1])
        if kind == _SUBCLASS:
            return _load_subclass(state)
        if kind == _MEMMAP:
            return _load_memmap(state)
        if kind == _MASKED:
            import numpy.ma
            return numpy.ma.masked
        return _LOADERS[kind](np.ndarray, *state[1:])
    except (TypeError, ValueError, IndexError, KeyError) as e:
        raise CorruptSnapshotError(f"a numpy array of the snapshot cannot be rebuilt: {e}") from None


def _load_owned_c(cls: Any, buffer: Any, dtype: Any, shape: Tuple) -> Any:
    return np.ndarray.__new__(cls, shape, dtype, buffer)


def _load_owned(cls: Any, buffer: Any, dtype: Any, shape: Tuple, strides: Tuple, writeable: bool) -> Any:
    if isinstance(buffer, bytes):  # a read-only array: its memory was exported read-only
        buffer = bytearray(buffer)
    a = np.ndarray.__new__(cls, shape, dtype, buffer, 0, strides)
    if not writeable:
        a.flags.writeable = False
    return a


def _load_objects(cls: Any, dtype: Any, shape: Tuple, strides: Tuple, items: list, writeable: bool) -> Any:
    size = 1
    for n in shape:
        size *= n
    if len(items) != size:
        raise ValueError(f"{len(items)} items for an array of shape {shape}")
    flat = np.empty(size, dtype=object)
    for i, item in enumerate(items):
        flat[i] = item
    order = sorted(range(len(shape)), key=lambda i: -abs(strides[i]))
    a = flat.reshape([shape[i] for i in order]).transpose(_inverse(order))
    if cls is not np.ndarray:
        a = a.view(cls)
    if not writeable:
        a.flags.writeable = False
    return a


def _inverse(order: list) -> list:
    out = [0] * len(order)
    for i, axis in enumerate(order):
        out[axis] = i
    return out


def _load_view(cls: Any, base: Any, offset: int, dtype: Any, shape: Tuple, strides: Tuple,
               writeable: bool) -> Any:
    if isinstance(base, np.ndarray) and base.dtype.hasobject:
        a = _object_view(base, offset, dtype, shape, strides)
        if cls is not np.ndarray:
            a = a.view(cls)
    else:
        memory = base
        if isinstance(base, np.ndarray) and not (base.flags.c_contiguous or base.flags.f_contiguous):
            memory = base.transpose(_dense_order(base) or range(base.ndim))  # dense: a view, C-contiguous
        a = np.ndarray.__new__(cls, shape, dtype, memory, offset, strides)
    if not writeable and a.flags.writeable:
        a.flags.writeable = False
    return a


class _Interface:
    """An object exposing raw array memory (numpy's array interface), as numpy's as_strided does."""

    def __init__(self, interface: dict, base: Any) -> None:
        self.__array_interface__ = interface
        self.base = base


def _object_view(base: Any, offset: int, dtype: Any, shape: Tuple, strides: Tuple) -> Any:
    """A view of an object array (numpy exports no buffer for those): over its memory through the
    array interface, after checking that every item it reaches lies inside the base."""
    lo, hi = _span(base)
    first = last = offset  # the bytes the view reaches, from the base's lowest address
    for n, s in zip(shape, strides):
        if s < 0:
            first += (n - 1) * s
        else:
            last += (n - 1) * s
    if 0 not in shape and (first < 0 or last + dtype.itemsize > hi - lo):
        raise ValueError(f"a view at offset {offset} with shape {shape} and strides {strides} "
                         f"reaches outside its base of {hi - lo} bytes")
    interface = {"data": (lo + offset, not base.flags.writeable), "shape": tuple(shape),
                 "strides": tuple(strides), "typestr": dtype.str, "version": 3}
    return np.asarray(_Interface(interface, base))


def _load_subclass(state: Tuple) -> Any:
    _, cls, inner, attrs, mmap_names = state
    if not (isinstance(cls, type) and issubclass(cls, np.ndarray)):
        raise TypeError(f"{cls!r} is not a subclass of numpy.ndarray")
    kind = inner[0]
    if kind == _OWNED_C:
        a = _load_owned_c(cls, *inner[1:])
    else:
        a = _LOADERS[kind](cls, *inner[1:])
    if attrs:
        vars(a).update(attrs)
    for name in mmap_names:  # a view of a numpy.memmap: the map of the memmap it views
        setattr(a, name, _mmap_below(a))
    return a


def _mmap_below(a: Any) -> Any:
    import mmap
    b = a.base
    while b is not None and not isinstance(b, mmap.mmap):
        b = getattr(b, "base", None)
    return b


def _load_memmap(state: Tuple) -> Any:
    _, cls, filename, dtype, mode, offset, shape, order, contents = state
    reopen = "r+" if mode == "w+" else mode
    try:
        a = cls(filename, dtype=dtype, mode=reopen, offset=offset, shape=shape, order=order)
    except FileNotFoundError:
        raise SnapshotIOError(f"cannot map {filename!r} again (numpy.memmap saved in the snapshot): "
                              "it no longer exists") from None
    except OSError as e:
        raise SnapshotIOError(f"cannot map {filename!r} again (numpy.memmap saved in the snapshot): "
                              f"{e.strerror or e}") from None
    except ValueError as e:  # numpy: the file is now too small for the saved shape
        raise SnapshotIOError(f"cannot map {filename!r} again (numpy.memmap saved in the snapshot): "
                              f"{e}") from None
    a.mode = mode
    if contents is not None:
        saved = np.ndarray(a.shape if order == "C" else a.shape[::-1], a.dtype, contents)
        (a if order == "C" else a.T)[...] = saved
    return a


_LOADERS: Dict[int, Callable] = {_OWNED_C: _load_owned_c, _OWNED: _load_owned, _VIEW: _load_view,
                                 _OBJECTS: _load_objects}


# ---- scalars, ufuncs, random generators ---------------------------------------------------------


def _save_scalar(x: Any) -> Tuple:
    return (x.dtype, x.tobytes())


def _load_scalar(state: Tuple) -> Any:
    from numpy.core.multiarray import scalar
    dtype, data = state
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CorruptSnapshotError("a numpy scalar of the snapshot has a wrong dtype or size")
    return scalar(dtype, data)


def _save_dtype(dt: Any) -> Tuple:
    """numpy's own pickling of a dtype (its constructor's arguments and its state: byte order,
    fields, record class, alignment...), run by this handler's load (loading calls no class)."""
    _, args, state = dt.__reduce__()
    return (args, state)


def _load_dtype(state: Tuple) -> Any:
    args, dt_state = state
    dt = np.dtype(*args)
    if dt_state is not None:
        dt.__setstate__(dt_state)
    return dt


def _save_ufunc(f: Any) -> Tuple[str, str]:
    name = f.__name__
    if getattr(np, name, None) is f:
        return ("numpy", name)
    for module_name, module in list(sys.modules.items()):
        if getattr(module, name, None) is f:
            return (module_name, name)
    raise TypeError(f"the ufunc {name!r} is not an attribute of any imported module")


def _load_ufunc(state: Tuple[str, str]) -> Any:
    module, name = state
    f = getattr(importlib.import_module(module), name, None)
    if not isinstance(f, np.ufunc):
        raise CorruptSnapshotError(f"{module}.{name} is not a numpy ufunc")
    return f


def _save_bit_generator(bg: Any) -> Tuple:
    return (type(bg), getattr(bg, "_seed_seq", None), bg.state)


def _load_bit_generator(state: Tuple) -> Any:
    cls, seed_seq, bg_state = state
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise CorruptSnapshotError(f"{cls!r} is not a numpy bit generator")
    bg = cls(seed_seq)  # the same seed sequence (spawn() goes on from it), then the saved state
    bg.state = bg_state
    return bg


def _save_seed_sequence(ss: Any) -> Tuple:
    if not isinstance(ss, np.random.SeedSequence):
        return ()  # SeedlessSeedSequence (legacy seeding): no state
    return (ss.entropy, ss.spawn_key, ss.pool_size, ss.n_children_spawned)


def _load_seed_sequence(state: Tuple) -> Any:
    if not state:
        from numpy.random.bit_generator import SeedlessSeedSequence
        return SeedlessSeedSequence()
    entropy, spawn_key, pool_size, spawned = state
    return np.random.SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size,
                                  n_children_spawned=spawned)


def _save_generator(g: Any) -> Tuple:
    return (g.bit_generator,)


def _load_generator(state: Tuple) -> Any:
    return np.random.Generator(state[0])


def _save_random_state(rs: Any) -> Tuple:
    if rs is np.random.mtrand._rand:
        return ()  # numpy.random's own generator: restored as module state (numpy.random.mtrand)
    return (rs._bit_generator, rs.get_state(legacy=False))


def _load_random_state(state: Tuple) -> Any:
    if not state:
        return np.random.mtrand._rand
    rs = np.random.RandomState(state[0])
    rs.set_state(state[1])
    return rs


def _save_mtrand_module(module: Any) -> Any:
    return module._rand.get_state(legacy=False)


def _load_mtrand_module(module: Any, state: Any) -> None:
    module._rand.set_state(state)


def numpy_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """Registered once the program has imported numpy."""
    global np
    import numpy
    from numpy.random import bit_generator
    np = numpy
    return {
        numpy.ndarray: ("stasis.numpy.ndarray", _save_array, _load_array),
        numpy.dtype: ("stasis.numpy.dtype", _save_dtype, _load_dtype),
        numpy.generic: ("stasis.numpy.scalar", _save_scalar, _load_scalar),
        numpy.ufunc: ("stasis.numpy.ufunc", _save_ufunc, _load_ufunc),
        numpy.random.BitGenerator: ("stasis.numpy.bit_generator", _save_bit_generator, _load_bit_generator),
        numpy.random.Generator: ("stasis.numpy.generator", _save_generator, _load_generator),
        numpy.random.SeedSequence: ("stasis.numpy.seed_sequence", _save_seed_sequence, _load_seed_sequence),
        bit_generator.SeedlessSeedSequence: ("stasis.numpy.seed_sequence", _save_seed_sequence,
                                             _load_seed_sequence),
        numpy.random.RandomState: ("stasis.numpy.random_state", _save_random_state, _load_random_state),
    }


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    """numpy.random's global generator (numpy.random.seed/rand/...), kept once numpy is imported."""
    return {"numpy.random.mtrand": (_save_mtrand_module, _load_mtrand_module)}
