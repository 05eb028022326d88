// snapshot/class_encoder.cpp — classes that cannot be found by module + qualname (created by
// type(...) or by a class statement inside a function) are written by value: metaclass, name,
// bases and a small namespace (__module__, __qualname__, __doc__, __slots__) create the class
// (Class, memo id), then ClassState sets every other attribute of its __dict__ — so methods whose
// closures refer to the class (super()'s __class__ cell) link to the class shell.
// Counterpart: restore/class_decoder.cpp.
#include <cstring>

#include "core/error.h"
#include "core/python_error.h"
#include "core/python_import.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {
namespace {

// Attributes the class machinery creates itself, never copied by ClassState.
bool made_by_type(const char* name, PyObject* value) {
  static const char* kSkip[] = {"__dict__", "__weakref__", "__slots__", "__module__", "__qualname__",
                                "__doc__", "_abc_impl", "__slotnames__"};
  for (const char* s : kSkip)
    if (std::strcmp(name, s) == 0) return true;
  // Slot members (member_descriptor) are made from __slots__ by type().
  return std::strcmp(Py_TYPE(value)->tp_name, "member_descriptor") == 0 ||
         std::strcmp(Py_TYPE(value)->tp_name, "getset_descriptor") == 0;
}

// An Enum class: rebuilt on load by enum's functional API on its base, by the built-in handler
// "stasis.enum_class" (python/stasis/handlers.py), when its body holds members only.
void encode_enum_class(HeapEncoder& e, PyObject* obj) {
  auto* type = reinterpret_cast<PyTypeObject*>(obj);
  std::string why;
  Ref state;
  try {
    Ref save = import_attr("stasis.handlers", "save_enum_class");
    state = Ref::steal(PyObject_CallOneArg(save.get(), obj));
    if (!state) why = take_python_error();
  } catch (const Error& err) {
    why = PyErr_Occurred() ? take_python_error() : err.message();
  }
  if (!state)
    e.unsupported(obj, std::string("the Enum class ") + type->tp_name +
                           " is not importable by its name (defined inside a function?) and cannot "
                           "be rebuilt from its members (" + why + "); define it at module level so "
                           "it is written by reference");
  Ref key = Ref::steal(PyUnicode_FromString("stasis.enum_class"));
  if (!key) throw Error::python();
  Plan plan(obj);
  plan.save(std::move(key)).save(std::move(state), ".<enum members>").atomic(format::Op::Registered, 2);
  e.run(std::move(plan));
}

}  // namespace

void encode_class(HeapEncoder& e, PyObject* obj) {
  auto* type = reinterpret_cast<PyTypeObject*>(obj);
  if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE))
    e.unsupported(obj, std::string("the builtin class ") + type->tp_name + " cannot be found by its name");
  // Metaclasses that need their own namespace type (enum's _EnumDict) cannot be rebuilt by Class.
  static PyObject* enum_type = [] {
    Ref m = Ref::steal(PyImport_ImportModule("enum"));
    PyObject* t = m ? PyObject_GetAttrString(m.get(), "EnumType") : nullptr;
    if (!t) PyErr_Clear();
    return t;
  }();
  if (enum_type && PyObject_IsInstance(obj, enum_type) == 1) return encode_enum_class(e, obj);
  PyObject* dict = type->tp_dict;
  Ref ns = Ref::steal(PyDict_New());
  Ref state = Ref::steal(PyDict_New());
  if (!ns || !state) throw Error::python();
  for (const char* k : {"__module__", "__qualname__", "__doc__", "__slots__"})
    if (PyObject* v = PyDict_GetItemString(dict, k))
      if (PyDict_SetItemString(ns.get(), k, v) < 0) throw Error::python();
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    const char* k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : nullptr;
    if (!k) throw Error::python();
    if (made_by_type(k, value)) continue;
    if (PyDict_SetItem(state.get(), key, value) < 0) throw Error::python();
  }
  Plan plan(obj);
  plan.save(reinterpret_cast<PyObject*>(Py_TYPE(obj)), ".__class__")
      .save(reinterpret_cast<PyHeapTypeObject*>(type)->ht_name, ".__name__")
      .save(type->tp_bases, ".__bases__")
      .save(ns, ".<namespace>")
      .atomic(format::Op::Class, 4)
      .save(state, ".__dict__")
      .op(format::Op::ClassState);
  e.run(std::move(plan));
}

}  // namespace stasis::snapshot
