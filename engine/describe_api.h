// engine/describe_api.h — `stasis inspect` of a program snapshot: a description of the objects a
// payload holds (format/describe.h), made without building any of them, handed to Python as an
// opaque view and read node by node as plain values (python/stasis/program/inspect_view.py).
#pragma once
#include <Python.h>

#include "core/ref.h"
#include "format/describe.h"

namespace stasis::engine {
// The view object (a capsule) owning `d`.
Ref make_view(format::Description&& d);
// view_roots(view) -> [node ids]
PyObject* view_roots(PyObject*, PyObject* view);
// view_node(view, id, limit) -> {"kind", "type": (module, qualname), "len", "truncated", "value",
// "items": [ids] (at most `limit`), "pairs": [ids], "refs": [4 ids or None]}
PyObject* view_node(PyObject*, PyObject* args);
// view_held(view, id, budget) -> (bytes, objects, complete): estimated size of what `id` holds
PyObject* view_held(PyObject*, PyObject* args);
// view_heap(view) -> [(module, qualname, count, bytes)], biggest first
PyObject* view_heap(PyObject*, PyObject* view);
}  // namespace stasis::engine
