// snapshot/global_encoder.cpp — classes, functions and modules by reference (Global, Module).
// Counterpart: restore/global_decoder.cpp. An object is written by reference only when looking
// up its module (already in sys.modules; nothing is imported while dumping) and qualname finds
// that very object again; otherwise the caller writes it by value.
#include <cstring>
#include <string>

#include "core/error.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {
namespace {

Ref attr(PyObject* obj, const char* name) {
  Ref r = Ref::steal(PyObject_GetAttrString(obj, name));
  if (!r) PyErr_Clear();
  return r;
}

// Resolves "A.B.c" inside `module`; empty Ref when any part is missing.
Ref lookup(PyObject* module, const std::string& qualname) {
  Ref cur = Ref::borrow(module);
  size_t start = 0;
  while (start <= qualname.size()) {
    size_t dot = qualname.find('.', start);
    std::string part = qualname.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part == "<locals>") return Ref();
    cur = attr(cur.get(), part.c_str());
    if (!cur) return Ref();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

void write_global(HeapEncoder& e, PyObject* obj, const std::string& module, const std::string& qualname) {
  auto& out = e.out();
  out.op(format::Op::Str);
  out.uvar(module.size());
  out.raw(module.data(), module.size());
  out.op(format::Op::Str);
  out.uvar(qualname.size());
  out.raw(qualname.data(), qualname.size());
  out.op(format::Op::Global);
  e.memoize_leaf(obj);
}

// {object: name} of the globals of the module that defines `type` that are instances of Python
// classes, or nullptr: a builtin type, a type of the program's own modules (they come back with
// their objects), a module not imported. Computed once per type and once per module and walk.
const HeapEncoder::ModuleInstances* instances_for(HeapEncoder& e, PyTypeObject* type) {
  auto& by_type = e.module_instances_by_type();
  auto cached = by_type.find(type);
  if (cached != by_type.end()) return cached->second;
  const HeapEncoder::ModuleInstances* names = nullptr;
  PyObject* module_name = (type->tp_flags & Py_TPFLAGS_HEAPTYPE) ? PyDict_GetItemString(type->tp_dict, "__module__")
                                                                  : nullptr;
  const char* m = module_name && PyUnicode_Check(module_name) ? PyUnicode_AsUTF8(module_name) : nullptr;
  if (!m) PyErr_Clear();
  if (m && !e.by_value_module(m)) {
    auto& by_module = e.module_instances();
    auto found = by_module.find(m);
    if (found == by_module.end()) {
      HeapEncoder::ModuleInstances index;
      PyObject* module = PyImport_GetModule(module_name);  // new reference, or NULL: not imported
      if (!module) PyErr_Clear();
      PyObject* dict = module && PyModule_Check(module) ? PyModule_GetDict(module) : nullptr;
      PyObject *key, *value;
      Py_ssize_t pos = 0;
      while (dict && PyDict_Next(dict, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || PyType_Check(value) || PyModule_Check(value) || PyFunction_Check(value) ||
            PyCFunction_Check(value) || !(Py_TYPE(value)->tp_flags & Py_TPFLAGS_HEAPTYPE))
          continue;
        const char* name = PyUnicode_AsUTF8(key);
        if (!name) {
          PyErr_Clear();
          continue;
        }
        index.emplace(value, name);  // the first name of an object bound twice
      }
      Py_XDECREF(module);
      found = by_module.emplace(m, std::move(index)).first;
    }
    names = &found->second;
  }
  by_type.emplace(type, names);
  return names;
}

}  // namespace

bool encode_module_instance(HeapEncoder& e, PyObject* obj) {
  if (!e.writes_program()) return false;
  const HeapEncoder::ModuleInstances* names = instances_for(e, Py_TYPE(obj));
  if (!names) return false;
  auto at = names->find(obj);
  if (at == names->end()) return false;
  PyObject* module_name = PyDict_GetItemString(Py_TYPE(obj)->tp_dict, "__module__");
  write_global(e, obj, PyUnicode_AsUTF8(module_name), at->second);
  return true;
}

bool encode_global(HeapEncoder& e, PyObject* obj) {
  Ref module_name = attr(obj, "__module__");
  Ref qualname = attr(obj, "__qualname__");
  if (PyCFunction_Check(obj) && PyCFunction_GET_SELF(obj) && PyModule_Check(PyCFunction_GET_SELF(obj))) {
    module_name = Ref::steal(PyObject_GetAttrString(PyCFunction_GET_SELF(obj), "__name__"));
    if (!module_name) PyErr_Clear();
  }
  if (module_name && qualname && PyUnicode_Check(module_name.get()) && PyUnicode_Check(qualname.get())) {
    const char* m = PyUnicode_AsUTF8(module_name.get());
    const char* q = PyUnicode_AsUTF8(qualname.get());
    if (m && q && e.by_value_module(m)) return false;  // a suspended program's own module
    if (m && q) {
      PyObject* module = PyImport_GetModule(module_name.get());  // new reference or NULL
      Ref mod = Ref::steal(module);
      if (!mod) PyErr_Clear();
      if (mod && lookup(mod.get(), q).get() == obj) {
        write_global(e, obj, m, q);
        return true;
      }
    }
  }
  PyErr_Clear();
  // Builtin types whose __module__ does not name them (types.MethodType is "builtins.method").
  if (PyType_Check(obj) && !(reinterpret_cast<PyTypeObject*>(obj)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
    Ref types = Ref::steal(PyImport_ImportModule("types"));
    if (!types) throw Error::python();
    PyObject* dict = PyModule_GetDict(types.get());
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
      if (value == obj && PyUnicode_Check(key)) {
        write_global(e, obj, "types", PyUnicode_AsUTF8(key));
        return true;
      }
    }
  }
  return false;
}

bool findable_by_name(HeapEncoder& e, PyObject* obj) {
  Ref module_name = attr(obj, "__module__");
  Ref qualname = attr(obj, "__qualname__");
  if (!module_name || !qualname || !PyUnicode_Check(module_name.get()) || !PyUnicode_Check(qualname.get())) {
    PyErr_Clear();
    return false;
  }
  const char* m = PyUnicode_AsUTF8(module_name.get());
  const char* q = PyUnicode_AsUTF8(qualname.get());
  if (!m || !q || e.by_value_module(m)) {
    PyErr_Clear();
    return false;
  }
  Ref mod = Ref::steal(PyImport_GetModule(module_name.get()));
  if (!mod) {
    PyErr_Clear();
    return false;
  }
  return lookup(mod.get(), q).get() == obj;
}

void encode_module(HeapEncoder& e, PyObject* obj) {
  const char* name = PyModule_GetName(obj);
  if (!name) e.unsupported(obj, "a module without a name");
  Ref same = Ref::steal(PyImport_GetModule(Ref::steal(PyUnicode_FromString(name)).get()));
  if (same.get() != obj)
    e.unsupported(obj, std::string("module '") + name + "' is not the one in sys.modules, so it cannot be re-imported");
  e.save_str_value(name);
  e.out().op(format::Op::Module);
  e.memoize_leaf(obj);
}

}  // namespace stasis::snapshot
