// restore/generator_decoder.cpp — Generator and GeneratorFrame: suspended generators and
// coroutines rebuilt purely from C (CPYTHON311.md §6, §11.3). Generator calls the generator
// function with placeholder arguments: the call runs only the frame prefix up to
// RETURN_GENERATOR (no user code) and returns a not-started generator. GeneratorFrame then writes
// the saved local slots and value stack into its frame, points prev_instr at the saved YIELD_VALUE
// and marks it suspended; a completed generator is closed instead (close() on a not-started
// generator runs no code either). Counterpart: snapshot/generator_encoder.cpp.
#include "core/cpython_internals.h"
#include "core/error.h"
#include "restore/code_guard.h"
#include "restore/code_verifier.h"
#include "restore/decoders.h"

using stasis::format::Op;

namespace stasis::restore {
namespace {

// The value of an int op argument that must fit a C long (a state, a position), or `otherwise`
// for one that does not (never an exception left set).
long small_int(PyObject* v, long otherwise) {
  if (!PyLong_Check(v)) return otherwise;
  int overflow = 0;
  long r = PyLong_AsLongAndOverflow(v, &overflow);
  if (overflow || (r == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return otherwise;
  }
  return r;
}

// An object graph's generator is handed to the program, which may drop it unfinished: then
// CPython closes it, throwing GeneratorExit in at its yield. That must run none of the snapshot's
// code — no handler (`finally`, `except`, `with`) may cover the yield — nor call anything the
// snapshot chose: a generator delegating there (`yield from x`, `await x`) closes x through
// x.close(), which must be its class's own (an exact generator or coroutine, or an object of a
// built-in type without a __dict__ the snapshot could have put a `close` in).
void check_closable(HeapDecoder& d, PyCodeObject* co, int lasti, PyObject* stack) {
  if (internals::exception_handler_covers(co, lasti))
    d.corrupt("GeneratorFrame: the generator is suspended inside a try, with or except block, whose "
              "handler would run the snapshot's code when the generator is closed or dropped");
  if (!internals::delegates_at(co, lasti) || PyTuple_GET_SIZE(stack) == 0) return;
  PyObject* sub = PyTuple_GET_ITEM(stack, PyTuple_GET_SIZE(stack) - 1);
  PyTypeObject* t = Py_TYPE(sub);
  if (PyGen_CheckExact(sub) || PyCoro_CheckExact(sub)) return;
  if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) && t->tp_dictoffset == 0) return;
  d.corrupt(std::string("GeneratorFrame: the generator delegates (yield from, await) to a ") + t->tp_name +
            ", whose close() would be called when the generator is closed or dropped");
}

void make_generator(HeapDecoder& d) {
  Ref func = d.pop();
  if (!PyFunction_Check(func.get())) d.corrupt("Generator of a non-function");
  auto* co = reinterpret_cast<PyCodeObject*>(PyFunction_GET_CODE(func.get()));
  // Calling the function runs its code up to RETURN_GENERATOR: the verifier must show that this
  // is the frame prefix and nothing else (a function flagged CO_GENERATOR whose body does not
  // start with RETURN_GENERATOR would run whole).
  if (!(co->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR)) ||
      !has_generator_prefix(co))
    d.corrupt("Generator of a function whose code is not a generator, coroutine or async generator "
              "starting with RETURN_GENERATOR");
  // Placeholders for every parameter (the frame's slots are overwritten by GeneratorFrame).
  Ref args = Ref::steal(PyTuple_New(co->co_argcount));
  if (!args) throw Error::python();
  for (int i = 0; i < co->co_argcount; ++i) PyTuple_SET_ITEM(args.get(), i, Py_NewRef(Py_None));
  Ref kwargs = Ref::steal(PyDict_New());
  if (!kwargs) throw Error::python();
  for (int i = 0; i < co->co_kwonlyargcount; ++i) {
    PyObject* name = PyTuple_GET_ITEM(internals::code_localsplus_names(co), co->co_argcount + i);
    if (PyDict_SetItem(kwargs.get(), name, Py_None) < 0) throw Error::python();
  }
  struct Allow {  // the guard lets this one frame prefix run
    CodeGuard* g;
    Allow(CodeGuard* guard, PyObject* code) : g(guard) {
      if (g) g->allow(code);
    }
    ~Allow() {
      if (g) g->allow(nullptr);
    }
  } allow(d.guard(), reinterpret_cast<PyObject*>(co));
  PyObject* gen = PyObject_Call(func.get(), args.get(), kwargs.get());
  if (!gen) d.refused("Generator");
  if (!PyGen_CheckExact(gen) && !PyCoro_CheckExact(gen) && !PyAsyncGen_CheckExact(gen)) {
    Py_DECREF(gen);
    d.corrupt("Generator: the function did not return a generator or coroutine");
  }
  d.made_generator(gen);
  d.push(gen);
}

void fill_frame(HeapDecoder& d) {
  Ref state_obj = d.pop();
  Ref lasti_obj = d.pop();
  Ref stack = d.pop();
  Ref mask = d.pop();
  Ref locals = d.pop();
  PyObject* gen = d.target(0, "GeneratorFrame");
  if (!PyGen_CheckExact(gen) && !PyCoro_CheckExact(gen) && !PyAsyncGen_CheckExact(gen))
    d.corrupt("GeneratorFrame on a non-generator");
  if (internals::generator_state(gen) != -2) d.corrupt("GeneratorFrame on a generator that was already filled");
  long state = small_int(state_obj.get(), 99);
  if (state >= 1 && state <= 4) {  // completed or cleared: mark the not-started frame completed
    if (PyAsyncGen_CheckExact(gen)) {  // aclose() would need an event loop; nothing ran: just end it
      internals::set_generator_state(gen, 1);
      return;
    }
    Ref r = Ref::steal(PyObject_CallMethod(gen, "close", nullptr));
    if (!r) d.refused("GeneratorFrame (close)");
    return;
  }
  if (state != -1 && state != -2) d.corrupt("GeneratorFrame with an unknown frame state");
  _PyInterpreterFrame* f = internals::generator_frame(gen);
  PyCodeObject* co = internals::frame_code(f);
  int nlocals = internals::frame_nlocalsplus(f);
  if (!PyTuple_Check(locals.get()) || PyTuple_GET_SIZE(locals.get()) != nlocals)
    d.corrupt("GeneratorFrame locals do not match the code");
  if (!PyTuple_Check(stack.get()) || PyTuple_GET_SIZE(stack.get()) > co->co_stacksize)
    d.corrupt("GeneratorFrame stack does not fit the code");
  if (!PyLong_Check(mask.get()) || !PyLong_Check(lasti_obj.get())) d.corrupt("GeneratorFrame mask/lasti are not ints");
  long lasti = small_int(lasti_obj.get(), -1);
  if (lasti < 0 || lasti >= internals::code_units(co)) d.corrupt("GeneratorFrame position outside the code");
  if (state == -1 && !internals::is_yield_value(co, int(lasti)))
    d.corrupt("GeneratorFrame position is not a yield");
  if (state == -1) {
    // The eval loop uses the saved values as the code expects them (FOR_ITER calls an
    // iterator's tp_iternext unchecked...): each must be of the kind the verifier found there.
    std::string why = check_stack_at(co, int(lasti), stack.get(), true);
    if (!why.empty()) d.corrupt("GeneratorFrame: " + why);
    if (!d.program()) check_closable(d, co, int(lasti), stack.get());
  }
  if (state == -2 && (lasti != internals::frame_lasti(f) || PyTuple_GET_SIZE(stack.get()) != 0))
    d.corrupt("GeneratorFrame of a not started generator does not match its code");
  int iter_slot = iterator_argument(co);
  PyObject** slots = internals::frame_localsplus(f);
  Ref one = Ref::steal(PyLong_FromLong(1));
  if (!one) throw Error::python();
  for (int i = 0; i < nlocals; ++i) {
    Ref bit = Ref::steal(PyNumber_Rshift(mask.get(), Ref::steal(PyLong_FromLong(i)).get()));
    Ref low = bit ? Ref::steal(PyNumber_And(bit.get(), one.get())) : Ref();
    if (!low) throw Error::python();
    bool bound = PyObject_IsTrue(low.get()) == 1;
    PyObject* v = bound ? PyTuple_GET_ITEM(locals.get(), i) : nullptr;
    int kind = internals::localsplus_kind(co, i);
    if (v && (kind & (CO_FAST_CELL | CO_FAST_FREE)) && !PyCell_Check(v))
      d.corrupt("GeneratorFrame: a cell variable holds a non-cell");
    if (v && i == iter_slot && !internals::is_iterator_type(Py_TYPE(v)))
      d.corrupt("GeneratorFrame: a comprehension's iterator argument holds a non-iterator");
    PyObject* old = slots[i];
    slots[i] = v ? Py_NewRef(v) : nullptr;
    Py_XDECREF(old);
  }
  int depth = int(PyTuple_GET_SIZE(stack.get()));
  for (int i = nlocals; i < internals::frame_stacktop(f); ++i) Py_CLEAR(slots[i]);
  for (int i = 0; i < depth; ++i) slots[nlocals + i] = Py_NewRef(PyTuple_GET_ITEM(stack.get(), i));
  internals::set_frame_stacktop(f, nlocals + depth);
  if (state == -1) {
    internals::set_frame_lasti(f, int(lasti));
    internals::set_generator_state(gen, -1);
  }
}

}  // namespace

void decode_generator(HeapDecoder& d, uint8_t op) {
  if (static_cast<Op>(op) == Op::Generator) return make_generator(d);
  fill_frame(d);
}

}  // namespace stasis::restore
