// snapshot/class_encoder.cpp — classes that cannot be found by module + qualname (created by
// type(...) or by a class statement inside a function) are written by value: metaclass, name,
// bases and a small namespace (__module__, __qualname__, __doc__, __slots__) create the class
// (Class, memo id), then ClassState sets every other attribute of its __dict__ — so methods whose
// closures refer to the class (super()'s __class__ cell) link to the class shell.
// Enum classes are made from their members' values (see below), which keeps members identical.
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

// What EnumType.__new__ puts in an Enum class's namespace itself (enum.py, 3.11): made again when
// the class is made again from its members.
bool made_by_enum(const char* name) {
  static const char* kEnum[] = {"_new_member_", "_use_args_", "_member_names_", "_member_map_",
                                "_value2member_map_", "_unhashable_values_", "_member_type_",
                                "_value_repr_", "_boundary_", "_flag_mask_", "_singles_mask_",
                                "_all_bits_", "_inverted_", "__new_member__", "__new__", "_ignore_",
                                "_iter_member_"};
  for (const char* s : kEnum)
    if (std::strcmp(name, s) == 0) return true;
  return false;
}

}  // namespace

bool is_python_class(PyTypeObject* type) {
  static destructor python_dealloc = [] {
    Ref probe = Ref::steal(PyObject_CallFunction(reinterpret_cast<PyObject*>(&PyType_Type), "s()N",
                                                 "probe", PyDict_New()));
    if (!probe) throw Error::python();
    return reinterpret_cast<PyTypeObject*>(probe.get())->tp_dealloc;
  }();
  return (type->tp_flags & Py_TPFLAGS_HEAPTYPE) && type->tp_dealloc == python_dealloc;
}

void encode_class(HeapEncoder& e, PyObject* obj) {
  auto* type = reinterpret_cast<PyTypeObject*>(obj);
  if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE))
    e.unsupported(obj, std::string("the builtin class ") + type->tp_name + " cannot be found by its name");
  if (!is_python_class(type))
    e.unsupported(obj, std::string("the class ") + type->tp_name + " of a C extension cannot be found "
                                                                   "by its name, nor made again");
  static PyObject* enum_type = [] {
    Ref m = Ref::steal(PyImport_ImportModule("enum"));
    PyObject* t = m ? PyObject_GetAttrString(m.get(), "EnumType") : nullptr;
    if (!t) PyErr_Clear();
    return t;
  }();
  bool is_enum = enum_type && PyObject_IsInstance(obj, enum_type) == 1;
  PyObject* dict = type->tp_dict;
  Ref ns = Ref::steal(PyDict_New());
  Ref state = Ref::steal(PyDict_New());
  if (!ns || !state) throw Error::python();
  for (const char* k : {"__module__", "__doc__", "__slots__"})
    if (PyObject* v = PyDict_GetItemString(dict, k))
      if (PyDict_SetItemString(ns.get(), k, v) < 0) throw Error::python();
  // type() keeps __qualname__ out of the class __dict__ (PyHeapTypeObject::ht_qualname).
  PyObject* qualname = reinterpret_cast<PyHeapTypeObject*>(type)->ht_qualname;
  if (qualname && PyDict_SetItemString(ns.get(), "__qualname__", qualname) < 0) throw Error::python();
  Ref members;
  if (is_enum) {
    // An Enum class is made again the way its class statement made it: EnumType.__prepare__'s
    // namespace (the decoder calls __prepare__) with each member's value, in definition order,
    // and the methods that make members (__init__, _generate_next_value_) already there.
    members = Ref::steal(PyObject_GetAttrString(obj, "_member_map_"));
    if (!members || !PyDict_Check(members.get())) throw Error::python();
    for (const char* k : {"_generate_next_value_", "__init__"})
      if (PyObject* v = PyDict_GetItemString(dict, k))
        if (PyDict_SetItemString(ns.get(), k, v) < 0) throw Error::python();
    PyObject *name, *member;
    Py_ssize_t i = 0;
    while (PyDict_Next(members.get(), &i, &name, &member)) {
      Ref value = Ref::steal(PyObject_GetAttrString(member, "_value_"));
      if (!value || PyDict_SetItem(ns.get(), name, value.get()) < 0) throw Error::python();
    }
  }
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    const char* k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : nullptr;
    if (!k) throw Error::python();
    if (made_by_type(k, value)) continue;
    if (is_enum && (made_by_enum(k) || PyDict_Contains(members.get(), key) == 1 ||
                    PyDict_Contains(ns.get(), key) == 1))
      continue;
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
