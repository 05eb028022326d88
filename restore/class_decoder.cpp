// restore/class_decoder.cpp — Class (metaclass(name, bases, namespace)) and ClassState (every
// other attribute, set after the class has its memo id). Counterpart: snapshot/class_encoder.cpp.
#include "core/error.h"
#include "restore/decoders.h"

using stasis::format::Op;

namespace stasis::restore {

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
    return d.push(cls);
  }
  Ref state = d.pop();
  PyObject* cls = d.peek();
  if (!PyType_Check(cls) || !PyDict_CheckExact(state.get())) d.corrupt("ClassState needs a class and a dict");
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(state.get(), &pos, &k, &v))
    if (PyObject_SetAttr(cls, k, v) < 0) d.refused("ClassState");
}

}  // namespace stasis::restore
