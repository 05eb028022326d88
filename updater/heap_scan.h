// updater/heap_scan.h — one pass over every GC-tracked object, answering all the questions an
// update asks of the heap at once: which function objects run a given code, which generators and
// coroutines are parked in it, which instances belong to given classes. Also lists the frames on
// every thread's stack that run a given code. Never per-function (no gc.get_referrers).
// Counterpart: updater/function_swap.cpp acts on what this finds. Invariant: GIL held throughout.
#pragma once

#include <Python.h>

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/ref.h"

namespace stasis::updater {

// Borrowed-pointer identity sets built from Python sets/tuples (codes and types hash by identity here).
using CodeSet = std::unordered_set<PyObject*>;
CodeSet code_set(PyObject* iterable);

struct HeapMatches {
  std::vector<Ref> functions;                         // func_code in the code set
  std::vector<Ref> generators;                        // created or suspended, gi_code in the set
  std::vector<std::vector<Ref>> instances;            // per class index: instances of it or a subclass
};

// One walk of the GC lists. `classes` may be empty.
HeapMatches scan_heap(const CodeSet& codes, const std::vector<PyTypeObject*>& classes);

// Where a code in `codes` is in use: a frame on some thread's stack, or a generator/coroutine that
// was created or is suspended in it (these are on no thread's stack; ANCHORS.md "a pitfall ...").
struct ActiveUse {
  std::string kind;          // "thread" or "generator"/"coroutine"/"async generator"
  unsigned long thread_id;   // for "thread": PyThreadState::thread_id, else 0
  Ref code;
  int line;                  // current or suspension line, -1 if not started
};
std::vector<ActiveUse> active_uses(const CodeSet& codes, const std::vector<Ref>& generators);

}  // namespace stasis::updater
