// updater/function_swap.h — the atomic commit of an update: check the safe point, then swap code,
// defaults, kwdefaults (and closures, by free-variable name) on every function object running a
// replaced code, and set or delete class/module attributes — all in one GIL hold, with the cyclic
// GC paused, running no Python code in between. Either every change is made or none.
// Counterpart: updater/heap_scan.cpp finds the functions; stasis/updater/registry.py plans swaps.
#pragma once

#include <Python.h>

#include <vector>

#include "core/ref.h"
#include "updater/heap_scan.h"

namespace stasis::updater {

struct CodeSwap {
  CodeSet from;        // every code the target's functions may currently run
  Ref code;            // the code to install
  Ref defaults;        // tuple or None
  Ref kwdefaults;      // dict or None
  // Instrument wrappers: `code` has a placeholder constant at `orig_slot` that becomes, per
  // function, a hidden function running `orig_code` with that function's globals and closure.
  Ref orig_code;       // null when not a wrapper
  Py_ssize_t orig_slot = -1;
};

struct AttrChange {
  Ref owner;
  Ref name;
  Ref value;           // null: delete the attribute
};

struct CommitResult {
  std::vector<ActiveUse> busy;         // non-empty: nothing was changed
  std::vector<Ref> installed_codes;    // per-function wrapper codes made during the commit
  HeapMatches matches;                 // the functions swapped, and instances of the classes asked for
};

// `check` are the codes that must be quiescent (empty for "immediate"/check-function policies).
// `retype` (a dict {type: type}, may be null) gives every instance found for `classes` whose type
// is a key the value as its new __class__ (conversions: a pending subclass that converts the
// instance at its first attribute access), in the same atomic step as the swaps.
CommitResult commit(const CodeSet& check, const std::vector<CodeSwap>& swaps,
                    const std::vector<AttrChange>& attrs, const std::vector<PyTypeObject*>& classes,
                    PyObject* retype = nullptr);

}  // namespace stasis::updater
