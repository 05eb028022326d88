// snapshot/object_encoder.cpp — instances: registered handlers (stasis.register), plain
// instances of Python classes (__dict__ and __slots__, nothing called), and the reduce protocol
// (copyreg.dispatch_table or __reduce_ex__(5), as pickle) for everything else, plus exceptions'
// __cause__/__context__. Counterpart: restore/object_decoder.cpp.
// Reduce callables are checked here as loading checks them (core/allowlist.h): a snapshot never
// asks the loader to call what it would refuse.
#include <cstring>
#include <string>

#include "core/allowlist.h"
#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/python_import.h"
#include "core/python_error.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {
namespace {

using format::kBatch;

struct Known {
  Ref dispatch_table, newobj, newobj_ex, slotnames, enum_type;
  PyObject* object_reduce_ex = nullptr;
  PyObject* object_reduce = nullptr;
  PyObject* object_getstate = nullptr;
};

const Known& known() {
  static Known* k = [] {
    auto* k = new Known;
    k->dispatch_table = import_attr("copyreg", "dispatch_table");
    k->newobj = import_attr("copyreg", "__newobj__");
    k->newobj_ex = import_attr("copyreg", "__newobj_ex__");
    k->slotnames = import_attr("copyreg", "_slotnames");
    k->enum_type = import_attr("enum", "EnumType");
    PyObject* base = reinterpret_cast<PyObject*>(&PyBaseObject_Type);
    k->object_reduce_ex = PyDict_GetItemString(PyBaseObject_Type.tp_dict, "__reduce_ex__");
    k->object_reduce = PyDict_GetItemString(PyBaseObject_Type.tp_dict, "__reduce__");
    k->object_getstate = PyDict_GetItemString(PyBaseObject_Type.tp_dict, "__getstate__");
    (void)base;
    return k;
  }();
  return *k;
}

std::string describe(PyObject* callable) {
  Ref m = Ref::steal(PyObject_GetAttrString(callable, "__module__"));
  if (!m) PyErr_Clear();
  Ref q = Ref::steal(PyObject_GetAttrString(callable, "__qualname__"));
  if (!q) PyErr_Clear();
  std::string out;
  if (m && PyUnicode_Check(m.get())) out = std::string(PyUnicode_AsUTF8(m.get())) + ".";
  if (q && PyUnicode_Check(q.get())) out += PyUnicode_AsUTF8(q.get());
  else out += Py_TYPE(callable)->tp_name;
  return out;
}

// Why loading would refuse Reduce(callable, args), or "". Besides what every snapshot may call
// (core/allowlist.h), a program's own snapshot may call a class written by value: the program's
// class (restore/object_decoder.cpp); loading an object graph never runs such a class's code.
std::string reduce_refusal(HeapEncoder& e, PyObject* callable, PyObject* args) {
  std::string why = allowlist::reduce_refusal(callable, args);
  if (why.empty() || !PyType_Check(callable) || !e.writes_program()) return why;
  auto* type = reinterpret_cast<PyTypeObject*>(callable);
  if (is_python_class(type) && !findable_by_name(e, callable)) return "";
  return why;
}

// A plain instance: a Python class over object whose pickling methods are object's own, so its
// state is exactly __dict__ and __slots__ and it is created by object.__new__.
// Returns 0 (not plain), 1 (plain, no slots) or 2 (plain, with __slots__); cached per walk.
int plain_kind(HeapEncoder& e, PyTypeObject* type) {
  auto& facts = e.type_facts();
  auto it = facts.find(type);
  if (it != facts.end()) return it->second;
  const Known& k = known();
  auto lookup = [&](const char* name) {
    Ref n = Ref::steal(PyUnicode_FromString(name));
    return internals::type_lookup(type, n.get());
  };
  bool plain = is_python_class(type) && type->tp_new == PyBaseObject_Type.tp_new &&
               !PyType_IsSubtype(type, reinterpret_cast<PyTypeObject*>(PyExc_BaseException)) &&
               lookup("__reduce_ex__") == k.object_reduce_ex && lookup("__reduce__") == k.object_reduce &&
               lookup("__getstate__") == k.object_getstate && !lookup("__getnewargs_ex__") &&
               !lookup("__getnewargs__") &&
               !PyDict_GetItem(k.dispatch_table.get(), reinterpret_cast<PyObject*>(type));
  int kind = 0;
  if (plain) {
    kind = 1;
    if (type->tp_basicsize > PyBaseObject_Type.tp_basicsize) {
      // Possibly __slots__: copyreg._slotnames lists them (and caches them on the class).
      Ref names = Ref::steal(PyObject_CallOneArg(k.slotnames.get(), reinterpret_cast<PyObject*>(type)));
      if (!names) throw Error::python();
      if (PyList_GET_SIZE(names.get()) > 0) kind = 2;
    }
  }
  facts.emplace(type, kind);
  return kind;
}

void save_items(Plan& plan, PyObject* list, format::Op op, uint64_t per_item, const char* label) {
  Py_ssize_t n = PyList_GET_SIZE(list);
  uint64_t pending = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyList_GET_ITEM(list, i);
    if (per_item == 2) {
      if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
        throw Error(ErrorCode::UnsupportedObject, "dictitems of a reduce value are not pairs");
      plan.save(PyTuple_GET_ITEM(item, 0), label).save(PyTuple_GET_ITEM(item, 1), label);
    } else {
      plan.save(item, label);
    }
    if (++pending == kBatch) {
      plan.op(op, pending);
      pending = 0;
    }
  }
  if (pending) plan.op(op, pending);
}

}  // namespace

bool encode_registered(HeapEncoder& e, PyObject* obj) {
  PyObject* savers = e.handlers().savers;
  if (!savers || PyDict_GET_SIZE(savers) == 0) return false;
  PyObject* entry = nullptr;
  PyObject* mro = Py_TYPE(obj)->tp_mro;
  for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro) && !entry; ++i)
    entry = PyDict_GetItem(savers, PyTuple_GET_ITEM(mro, i));
  if (!entry) return false;
  PyObject* key = PyTuple_GET_ITEM(entry, 0);
  PyObject* save = PyTuple_GET_ITEM(entry, 1);
  Ref state = Ref::steal(PyObject_CallOneArg(save, obj));
  if (!state) {
    e.unsupported(obj, "its registered save function failed: " + take_python_error());
  }
  Plan plan(obj);
  plan.save(key).save(state, ".<registered state>").atomic(format::Op::Registered, 2);
  e.run(std::move(plan));
  return true;
}

bool encode_plain_instance(HeapEncoder& e, PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  int kind = plain_kind(e, type);
  if (kind == 0) return false;
  Ref dict;
  if (type->tp_dictoffset != 0 || (type->tp_flags & Py_TPFLAGS_MANAGED_DICT)) {
    dict = Ref::steal(PyObject_GenericGetDict(obj, nullptr));
    if (!dict) throw Error::python();
  }
  Ref state;
  if (kind == 2) {
    Ref names = Ref::steal(PyObject_CallOneArg(known().slotnames.get(), reinterpret_cast<PyObject*>(type)));
    if (!names) throw Error::python();
    Ref slots = Ref::steal(PyDict_New());
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names.get()); ++i) {
      PyObject* name = PyList_GET_ITEM(names.get(), i);
      Ref v = Ref::steal(PyObject_GetAttr(obj, name));
      if (!v) {
        PyErr_Clear();  // an unset slot stays unset
        continue;
      }
      if (PyDict_SetItem(slots.get(), name, v.get()) < 0) throw Error::python();
    }
    state = Ref::steal(PyTuple_Pack(2, dict && PyDict_GET_SIZE(dict.get()) ? dict.get() : Py_None, slots.get()));
  } else if (dict && PyDict_GET_SIZE(dict.get()) > 0) {
    state = dict;
  }
  Plan plan(obj);
  // Atomic: a class written by value may reach this instance through its own __dict__.
  plan.save(reinterpret_cast<PyObject*>(type), ".__class__").op(format::Op::Tuple, 0)
      .atomic(format::Op::NewObj, 2);
  if (state) plan.save(state, ".__dict__").op(format::Op::Build);
  e.run(std::move(plan));
  return true;
}

void encode_reduce(HeapEncoder& e, PyObject* obj) {
  const Known& k = known();
  PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(obj));
  if (PyObject_IsInstance(type, k.enum_type.get()) == 1) {
    // An enum member (or a Flag combination) is its class called with its value: the member
    // itself, also when the class is written by value (Flag's own reduce calls operator.or_).
    Ref value = Ref::steal(PyObject_GetAttrString(obj, "_value_"));
    if (!value) throw Error::python();
    Ref args = Ref::steal(PyTuple_Pack(1, value.get()));
    if (!args) throw Error::python();
    Plan plan(obj);
    plan.save(type, ".__class__").save(args, "._value_").atomic(format::Op::Reduce, 2);
    return e.run(std::move(plan));
  }
  Ref rv;
  if (PyObject* reducer = PyDict_GetItem(k.dispatch_table.get(), type)) {
    rv = Ref::steal(PyObject_CallOneArg(reducer, obj));
  } else {
    Ref method = Ref::steal(PyObject_GetAttrString(obj, "__reduce_ex__"));
    if (method) rv = Ref::steal(PyObject_CallFunction(method.get(), "i", 5));
  }
  if (!rv) {
    e.unsupported(obj, take_python_error("it has no reduce support"));
  }
  if (PyUnicode_Check(rv.get())) {  // "a global": the object is module.<name>
    Ref module = Ref::steal(PyObject_GetAttrString(obj, "__module__"));
    if (!module || !PyUnicode_Check(module.get())) e.unsupported(obj, "reduces to a name without a module");
    if (e.by_value_module(PyUnicode_AsUTF8(module.get())))
      e.unsupported(obj, std::string("it is saved by its name ") + PyUnicode_AsUTF8(module.get()) + "." +
                             PyUnicode_AsUTF8(rv.get()) + ", but that module is restored from the snapshot "
                             "itself; register a handler with stasis.register");
    Plan plan(obj);
    plan.save(module).save(rv).atomic(format::Op::Global, 2);
    return e.run(std::move(plan));
  }
  Py_ssize_t n = PyTuple_Check(rv.get()) ? PyTuple_GET_SIZE(rv.get()) : 0;
  if (n < 2 || n > 6) e.unsupported(obj, "__reduce_ex__ returned neither a tuple of 2 to 6 items nor a str");
  auto item = [&](Py_ssize_t i) { return i < n ? PyTuple_GET_ITEM(rv.get(), i) : Py_None; };
  PyObject* callable = item(0);
  PyObject* args = item(1);
  PyObject* state = item(2);
  if (item(5) != Py_None) e.unsupported(obj, "a reduce value with a state setter");
  if (!PyTuple_Check(args)) e.unsupported(obj, "reduce arguments are not a tuple");
  Plan plan(obj);
  if (callable == k.newobj.get() || callable == k.newobj_ex.get()) {
    Py_ssize_t na = PyTuple_GET_SIZE(args);
    PyObject* cls = na > 0 ? PyTuple_GET_ITEM(args, 0) : nullptr;
    if (!cls || !PyType_Check(cls)) e.unsupported(obj, "copyreg.__newobj__ without a class");
    Ref rest;
    bool keywords = false;
    if (callable == k.newobj.get()) {
      rest = Ref::steal(PyTuple_GetSlice(args, 1, na));
    } else {
      if (na != 3 || !PyTuple_Check(PyTuple_GET_ITEM(args, 1)) ||
          (PyTuple_GET_ITEM(args, 2) != Py_None && !PyDict_Check(PyTuple_GET_ITEM(args, 2))))
        e.unsupported(obj, "copyreg.__newobj_ex__ without (class, args, kwargs)");
      keywords = PyTuple_GET_ITEM(args, 2) != Py_None && PyDict_GET_SIZE(PyTuple_GET_ITEM(args, 2)) != 0;
      std::string why = keywords ? allowlist::reduce_refusal(callable, args) : "";
      if (!why.empty()) e.unsupported(obj, why);
      rest = Ref::borrow(PyTuple_GET_ITEM(args, 1));
    }
    if (keywords)  // cls.__new__(cls, *args, **kwargs): a Reduce of copyreg.__newobj_ex__ itself
      plan.save(callable, ".<reduce callable>").save(args, ".<new args>").atomic(format::Op::Reduce, 2);
    else
      plan.save(cls, ".__class__").save(rest, ".<new args>").atomic(format::Op::NewObj, 2);
  } else {
    std::string why = reduce_refusal(e, callable, args);
    if (!why.empty())
      e.unsupported(obj, "it reduces to " + describe(callable) + ", which loading may not call (" + why +
                             "); register a handler with stasis.register");
    plan.save(callable, ".<reduce callable>").save(args, ".<reduce args>").atomic(format::Op::Reduce, 2);
  }
  if (state != Py_None) plan.save(state, ".<state>").op(format::Op::Build);
  if (item(3) != Py_None) {
    Ref list = Ref::steal(PySequence_List(item(3)));
    if (!list) throw Error::python();
    save_items(plan, list.get(), format::Op::ListItems, 1, ".<item>");
  }
  if (item(4) != Py_None) {
    Ref list = Ref::steal(PySequence_List(item(4)));
    if (!list) throw Error::python();
    save_items(plan, list.get(), format::Op::DictItems, 2, ".<item>");
  }
  if (PyExceptionInstance_Check(obj)) {
    Ref cause = Ref::steal(PyException_GetCause(obj));
    Ref context = Ref::steal(PyException_GetContext(obj));
    bool suppress = reinterpret_cast<PyBaseExceptionObject*>(obj)->suppress_context;
    plan.save(cause ? cause.get() : Py_None, ".__cause__")
        .save(context ? context.get() : Py_None, ".__context__")
        .save(suppress ? Py_True : Py_False)
        .op(format::Op::ExceptionState);
  }
  e.run(std::move(plan));
}

}  // namespace stasis::snapshot
