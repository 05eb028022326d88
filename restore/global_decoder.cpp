// restore/global_decoder.cpp — Global (a class or function found by module + qualname) and Module
// (a module re-imported by name). Counterpart: snapshot/global_encoder.cpp.
// What a Global may resolve to is restricted: a class, a Python function or a builtin function.
#include <string>
#include <string_view>

#include "core/allowlist.h"
#include "core/error.h"
#include "core/python_import.h"
#include "core/python_error.h"
#include "restore/decoders.h"
#include "restore/effect_guard.h"

namespace stasis::restore {
namespace {

std::string str_of(HeapDecoder& d, PyObject* s, const char* what) {
  if (!PyUnicode_Check(s)) d.corrupt(std::string(what) + " is not a str");
  const char* c = PyUnicode_AsUTF8(s);
  if (!c) d.refused(what);
  return c;
}

Ref import(HeapDecoder& d, PyObject* name) {
  if (!PyUnicode_CheckExact(name)) d.corrupt("a module name that is not a str");
  const std::string module_name = str_of(d, name, "module name");
  std::string why = allowlist::import_refusal(module_name, d.program());
  if (!why.empty()) d.corrupt(why);
  Ref module;
  {
    EffectGuard::LibraryImport scope(allowlist::unguarded_import(module_name) ? d.effects() : nullptr);
    module = Ref::steal(PyImport_Import(name));
  }
  if (!module) {
    std::string why = take_python_error();
    throw Error(ErrorCode::IncompatibleSnapshot,
                "the snapshot needs module '" + module_name + "', which cannot be imported here: " + why);
  }
  return module;
}

}  // namespace

void decode_global(HeapDecoder& d, uint8_t) {
  Ref qualname = d.pop();
  Ref module_name = d.pop();
  std::string m = str_of(d, module_name.get(), "Global module");
  std::string q = str_of(d, qualname.get(), "Global qualname");
  if (!PyUnicode_CheckExact(qualname.get())) d.corrupt("Global qualname is not a str");
  Ref cur = import(d, module_name.get());
  size_t start = 0;
  for (;;) {
    size_t dot = q.find('.', start);
    std::string part = q.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    cur = Ref::steal(PyObject_GetAttrString(cur.get(), part.c_str()));
    if (!cur) {
      PyErr_Clear();
      throw Error(ErrorCode::IncompatibleSnapshot,
                  "the snapshot refers to " + m + "." + q + ", which does not exist here");
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  PyObject* o = cur.get();
  // Cython's functions (pandas, scipy...) are functions of their own types, not PyCFunction's.
  const std::string_view type_name = Py_TYPE(o)->tp_name;
  const bool cython_function = type_name == "cython_function_or_method" || type_name == "fused_cython_function";
  // In a program's snapshot: an instance of a Python class the module itself defines, bound as
  // one of its globals (a sentinel such as numpy's _Unspecified; snapshot/global_encoder.cpp).
  bool module_instance = false;
  if (d.program() && (Py_TYPE(o)->tp_flags & Py_TPFLAGS_HEAPTYPE) && q.find('.') == std::string::npos) {
    PyObject* defined_in = PyDict_GetItemString(Py_TYPE(o)->tp_dict, "__module__");
    module_instance = defined_in && PyUnicode_Check(defined_in) && PyUnicode_CompareWithASCIIString(defined_in, m.c_str()) == 0;
  }
  if (!PyType_Check(o) && !PyFunction_Check(o) && !PyCFunction_Check(o) && !cython_function && !module_instance &&
      !(m == "typing" && is_typing_object(o)))
    d.corrupt("Global " + m + "." + q + " is a " + Py_TYPE(o)->tp_name +
              ", not a class, a function or a typing object");
  d.mark_foreign(cur.get());
  d.push(std::move(cur));
}

void decode_module(HeapDecoder& d, uint8_t) {
  Ref name = d.pop();
  str_of(d, name.get(), "Module name");
  Ref module = import(d, name.get());
  d.mark_foreign(module.get());
  d.push(std::move(module));
}

}  // namespace stasis::restore
