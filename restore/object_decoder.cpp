// restore/object_decoder.cpp — Reduce, NewObj, Build, ListItems/DictItems, Registered and
// ExceptionState. Counterpart: snapshot/object_encoder.cpp.
// The callables this file may run are exactly those FORMAT.md lists: a class, a reducer of
// format/schema.h kAllowedReducers, functools.partial of a class (operator.methodcaller),
// operator.getitem of a typing object (List[int]), an
// object's own __setstate__, append/extend/__setitem__ of the object being filled, and the load
// function of a handler registered in this process.
#include <string>
#include <vector>

#include "core/error.h"
#include "core/python_import.h"
#include "restore/decoders.h"

using stasis::format::Op;

namespace stasis::restore {
namespace {

bool allowed_callable(PyObject* callable) {
  static std::vector<Ref>* reducers = [] {
    auto* v = new std::vector<Ref>;
    for (const auto& r : format::kAllowedReducers) v->push_back(import_attr(r[0], r[1]));
    return v;
  }();
  static PyObject* partial = import_attr("functools", "partial").release();  // lives to exit
  if (PyType_Check(callable)) return true;
  for (const Ref& r : *reducers)
    if (r.get() == callable) return true;
  if (Py_IS_TYPE(callable, reinterpret_cast<PyTypeObject*>(partial))) {
    Ref func = Ref::steal(PyObject_GetAttrString(callable, "func"));
    if (!func) throw Error::python();
    return PyType_Check(func.get());
  }
  return false;
}

}  // namespace

void decode_reduce(HeapDecoder& d, uint8_t) {
  Ref args = d.pop();
  Ref callable = d.pop();
  if (!PyTuple_Check(args.get())) d.corrupt("Reduce arguments are not a tuple");
  static PyObject* getitem = import_attr("_operator", "getitem").release();  // lives to exit
  bool typing_subscript = callable.get() == getitem && PyTuple_GET_SIZE(args.get()) == 2 &&
                          is_typing_object(PyTuple_GET_ITEM(args.get(), 0));
  if (!typing_subscript && !allowed_callable(callable.get()))
    d.corrupt(std::string("Reduce asks to call a ") + Py_TYPE(callable.get())->tp_name +
              ", which loading never calls");
  PyObject* r = PyObject_Call(callable.get(), args.get(), nullptr);
  if (!r) d.refused("Reduce");
  d.push(r);
}

void decode_newobj(HeapDecoder& d, uint8_t) {
  Ref args = d.pop();
  Ref cls = d.pop();
  if (!PyType_Check(cls.get())) d.corrupt("NewObj of something that is not a class");
  if (!PyTuple_Check(args.get())) d.corrupt("NewObj arguments are not a tuple");
  auto* type = reinterpret_cast<PyTypeObject*>(cls.get());
  if (type->tp_new == PyBaseObject_Type.tp_new && PyTuple_GET_SIZE(args.get()) == 0) {
    // object.__new__(cls): what every plain instance needs; checks abstract methods itself.
    PyObject* r = type->tp_new(type, args.get(), nullptr);
    if (!r) d.refused("NewObj");
    return d.push(r);
  }
  // cls.__new__(cls, *args): the safe route, which checks that cls may be created this way.
  Ref new_fn = Ref::steal(PyObject_GetAttrString(cls.get(), "__new__"));
  if (!new_fn) d.refused("NewObj");
  Py_ssize_t n = PyTuple_GET_SIZE(args.get());
  Ref full = Ref::steal(PyTuple_New(n + 1));
  if (!full) throw Error::python();
  PyTuple_SET_ITEM(full.get(), 0, Py_NewRef(cls.get()));
  for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(full.get(), i + 1, Py_NewRef(PyTuple_GET_ITEM(args.get(), i)));
  PyObject* r = PyObject_Call(new_fn.get(), full.get(), nullptr);
  if (!r) d.refused("NewObj");
  d.push(r);
}

void decode_build(HeapDecoder& d, uint8_t) {
  Ref state = d.pop();
  PyObject* obj = d.peek();
  static PyObject* name = PyUnicode_InternFromString("__setstate__");
  if (_PyType_Lookup(Py_TYPE(obj), name)) {  // the class's own __setstate__ (a type lookup, cached)
    Ref r = Ref::steal(PyObject_CallMethodOneArg(obj, name, state.get()));
    if (!r) d.refused("Build (__setstate__)");
    return;
  }
  PyObject* dict_state = state.get();
  PyObject* slot_state = nullptr;
  if (PyTuple_Check(dict_state) && PyTuple_GET_SIZE(dict_state) == 2) {
    slot_state = PyTuple_GET_ITEM(state.get(), 1);
    dict_state = PyTuple_GET_ITEM(state.get(), 0);
  }
  if (dict_state != Py_None) {
    if (!PyDict_CheckExact(dict_state)) d.corrupt("Build state is not a dict");
    PyObject** dictptr = _PyObject_GetDictPtr(obj);
    if (!dictptr) d.corrupt(std::string("Build of __dict__ state on a ") + Py_TYPE(obj)->tp_name + " without __dict__");
    if ((*dictptr == nullptr || PyDict_GET_SIZE(*dictptr) == 0) && Py_REFCNT(dict_state) == 1) {
      // The state dict is ours alone: it becomes the instance's __dict__ (no copy).
      Py_XSETREF(*dictptr, Py_NewRef(dict_state));
    } else {
      if (!*dictptr) *dictptr = PyDict_New();
      if (!*dictptr || PyDict_Update(*dictptr, dict_state) < 0) d.refused("Build");
    }
  }
  if (slot_state && slot_state != Py_None) {
    if (!PyDict_CheckExact(slot_state)) d.corrupt("Build slot state is not a dict");
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(slot_state, &pos, &k, &v))
      if (PyObject_SetAttr(obj, k, v) < 0) d.refused("Build (slots)");
  }
}

void decode_items(HeapDecoder& d, uint8_t op) {
  bool pairs = static_cast<Op>(op) == Op::DictItems;
  uint64_t k = d.in().uvar();
  uint64_t values = pairs ? 2 * k : k;
  if (k > (uint64_t(1) << 40)) d.corrupt("item count out of range");
  d.need(values + 1, pairs ? "DictItems" : "ListItems");
  std::vector<Ref> items(values);
  for (uint64_t i = values; i-- > 0;) items[i] = d.pop();
  PyObject* obj = d.peek();
  if (pairs) {
    for (uint64_t i = 0; i < values; i += 2)
      if (PyObject_SetItem(obj, items[i].get(), items[i + 1].get()) < 0) d.refused("DictItems");
    return;
  }
  if (PyList_Check(obj)) {
    for (const Ref& v : items)
      if (PyList_Append(obj, v.get()) < 0) d.refused("ListItems");
    return;
  }
  Ref append = Ref::steal(PyObject_GetAttrString(obj, "append"));
  if (!append) d.refused("ListItems");
  for (const Ref& v : items)
    if (!Ref::steal(PyObject_CallOneArg(append.get(), v.get()))) d.refused("ListItems");
}

void decode_registered(HeapDecoder& d, uint8_t) {
  Ref state = d.pop();
  Ref key = d.pop();
  if (!PyUnicode_Check(key.get())) d.corrupt("Registered key is not a str");
  PyObject* load = d.registry().loaders ? PyDict_GetItem(d.registry().loaders, key.get()) : nullptr;
  if (!load)
    throw Error(ErrorCode::IncompatibleSnapshot,
                std::string("the snapshot holds an object saved by the handler registered as '") +
                    PyUnicode_AsUTF8(key.get()) +
                    "', and no handler of that name is registered here (stasis.register)");
  PyObject* r = PyObject_CallOneArg(load, state.get());
  if (!r) throw Error::python();  // the handler's own error (e.g. a file that is gone) stands
  d.push(r);
}

void decode_exception_state(HeapDecoder& d, uint8_t) {
  Ref suppress = d.pop();
  Ref context = d.pop();
  Ref cause = d.pop();
  PyObject* exc = d.peek();
  if (!PyExceptionInstance_Check(exc)) d.corrupt("ExceptionState on a non-exception");
  auto valid = [](PyObject* o) { return o == Py_None || PyExceptionInstance_Check(o); };
  if (!valid(cause.get()) || !valid(context.get())) d.corrupt("ExceptionState cause/context is not an exception");
  if (cause.get() != Py_None) PyException_SetCause(exc, cause.release());
  if (context.get() != Py_None) PyException_SetContext(exc, context.release());
  reinterpret_cast<PyBaseExceptionObject*>(exc)->suppress_context = suppress.get() == Py_True;
}

}  // namespace stasis::restore
