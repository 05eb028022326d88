// restore/object_decoder.cpp — Reduce, NewObj, Build, ListItems/DictItems, Registered and
// ExceptionState. Counterpart: snapshot/object_encoder.cpp.
// The callables this file may run are exactly those FORMAT.md lists ("What loading may import and
// call"; the lists are core/allowlist.h): a value type, an exception or Enum class, a reducer
// (with arguments it accepts), functools.partial of a value type (operator.methodcaller),
// operator.getitem of a typing object (List[int]), a class's __new__, an importable class's own
// __setstate__, append/__setitem__ of the class of an object this load made, and the load
// function of a handler registered in this process. Methods are looked up on the class, never on
// the object (whose __dict__ the snapshot wrote). In a program's own snapshot the program's
// classes may be called too (Trust::Program); in an object graph their code never runs.
#include <string>
#include <vector>

#include "core/allowlist.h"
#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/python_error.h"
#include "core/python_import.h"
#include "restore/decoders.h"
#include "restore/effect_guard.h"

using stasis::format::Op;

namespace stasis::restore {
namespace {

std::string type_name(PyObject* o) {
  return PyType_Check(o) ? reinterpret_cast<PyTypeObject*>(o)->tp_name : Py_TYPE(o)->tp_name;
}

// Calls the attribute `name` of `obj`'s class, bound to obj (as the interpreter calls a special
// method): never an attribute the snapshot put in obj's own __dict__. nullptr: no such attribute.
Ref call_class_method(PyObject* obj, PyObject* name, PyObject* arg, PyObject* arg2 = nullptr) {
  PyObject* attr = internals::type_lookup(Py_TYPE(obj), name);  // borrowed
  if (!attr) return Ref();
  Ref keep = Ref::borrow(attr);
  Ref bound;
  if (descrgetfunc get = Py_TYPE(attr)->tp_descr_get) {
    bound = Ref::steal(get(attr, obj, reinterpret_cast<PyObject*>(Py_TYPE(obj))));
    if (!bound) throw Error::python();
  } else {
    bound = keep;
  }
  Ref r = Ref::steal(arg2 ? PyObject_CallFunctionObjArgs(bound.get(), arg, arg2, nullptr)
                          : PyObject_CallOneArg(bound.get(), arg));
  if (!r) throw Error::python();
  return r;
}

// A new object an object graph may not hold: one of a Python class with a finalizer (__del__, or
// an io class's close() at finalization), which would run the class's code on state the
// snapshot wrote when the object dies — a tempfile closer unlinking a path, a Popen reaping a pid.
void check_new_object(HeapDecoder& d, PyObject* obj, const char* op) {
  PyTypeObject* t = Py_TYPE(obj);
  if (d.program()) return;
  if ((t->tp_flags & Py_TPFLAGS_HEAPTYPE) && (t->tp_finalize || t->tp_del))
    d.corrupt(std::string(op) + " of a " + t->tp_name +
              ", a class with a finalizer (__del__) that would run on the snapshot's state");
}

// Where `cls.__new__` comes from: the first class of its MRO that defines __new__.
PyTypeObject* new_owner(PyTypeObject* type) {
  PyObject* mro = type->tp_mro;
  for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); ++i) {
    auto* t = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, i));
    if (t->tp_dict && PyDict_GetItemString(t->tp_dict, "__new__")) return t;
  }
  return &PyBaseObject_Type;
}

}  // namespace

Ref new_object(HeapDecoder& d, Ref cls, Ref args, PyObject* kwargs);

void decode_reduce(HeapDecoder& d, uint8_t) {
  Ref args = d.pop();
  Ref callable = d.pop();
  if (!PyTuple_Check(args.get())) d.corrupt("Reduce arguments are not a tuple");
  bool program_class = d.program() && PyType_Check(callable.get()) && d.stream_class(callable.get());
  if (!program_class) {
    std::string why = allowlist::reduce_refusal(callable.get(), args.get());
    if (!why.empty()) d.corrupt("Reduce refused: " + why);
  }
  if (const char* reducer = allowlist::reducer_name(callable.get())) {
    std::string r(reducer);
    if (r == "__newobj_ex__") {  // made as NewObj makes objects, never by copyreg's code
      PyObject* a = args.get();
      return d.push(new_object(d, Ref::borrow(PyTuple_GET_ITEM(a, 0)), Ref::borrow(PyTuple_GET_ITEM(a, 1)),
                               PyTuple_GET_ITEM(a, 2)));
    }
    if (r == "getattr" && !d.program()) {
      // An object built from the snapshot: only what its class's C methods give (a bound method);
      // a property or __getattr__ of the snapshot's own class never runs (the guard refuses it).
      PyObject* obj = PyTuple_GET_ITEM(args.get(), 0);
      if (d.derives_from_stream_class(Py_TYPE(obj)) && Py_TYPE(obj)->tp_getattro != PyObject_GenericGetAttr)
        d.corrupt("Reduce refused: getattr on an object whose class (from the snapshot) overrides attribute access");
    }
  }
  // An exception or Enum class from the snapshot is called with the interpreter's and the enum
  // module's code; any code of the snapshot's own it would reach is refused by the guard.
  PyObject* r = PyObject_Call(callable.get(), args.get(), nullptr);
  if (!r) d.refused("Reduce");
  d.mark_if_shared(r);
  Ref result = Ref::steal(r);
  check_new_object(d, r, "Reduce");
  d.push(std::move(result));
}

// cls.__new__(cls, *args, **kwargs) (kwargs may be null) for NewObj and for Reduce of
// copyreg.__newobj_ex__, with the checks of which __new__ loading calls.
Ref new_object(HeapDecoder& d, Ref cls, Ref args, PyObject* kwargs) {
  if (!PyType_Check(cls.get())) d.corrupt("NewObj of something that is not a class");
  if (!PyTuple_Check(args.get())) d.corrupt("NewObj arguments are not a tuple");
  auto* type = reinterpret_cast<PyTypeObject*>(cls.get());
  // Classes, code objects, functions, modules, cells and weak references are made only by their
  // own ops, which check them (a type.__new__ here would make a class around Class's checks).
  if (PyType_IsSubtype(type, &PyType_Type) || type == &PyCode_Type || type == &PyFunction_Type ||
      PyType_IsSubtype(type, &PyModule_Type) || type == &PyCell_Type ||
      PyType_IsSubtype(type, &_PyWeakref_RefType) || type == &_PyWeakref_ProxyType ||
      type == &_PyWeakref_CallableProxyType)
    d.corrupt(std::string("NewObj of ") + type->tp_name + ", which only its own op makes");
  // __new__ of a C type allocates in some cases what no byte of the snapshot justifies, or
  // touches the system (mmap, a named semaphore): only object's, the value types' and the
  // exceptions' C __new__ run; a Python __new__ is the class's own code (the guard keeps the
  // snapshot's from running in an object graph).
  PyTypeObject* owner = new_owner(type);
  if (!(owner->tp_flags & Py_TPFLAGS_HEAPTYPE) && owner != &PyBaseObject_Type &&
      !allowlist::value_type(reinterpret_cast<PyObject*>(owner)) &&
      !PyType_IsSubtype(owner, reinterpret_cast<PyTypeObject*>(PyExc_BaseException)) &&
      std::string(owner->tp_name) != "_io.StringIO" && std::string(owner->tp_name) != "_io.BytesIO")
    d.corrupt(std::string("NewObj of ") + type->tp_name + ", whose __new__ (" + owner->tp_name +
              "'s) loading does not call");
  if ((owner == &PyBytes_Type || owner == &PyByteArray_Type) && PyTuple_GET_SIZE(args.get()) > 0 &&
      PyLong_Check(PyTuple_GET_ITEM(args.get(), 0)))
    d.corrupt("NewObj of bytes of a size (an allocation the snapshot's bytes do not justify)");
  PyObject* r;
  if (!d.program() && PyType_IsSubtype(type, &PyTuple_Type) && d.stream_class(reinterpret_cast<PyObject*>(owner))) {
    // A tuple class from the snapshot with a __new__ of its own (collections.namedtuple's is
    // `tuple.__new__(cls, (a, b))`): made by tuple.__new__ from the new-args, without its code.
    Ref packed = Ref::steal(PyTuple_Pack(1, args.get()));
    if (!packed) throw Error::python();
    r = PyTuple_Type.tp_new(type, packed.get(), nullptr);
  } else if (type->tp_new == PyBaseObject_Type.tp_new && PyTuple_GET_SIZE(args.get()) == 0 && !kwargs) {
    // object.__new__(cls): what every plain instance needs; checks abstract methods itself.
    r = type->tp_new(type, args.get(), nullptr);
  } else {
    // cls.__new__(cls, *args): the safe route, which checks that cls may be created this way.
    Ref new_fn = Ref::steal(PyObject_GetAttrString(cls.get(), "__new__"));
    if (!new_fn) d.refused("NewObj");
    Py_ssize_t n = PyTuple_GET_SIZE(args.get());
    Ref full = Ref::steal(PyTuple_New(n + 1));
    if (!full) throw Error::python();
    PyTuple_SET_ITEM(full.get(), 0, Py_NewRef(cls.get()));
    for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(full.get(), i + 1, Py_NewRef(PyTuple_GET_ITEM(args.get(), i)));
    r = PyObject_Call(new_fn.get(), full.get(), kwargs);
  }
  if (!r) d.refused("NewObj");
  d.mark_if_shared(r);
  Ref result = Ref::steal(r);
  check_new_object(d, r, "NewObj");
  return result;
}

void decode_newobj(HeapDecoder& d, uint8_t) {
  Ref args = d.pop();
  Ref cls = d.pop();
  d.push(new_object(d, std::move(cls), std::move(args), nullptr));
}

void decode_build(HeapDecoder& d, uint8_t) {
  Ref state = d.pop();
  PyObject* obj = d.target(0, "Build");
  if (PyType_Check(obj) || PyModule_Check(obj))
    d.corrupt(std::string("Build on a ") + Py_TYPE(obj)->tp_name + " (only instances take Build state)");
  static PyObject* name = PyUnicode_InternFromString("__setstate__");
  if (internals::type_lookup(Py_TYPE(obj), name)) {  // the class's own __setstate__, never obj's attribute
    try {
      call_class_method(obj, name, state.get());
    } catch (const Error& e) {
      if (e.code() != ErrorCode::PythonError) throw;
      d.refused("Build (__setstate__)");
    }
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
    PyObject** dictptr = internals::object_dict_pointer(obj);
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
    while (PyDict_Next(slot_state, &pos, &k, &v)) {
      // Only __slots__ members: a name that is a property or __class__ would run the class's
      // code or change what the object is.
      PyObject* descr = PyUnicode_CheckExact(k) ? internals::type_lookup(Py_TYPE(obj), k) : nullptr;
      if (!descr || !Py_IS_TYPE(descr, &PyMemberDescr_Type))
        d.corrupt("Build slot state names something that is not a __slots__ member of " +
                  std::string(Py_TYPE(obj)->tp_name));
      if (PyObject_GenericSetAttr(obj, k, v) < 0) d.refused("Build (slots)");
    }
  }
}

void decode_items(HeapDecoder& d, uint8_t op) {
  bool pairs = static_cast<Op>(op) == Op::DictItems;
  const char* label = pairs ? "DictItems" : "ListItems";
  uint64_t k = d.in().uvar();
  d.need(k, pairs ? 2 : 1, 1, label);
  uint64_t values = pairs ? 2 * k : k;
  std::vector<Ref> items(values);
  for (uint64_t i = values; i-- > 0;) items[i] = d.pop();
  PyObject* obj = d.target(0, label);
  if (PyType_Check(obj) || PyModule_Check(obj)) d.corrupt(std::string(label) + " on a " + Py_TYPE(obj)->tp_name);
  try {
    if (pairs) {
      if (PyDict_CheckExact(obj)) {
        for (uint64_t i = 0; i < values; i += 2)
          if (PyDict_SetItem(obj, items[i].get(), items[i + 1].get()) < 0) throw Error::python();
        return;
      }
      static PyObject* setitem = PyUnicode_InternFromString("__setitem__");
      for (uint64_t i = 0; i < values; i += 2)
        if (!call_class_method(obj, setitem, items[i].get(), items[i + 1].get()))
          d.corrupt(std::string("DictItems on a ") + Py_TYPE(obj)->tp_name + ", which has no __setitem__");
      return;
    }
    if (PyList_CheckExact(obj)) {
      for (const Ref& v : items)
        if (PyList_Append(obj, v.get()) < 0) throw Error::python();
      return;
    }
    static PyObject* append = PyUnicode_InternFromString("append");
    for (const Ref& v : items)
      if (!call_class_method(obj, append, v.get()))
        d.corrupt(std::string("ListItems on a ") + Py_TYPE(obj)->tp_name + ", which has no append");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::PythonError) throw;
    d.refused(label);
  }
}

void decode_registered(HeapDecoder& d, uint8_t) {
  Ref state = d.pop();
  Ref key = d.pop();
  if (!PyUnicode_Check(key.get())) d.corrupt("Registered key is not a str");
  PyObject* load = d.handlers().loaders ? PyDict_GetItemWithError(d.handlers().loaders, key.get()) : nullptr;
  if (!load && !PyErr_Occurred() && d.handlers().finder) {
    // A built-in handler of a library module not imported here (numpy's, in a fresh process):
    // the finder imports that module (from a fixed table), as pickle would, and registers its
    // handlers.
    Ref found;
    {
      EffectGuard::LibraryImport scope(d.effects());
      found = Ref::steal(PyObject_CallOneArg(d.handlers().finder, key.get()));
    }
    if (found && PyObject_IsTrue(found.get()) == 1)
      load = PyDict_GetItemWithError(d.handlers().loaders, key.get());
  }
  if (!load) {
    PyErr_Clear();
    const char* k = PyUnicode_AsUTF8(key.get());
    if (!k) PyErr_Clear();
    throw Error(ErrorCode::IncompatibleSnapshot,
                std::string("the snapshot holds an object saved by the handler registered as '") +
                    (k ? k : "?") + "', and no handler of that name is registered here (stasis.register)");
  }
  PyObject* r;
  {
    EffectGuard::Handler scope(d.effects());  // it may reopen files and make sockets
    r = PyObject_CallOneArg(load, state.get());
  }
  if (!r) {
    // A handler's own error (SnapshotIOError: a file that is gone) stands; any other means the
    // handler does not accept the state the snapshot gives it.
    if (HeapDecoder::stasis_error_set()) throw Error::python();
    const char* k = PyUnicode_AsUTF8(key.get());
    if (!k) PyErr_Clear();
    d.refused(std::string("the handler registered as '") + (k ? k : "?") + "' refused the snapshot's state");
  }
  d.mark_if_shared(r);
  d.push(r);
}

void decode_exception_state(HeapDecoder& d, uint8_t) {
  Ref suppress = d.pop();
  Ref context = d.pop();
  Ref cause = d.pop();
  PyObject* exc = d.target(0, "ExceptionState");
  if (!PyExceptionInstance_Check(exc)) d.corrupt("ExceptionState on a non-exception");
  auto valid = [](PyObject* o) { return o == Py_None || PyExceptionInstance_Check(o); };
  if (!valid(cause.get()) || !valid(context.get())) d.corrupt("ExceptionState cause/context is not an exception");
  if (cause.get() != Py_None) PyException_SetCause(exc, cause.release());
  if (context.get() != Py_None) PyException_SetContext(exc, context.release());
  reinterpret_cast<PyBaseExceptionObject*>(exc)->suppress_context = suppress.get() == Py_True;
}

}  // namespace stasis::restore
