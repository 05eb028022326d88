// restore/class_decoder.cpp — Class (metaclass(name, bases, namespace)) and ClassState (every
// other attribute, set after the class has its memo id). Counterpart: snapshot/class_encoder.cpp.
// ClassState changes only a class this load made. In an object graph (Trust::Objects) a class
// from the snapshot is built without running any of its code, and may hold as attributes only
// data, its own functions (which the guard keeps from running while loading), and the C methods
// and descriptors of built-in types: a callable of the loading process in a special method's
// place (`__hash__ = os.system`) would run the moment the interpreter used the class.
#include <cstring>
#include <string>
#include <string_view>

#include "core/allowlist.h"
#include "core/cpython_internals.h"
#include "core/error.h"
#include "restore/decoders.h"

using stasis::format::Op;

namespace stasis::restore {
namespace {

bool is_c_descriptor(PyObject* v) {
  PyTypeObject* t = Py_TYPE(v);
  return t == &PyMethodDescr_Type || t == &PyClassMethodDescr_Type || t == &PyWrapperDescr_Type ||
         t == &PyMemberDescr_Type || t == &PyGetSetDescr_Type ||
         std::strcmp(t->tp_name, "_collections._tuplegetter") == 0;
}

// Whether the interpreter, the enum machinery or the loader call the attribute `key` of a class
// by its name: special methods (`__init__`, `__setitem__`...), Enum's sunder names (`_missing_`,
// `_generate_next_value_`...) and `append` (ListItems).
bool called_by_name(PyObject* key) {
  Py_ssize_t n = 0;
  const char* s = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &n) : nullptr;
  if (!s) {
    PyErr_Clear();
    return false;
  }
  std::string_view k(s, size_t(n));
  return k == "append" || (n > 2 && k.front() == '_' && k.back() == '_');
}

// Whether calling the class `t` (one this load made) runs only code loading may run: every class
// of its MRO that defines __new__ or __init__ is one of this load's (whose code the guard keeps
// from running), `object`, or a class loading may call (core/allowlist.h). A class derived from
// subprocess.Popen or dict is not: its construction would run Popen.__init__ or dict(x).
bool constructed_by_safe_code(HeapDecoder& d, PyTypeObject* t) {
  PyObject* mro = t->tp_mro;
  for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); ++i) {
    PyObject* base = PyTuple_GET_ITEM(mro, i);
    auto* b = reinterpret_cast<PyTypeObject*>(base);
    if (b == &PyBaseObject_Type || d.stream_class(base) || allowlist::callable_class(base)) continue;
    if (b->tp_dict && (PyDict_GetItemString(b->tp_dict, "__init__") || PyDict_GetItemString(b->tp_dict, "__new__")))
      return false;
  }
  return true;
}

// Whether an object graph's class may hold `value` under `key` (see the file comment); "" or why
// not. A class is a callable too: under a name that is called (`__setitem__ = subprocess.Popen`,
// an Enum's `_missing_ = staticmethod(Popen)`, an exception's `__init__`) it would be constructed
// with the interpreter's arguments, so there only functions of the snapshot's own may stand; under
// any other name library code may still call it (random.Random.__init__ calls `self.seed(x)`),
// so it must be a class loading itself may call (core/allowlist.h) or one this load made.
std::string class_value_refusal(HeapDecoder& d, PyObject* key, PyObject* value, int depth = 0) {
  if (depth > 4) return "nested too deep";
  if (PyFunction_Check(value)) {
    if (d.stream_function(value)) return "";
    return "a function of the loading process, which would run with the snapshot's objects";
  }
  if (Py_IS_TYPE(value, &PyStaticMethod_Type) || Py_IS_TYPE(value, &PyClassMethod_Type)) {
    Ref f = Ref::steal(PyObject_GetAttrString(value, "__func__"));
    if (!f) {
      PyErr_Clear();
      return "a static or class method without a function";
    }
    return class_value_refusal(d, key, f.get(), depth + 1);
  }
  if (Py_IS_TYPE(value, &PyProperty_Type)) {
    for (const char* part : {"fget", "fset", "fdel"}) {
      Ref f = Ref::steal(PyObject_GetAttrString(value, part));
      if (!f) {
        PyErr_Clear();
        return "a property without its functions";
      }
      if (f.get() == Py_None) continue;
      // a property's functions are called on every access: as if they stood under a called name
      std::string why = class_value_refusal(d, nullptr, f.get(), depth + 1);
      if (!why.empty()) return why;
    }
    return "";
  }
  if (PyType_Check(value)) {
    auto* t = reinterpret_cast<PyTypeObject*>(value);
    if (!key || called_by_name(key))
      return std::string("the class ") + t->tp_name +
             " under a name that is called (it would be constructed with the interpreter's arguments)";
    if (allowlist::callable_class(value) || (d.stream_class(value) && constructed_by_safe_code(d, t))) return "";
    return std::string("the class ") + t->tp_name +
           ", which loading may not call (library code may call a class's attributes)";
  }
  if (is_c_descriptor(value)) return "";
  if (!PyCallable_Check(value) && !Py_TYPE(value)->tp_descr_get) return "";  // data
  return std::string("a ") + Py_TYPE(value)->tp_name + " (a callable or descriptor that is not the snapshot's own function)";
}

// Whether `value` is what the class inherits under `key` anyway (EnumType.__prepare__ copies
// Enum._generate_next_value_ into the namespace): no capability beyond inheritance.
bool inherited(PyObject* bases, PyObject* key, PyObject* value) {
  for (Py_ssize_t i = 0; bases && i < PyTuple_GET_SIZE(bases); ++i) {
    PyObject* base = PyTuple_GET_ITEM(bases, i);
    if (!PyType_Check(base)) continue;
    PyObject* have = internals::type_lookup(reinterpret_cast<PyTypeObject*>(base), key);
    if (!have) continue;
    if (have == value) return true;
    if (Py_IS_TYPE(have, &PyStaticMethod_Type) || Py_IS_TYPE(have, &PyClassMethod_Type)) {
      Ref f = Ref::steal(PyObject_GetAttrString(have, "__func__"));
      PyErr_Clear();
      if (f.get() == value) return true;
    }
  }
  return false;
}

// Whether `func` is a function some class of the bases' MROs defines (plain, or as a class or
// static method): what EnumType stores bound in an Enum's namespace (_iter_member_ is
// _iter_member_by_value_ bound to the class).
bool defined_by_bases(PyObject* bases, PyObject* func) {
  for (Py_ssize_t i = 0; bases && i < PyTuple_GET_SIZE(bases); ++i) {
    PyObject* base = PyTuple_GET_ITEM(bases, i);
    if (!PyType_Check(base)) continue;
    PyObject* mro = reinterpret_cast<PyTypeObject*>(base)->tp_mro;
    for (Py_ssize_t j = 0; mro && j < PyTuple_GET_SIZE(mro); ++j) {
      PyObject* dict = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, j))->tp_dict;
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (dict && PyDict_Next(dict, &pos, &k, &v)) {
        if (v == func) return true;
        if (Py_IS_TYPE(v, &PyStaticMethod_Type) || Py_IS_TYPE(v, &PyClassMethod_Type)) {
          Ref f = Ref::steal(PyObject_GetAttrString(v, "__func__"));
          PyErr_Clear();
          if (f.get() == func) return true;
        }
      }
    }
  }
  return false;
}

void check_class_value(HeapDecoder& d, PyObject* cls_name, PyObject* bases, PyObject* key, PyObject* value) {
  if (d.program()) return;
  // A finalizer would run the snapshot's code (or a library __del__ on its state) when an object
  // of the class dies, after the load: in the namespace (Enum members are made with the class) as
  // in ClassState.
  if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "__del__") == 0) {
    const char* c = PyUnicode_Check(cls_name) ? PyUnicode_AsUTF8(cls_name) : nullptr;
    PyErr_Clear();
    d.corrupt(std::string("class ") + (c ? c : "?") + " from the snapshot would have __del__ (it would run "
              "code when an object dies)");
  }
  std::string why = class_value_refusal(d, key, value);
  if (!why.empty() && inherited(bases, key, value)) return;
  if (!why.empty() && PyMethod_Check(value) && PyType_Check(PyMethod_GET_SELF(value)) &&
      (d.stream_function(PyMethod_GET_FUNCTION(value)) || defined_by_bases(bases, PyMethod_GET_FUNCTION(value))))
    return;  // a class's own (or inherited) method bound to a class
  if (why.empty()) return;
  const char* c = PyUnicode_Check(cls_name) ? PyUnicode_AsUTF8(cls_name) : nullptr;
  const char* k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : nullptr;
  PyErr_Clear();
  d.corrupt(std::string("class ") + (c ? c : "?") + " from the snapshot would hold, as " + (k ? k : "?") + ", " + why);
}

}  // namespace

void decode_class(HeapDecoder& d, uint8_t op) {
  if (static_cast<Op>(op) == Op::Class) {
    Ref ns = d.pop();
    Ref bases = d.pop();
    Ref name = d.pop();
    Ref meta = d.pop();
    if (!PyType_Check(meta.get()) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(meta.get()), &PyType_Type))
      d.corrupt("Class metaclass is not a subclass of type");
    if (!PyUnicode_Check(name.get()) || !PyTuple_Check(bases.get()) || !PyDict_CheckExact(ns.get()))
      d.corrupt("Class needs a name, a tuple of bases and a dict");
    if (!d.program() && d.derives_from_stream_class(reinterpret_cast<PyTypeObject*>(meta.get())))
      d.corrupt("Class with a metaclass from the snapshot (loading an object graph never runs the snapshot's own metaclass)");
    {
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (PyDict_Next(ns.get(), &pos, &k, &v)) check_class_value(d, name.get(), bases.get(), k, v);
    }
    // As a class statement does: the metaclass's __prepare__ makes the namespace (an Enum's
    // members are defined by storing their values in EnumType's namespace).
    Ref prepared = Ref::steal(PyObject_CallMethod(meta.get(), "__prepare__", "OO", name.get(), bases.get()));
    if (!prepared) d.refused("Class");
    if (!PyDict_CheckExact(prepared.get())) {
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      while (PyDict_Next(ns.get(), &pos, &k, &v))
        if (PyObject_SetItem(prepared.get(), k, v) < 0) d.refused("Class");
      ns = prepared;
    }
    Ref args = Ref::steal(PyTuple_Pack(3, name.get(), bases.get(), ns.get()));
    PyObject* cls = PyObject_Call(meta.get(), args.get(), nullptr);
    if (!cls) d.refused("Class");
    if (!PyType_Check(cls)) {
      Py_DECREF(cls);
      d.corrupt("Class: the metaclass did not make a class");
    }
    d.built_class(cls);
    return d.push(cls);
  }
  Ref state = d.pop();
  PyObject* cls = d.peek();
  if (!PyType_Check(cls) || !PyDict_CheckExact(state.get())) d.corrupt("ClassState needs a class and a dict");
  if (!d.stream_class(cls))
    d.corrupt(std::string("ClassState on ") + reinterpret_cast<PyTypeObject*>(cls)->tp_name +
              ", a class this load did not make (loading changes no class that existed before it)");
  PyObject* cls_name = reinterpret_cast<PyHeapTypeObject*>(cls)->ht_name;
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(state.get(), &pos, &k, &v)) {
    if (!PyUnicode_CheckExact(k)) d.corrupt("ClassState with a name that is not a str");
    for (const char* refused : {"__class__", "__bases__", "__dict__", "__mro__"})
      if (PyUnicode_CompareWithASCIIString(k, refused) == 0)
        d.corrupt(std::string("ClassState sets ") + refused + ", which the writer never does");
    if (!d.program() && PyUnicode_CompareWithASCIIString(k, "__del__") == 0)
      d.corrupt("ClassState sets __del__ (it would run the snapshot's code when an object dies)");
    check_class_value(d, cls_name, reinterpret_cast<PyTypeObject*>(cls)->tp_bases, k, v);
    if (PyObject_SetAttr(cls, k, v) < 0) d.refused("ClassState");
  }
}

}  // namespace stasis::restore
