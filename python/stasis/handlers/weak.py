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


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    return {
        weakref.WeakValueDictionary: ("stasis.weakvaluedict", _save_wvd, weakref.WeakValueDictionary),
        weakref.WeakKeyDictionary: ("stasis.weakkeydict", _save_wkd, weakref.WeakKeyDictionary),
        weakref.WeakSet: ("stasis.weakset", _save_weakset, weakref.WeakSet),
    }
