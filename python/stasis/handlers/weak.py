"""Weak containers: their referents are written strongly and die after loading unless something
else holds them."""
from __future__ import annotations

import weakref
from typing import Callable, Dict, Tuple

def _save_wvd(d: weakref.WeakValueDictionary) -> dict:
    return dict(d.items())


def _save_wkd(d: weakref.WeakKeyDictionary) -> list:
    return list(d.items())


def _save_weakset(s: weakref.WeakSet) -> list:
    return list(s)


# The containers' constructors call their argument's items() or iterate it: only the exact types
# the save functions return are given to them.
def _load_wvd(items: dict) -> weakref.WeakValueDictionary:
    if type(items) is not dict:
        raise TypeError("a WeakValueDictionary's state is not a dict")
    return weakref.WeakValueDictionary(items)


def _load_wkd(items: list) -> weakref.WeakKeyDictionary:
    if type(items) is not list or not all(type(i) is tuple and len(i) == 2 for i in items):
        raise TypeError("a WeakKeyDictionary's state is not a list of (key, value)")
    return weakref.WeakKeyDictionary(items)


def _load_weakset(items: list) -> weakref.WeakSet:
    if type(items) is not list:
        raise TypeError("a WeakSet's state is not a list")
    return weakref.WeakSet(items)


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    return {
        weakref.WeakValueDictionary: ("stasis.weakvaluedict", _save_wvd, _load_wvd),
        weakref.WeakKeyDictionary: ("stasis.weakkeydict", _save_wkd, _load_wkd),
        weakref.WeakSet: ("stasis.weakset", _save_weakset, _load_weakset),
    }
