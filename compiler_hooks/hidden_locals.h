// compiler_hooks/hidden_locals.h — keeps the rewriter's hidden temporaries out of frame.f_locals.
// Counterpart: compiler_hooks/rewriter.py (names them ".t0", ".r", ...: a "." then a non-digit;
// CPython's own ".0" of a comprehension stays visible, as in plain CPython).
#pragma once

#include <Python.h>

namespace stasis::compiler_hooks {

// Replaces the `f_locals` getter of frame objects, once per process: for a frame of rewritten
// code that holds bound hidden temporaries (it is in the middle of a lowered statement), the
// getter returns a copy of the frame's locals dict without them. Other frames get the frame's
// own dict, as before. Returns false with a Python error set if the getter is not the expected
// descriptor.
bool hide_temporaries_from_f_locals();

}  // namespace stasis::compiler_hooks
