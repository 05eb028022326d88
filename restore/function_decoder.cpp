// restore/function_decoder.cpp — Cell/CellSet, Code, Function/FunctionState.
// Counterpart: snapshot/function_encoder.cpp. A code object is built by types.CodeType from its
// fields (validated by CPython) and then checked by restore/code_verifier.h before anything can
// run it; in an object graph, nothing of it runs while loading (restore/code_guard.h).
#include "core/cpython_internals.h"
#include "core/error.h"
#include "restore/code_verifier.h"
#include "restore/decoders.h"
#include "restore/effect_guard.h"

using stasis::format::Op;

namespace stasis::restore {

void decode_cell(HeapDecoder& d, uint8_t op) {
  if (static_cast<Op>(op) == Op::Cell) return d.push(PyCell_New(nullptr));
  Ref value = d.pop();
  PyObject* cell = d.target(0, "CellSet");
  if (!PyCell_Check(cell)) d.corrupt("CellSet on a non-cell");
  if (PyCell_Set(cell, value.get()) < 0) throw Error::python();
}

void decode_code(HeapDecoder& d, uint8_t) {
  Ref fields = d.pop();
  if (!PyTuple_Check(fields.get()) || PyTuple_GET_SIZE(fields.get()) != 18)
    d.corrupt("Code needs a tuple of 18 fields");
  PyObject* r;
  {
    EffectGuard::OwnCode scope(d.effects());  // verified below, before anything can run it
    r = PyObject_Call(reinterpret_cast<PyObject*>(&PyCode_Type), fields.get(), nullptr);
  }
  if (!r) d.refused("Code");
  Ref code = Ref::steal(r);
  std::string why = verify_code(reinterpret_cast<PyCodeObject*>(r));
  if (!why.empty()) d.corrupt("Code refused: " + why);
  d.built_code(r);
  d.push(std::move(code));
}

void decode_function(HeapDecoder& d, uint8_t op) {
  if (static_cast<Op>(op) == Op::Function) {
    Ref closure = d.pop();
    Ref qualname = d.pop();
    Ref name = d.pop();
    Ref globals = d.pop();
    Ref code = d.pop();
    if (!PyCode_Check(code.get())) d.corrupt("Function without a code object");
    if (PyModule_Check(globals.get())) globals = Ref::borrow(PyModule_GetDict(globals.get()));
    if (!PyDict_Check(globals.get())) d.corrupt("Function globals are neither a module nor a dict");
    if (!PyUnicode_Check(name.get()) || !PyUnicode_Check(qualname.get())) d.corrupt("Function name is not a str");
    auto* co = reinterpret_cast<PyCodeObject*>(code.get());
    Py_ssize_t nfree = internals::code_nfreevars(co);
    if (closure.get() == Py_None ? nfree != 0 : (!PyTuple_Check(closure.get()) || PyTuple_GET_SIZE(closure.get()) != nfree))
      d.corrupt("Function closure does not match the code's free variables");
    if (nfree)
      for (Py_ssize_t i = 0; i < nfree; ++i)
        if (!PyCell_Check(PyTuple_GET_ITEM(closure.get(), i))) d.corrupt("Function closure holds a non-cell");
    Ref f = Ref::steal(PyFunction_NewWithQualName(code.get(), globals.get(), qualname.get()));
    if (!f) d.refused("Function");
    if (nfree && PyFunction_SetClosure(f.get(), closure.get()) < 0) d.refused("Function");
    if (PyObject_SetAttrString(f.get(), "__name__", name.get()) < 0) d.refused("Function");
    d.built_function(f.get());
    return d.push(std::move(f));
  }
  Ref module = d.pop();
  Ref doc = d.pop();
  Ref dict = d.pop();
  Ref annotations = d.pop();
  Ref kwdefaults = d.pop();
  Ref defaults = d.pop();
  PyObject* f = d.peek();
  if (!PyFunction_Check(f) || !d.stream_function(f))
    d.corrupt("FunctionState on a " + std::string(Py_TYPE(f)->tp_name) +
              " this load did not make (loading changes no function that existed before it)");
  if (PyObject_SetAttrString(f, "__defaults__", defaults.get()) < 0 ||
      PyObject_SetAttrString(f, "__kwdefaults__", kwdefaults.get()) < 0 ||
      (annotations.get() != Py_None && PyObject_SetAttrString(f, "__annotations__", annotations.get()) < 0) ||
      (dict.get() != Py_None && PyObject_SetAttrString(f, "__dict__", dict.get()) < 0) ||
      PyObject_SetAttrString(f, "__doc__", doc.get()) < 0 ||
      PyObject_SetAttrString(f, "__module__", module.get()) < 0)
    d.refused("FunctionState");
}

}  // namespace stasis::restore
