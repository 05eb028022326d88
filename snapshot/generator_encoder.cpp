// snapshot/generator_encoder.cpp — suspended generators and coroutines (CPYTHON311.md §6): the
// function that made them, then their frame — local slots (cells by identity, unbound ones
// masked out), the value stack below the yield (for-loop iterators, the awaited object), the
// last instruction and the frame state. Counterpart: restore/generator_decoder.cpp, which builds a
// fresh generator of the function (no code runs) and writes that frame back.
#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {
namespace {

// The function to make the generator again from: its own function, or — when that function's
// code was replaced since the generator started (a live update, a patch of a snapshot) — a copy
// running the code the generator's frame runs, with the frame's cells as closure: a generator
// finishes on the code it started with, and its saved frame fits only that code.
Ref generator_function(PyObject* func, _PyInterpreterFrame* f) {
  PyCodeObject* running = internals::frame_code(f);
  if (PyFunction_GET_CODE(func) == reinterpret_cast<PyObject*>(running)) return Ref::borrow(func);
  Ref copy = Ref::steal(PyFunction_NewWithQualName(reinterpret_cast<PyObject*>(running),
                                                   PyFunction_GET_GLOBALS(func),
                                                   reinterpret_cast<PyFunctionObject*>(func)->func_qualname));
  if (!copy) throw Error::python();
  int nfree = internals::code_nfreevars(running);
  if (nfree) {
    Ref cells = Ref::steal(PyTuple_New(nfree));
    if (!cells) throw Error::python();
    PyObject** slots = internals::frame_localsplus(f);
    for (int i = 0, k = 0; i < internals::code_nlocalsplus(running) && k < nfree; ++i)
      if (internals::localsplus_kind(running, i) & CO_FAST_FREE)
        PyTuple_SET_ITEM(cells.get(), k++, Py_NewRef(slots[i] ? slots[i] : Py_None));
    if (PyFunction_SetClosure(copy.get(), cells.get()) < 0) throw Error::python();
  }
  return copy;
}

}  // namespace

void encode_generator(HeapEncoder& e, PyObject* obj) {
  int state = internals::generator_state(obj);
  if (state == 0) e.unsupported(obj, "it is running (a generator can only be captured while suspended)");
  _PyInterpreterFrame* f = internals::generator_frame(obj);
  PyObject* func = internals::frame_function(f);
  if (!func || !PyFunction_Check(func)) e.unsupported(obj, "its frame has no function");
  Plan plan(obj);
  plan.save(state >= 1 ? Ref::borrow(func) : generator_function(func, f), ".gi_frame.f_func")
      .atomic(format::Op::Generator, 1);
  if (state >= 1) {  // completed or cleared: no frame left; the decoder closes a fresh one
    plan.save(Py_None).save(Py_None).save(Py_None).save(Py_None);
    plan.save(Ref::steal(PyLong_FromLong(state))).op(format::Op::GeneratorFrame);
    return e.run(std::move(plan));
  }
  int nlocals = internals::frame_nlocalsplus(f);
  int top = internals::frame_stacktop(f);
  if (top < nlocals) e.unsupported(obj, "its frame has no valid value stack");
  PyObject** slots = internals::frame_localsplus(f);
  if (state == -1 && !e.writes_program()) {
    // What loading an object graph refuses (restore/generator_decoder.cpp check_closable): closing
    // the loaded generator would run a handler of its code, or call its delegate's own close().
    PyCodeObject* co = internals::frame_code(f);
    int lasti = internals::frame_lasti(f);
    if (internals::exception_handler_covers(co, lasti))
      e.unsupported(obj, "it is suspended inside a try, with or except block (loading an object graph refuses "
                         "it: closing the loaded generator would run that block's handler)");
    if (internals::delegates_at(co, lasti) && top > nlocals) {
      PyObject* sub = slots[top - 1];
      PyTypeObject* t = sub ? Py_TYPE(sub) : nullptr;
      if (t && !PyGen_CheckExact(sub) && !PyCoro_CheckExact(sub) &&
          ((t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_dictoffset != 0))
        e.unsupported(obj, std::string("it delegates (yield from, await) to a ") + t->tp_name +
                               " (loading an object graph refuses it: closing the loaded generator would call "
                               "that object's close())");
    }
  }
  Ref locals = Ref::steal(PyTuple_New(nlocals));
  Ref mask = Ref::steal(PyLong_FromLong(0));
  for (int i = 0; i < nlocals; ++i) {
    PyObject* v = slots[i];
    PyTuple_SET_ITEM(locals.get(), i, Py_NewRef(v ? v : Py_None));
    if (v) {
      Ref bit = Ref::steal(PyNumber_Lshift(Ref::steal(PyLong_FromLong(1)).get(), Ref::steal(PyLong_FromLong(i)).get()));
      mask = Ref::steal(PyNumber_Or(mask.get(), bit.get()));
      if (!mask) throw Error::python();
    }
  }
  Ref stack = Ref::steal(PyTuple_New(top - nlocals));
  for (int i = nlocals; i < top; ++i) {
    if (!slots[i]) e.unsupported(obj, "a NULL on its value stack (suspended in the middle of a call)");
    PyTuple_SET_ITEM(stack.get(), i - nlocals, Py_NewRef(slots[i]));
  }
  plan.save(locals, ".gi_frame.f_locals")
      .save(mask)
      .save(stack, ".gi_frame.<stack>")
      .save(Ref::steal(PyLong_FromLong(internals::frame_lasti(f))))
      .save(Ref::steal(PyLong_FromLong(state)))
      .op(format::Op::GeneratorFrame);
  e.run(std::move(plan));
}

}  // namespace stasis::snapshot
