#include "core/allowlist.h"

#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/python_import.h"
#include "core/ref.h"

namespace stasis::allowlist {
namespace {

struct Resolved {
  std::vector<std::pair<Ref, const ValueType*>> value_types;
  // Value types whose module was not imported yet (see resolve_value_types), with the module's
  // name as an interned str.
  std::vector<std::pair<Ref, const ValueType*>> pending;
  Py_ssize_t modules_seen = -1;  // len(sys.modules) when `pending` was last looked up
  std::vector<std::pair<Ref, const char*>> reducers;
  Ref partial, getitem, enum_type, array_type;
};

// Resolved on first use (with the GIL) and kept for the life of the process. A value type whose
// module is missing here is simply not allowed.
const Resolved& resolved() {
  static Resolved* r = [] {
    auto* out = new Resolved;
    for (const ValueType& v : kValueTypes) {
      out->pending.emplace_back(Ref::steal(check(PyUnicode_InternFromString(v.module))), &v);
    }
    if (Ref ast = Ref::steal(PyImport_ImportModule("_ast"))) {
      Ref base = Ref::steal(PyObject_GetAttrString(ast.get(), "AST"));
      PyObject *key, *value;
      Py_ssize_t pos = 0;
      while (base && PyType_Check(base.get()) && PyDict_Next(PyModule_GetDict(ast.get()), &pos, &key, &value))
        if (PyType_Check(value) && PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(value),
                                                     reinterpret_cast<PyTypeObject*>(base.get())))
          out->value_types.emplace_back(Ref::borrow(value), &kAstNode);
    }
    PyErr_Clear();
    for (const Name& n : kReducers) out->reducers.emplace_back(import_attr(n.module, n.qualname), n.qualname);
    out->partial = import_attr("functools", "partial");
    out->getitem = import_attr("_operator", "getitem");
    out->enum_type = import_attr("enum", "EnumType");
    out->array_type = import_attr("array", "array");
    return out;
  }();
  return *r;
}

std::string type_name(PyObject* o) {
  if (PyType_Check(o)) return reinterpret_cast<PyTypeObject*>(o)->tp_name;
  return Py_TYPE(o)->tp_name;
}

bool exact(PyObject* o, PyTypeObject* t) { return Py_IS_TYPE(o, t); }

std::string reducer_args_refusal(const char* name, PyObject* args) {
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  auto arg = [&](Py_ssize_t i) { return PyTuple_GET_ITEM(args, i); };
  std::string r(name);
  if (r == "_reconstructor") {
    if (n != 3 || !PyType_Check(arg(0)) || !PyType_Check(arg(1)))
      return "copyreg._reconstructor needs (class, base class, state)";
    if (!PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(arg(0)), reinterpret_cast<PyTypeObject*>(arg(1))))
      return "copyreg._reconstructor of a class that does not derive from its base";
    if (arg(1) != reinterpret_cast<PyObject*>(&PyBaseObject_Type) && !value_type(arg(1)))
      return std::string("copyreg._reconstructor would call ") + type_name(arg(1)) +
             ", which is not a value type loading may call";
    return "";
  }
  if (r == "getattr") {
    if (n != 2 || !exact(arg(1), &PyUnicode_Type)) return "getattr needs (object, name) with a str name";
    return "";
  }
  if (r == "iter") {
    if (n != 1) return "iter needs exactly one argument (iter(callable, sentinel) would call the callable)";
    return "";
  }
  if (r == "_compile") {
    if (n != 2 || !(exact(arg(0), &PyUnicode_Type) || exact(arg(0), &PyBytes_Type)) ||
        !exact(arg(1), &PyLong_Type))
      return "re._compile needs (str or bytes pattern, int flags)";
    return "";
  }
  if (r == "_array_reconstructor") {
    if (n != 4 || !PyType_Check(arg(0)) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(arg(0)),
                          reinterpret_cast<PyTypeObject*>(resolved().array_type.get())) ||
        !exact(arg(1), &PyUnicode_Type) || !exact(arg(2), &PyLong_Type) || !exact(arg(3), &PyBytes_Type))
      return "array._array_reconstructor needs (array class, str, int, bytes)";
    return "";
  }
  if (r == "__newobj_ex__") {  // the decoder makes the object as NewObj does, with its checks
    if (n != 3 || !PyType_Check(arg(0)) || !exact(arg(1), &PyTuple_Type) || !exact(arg(2), &PyDict_Type))
      return "copyreg.__newobj_ex__ needs (class, tuple, dict)";
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(arg(2), &pos, &key, &value))
      if (!exact(key, &PyUnicode_Type)) return "copyreg.__newobj_ex__ with a keyword that is not a str";
    return "";
  }
  return std::string("unknown reducer ") + name;
}

}  // namespace

std::string import_refusal(std::string_view module, bool program) {
  bool test_module = module.size() > 5 && module.substr(0, 5) == "test.";
  bool autotest = module == "test.autotest" || (module.size() > 14 && module.substr(0, 14) == "test.autotest.");
  for (const char* m : kRefusedModules) {
    std::string_view r(m);
    if (program && r == "test" && (module == "test" || test_module) && !autotest) continue;
    if (module == r || (module.size() > r.size() && module.substr(0, r.size()) == r && module[r.size()] == '.'))
      return "importing module '" + std::string(module) + "' has effects of its own; loading never imports it";
  }
  if (module != "__main__") {
    size_t start = 0;
    for (;;) {
      size_t dot = module.find('.', start);
      std::string_view part = module.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
      if (part == "__main__")
        return "module '" + std::string(module) + "' is a program's entry point (its import runs it); "
               "loading never imports it";
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  return "";
}

namespace {

// The value types are taken from the modules already imported, never imported for this: a class
// of decimal, fractions, pathlib... can only be met (written, or called by a snapshot's Reduce
// after its Global op imported the module) once its module is in sys.modules, and importing them
// all up front cost every `stasis resume` about 8 ms. Looked up again whenever sys.modules has
// grown or shrunk since.
void resolve_value_types(Resolved& r) {
  if (r.pending.empty()) return;
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  Py_ssize_t size = modules ? PyDict_Size(modules) : -1;
  if (size == r.modules_seen) return;
  r.modules_seen = size;
  // Taken out first: an attribute lookup may run Python code, and a nested call must not walk
  // this list while it changes.
  std::vector<std::pair<Ref, const ValueType*>> todo = std::move(r.pending);
  r.pending.clear();
  for (auto& [name, v] : todo) {
    PyObject* m = PyDict_GetItemWithError(modules, name.get());  // borrowed
    if (!m) {
      PyErr_Clear();
      r.pending.emplace_back(std::move(name), v);
      continue;
    }
    Ref t = Ref::steal(PyObject_GetAttrString(m, v->qualname));
    if (t && PyType_Check(t.get())) {
      r.value_types.emplace_back(std::move(t), v);
    } else {
      PyErr_Clear();  // not (yet: a module being imported) a class there: looked up again later
      r.pending.emplace_back(std::move(name), v);
    }
  }
}

}  // namespace

const ValueType* value_type(PyObject* cls) {
  Resolved& r = const_cast<Resolved&>(resolved());
  resolve_value_types(r);
  for (const auto& [t, v] : r.value_types)
    if (t.get() == cls) return v;
  return nullptr;
}

bool is_reducer(PyObject* callable) { return reducer_name(callable) != nullptr; }

const char* reducer_name(PyObject* callable) {
  for (const auto& [r, name] : resolved().reducers)
    if (r.get() == callable) return name;
  return nullptr;
}

bool is_plain_value(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  return o == Py_None || t == &PyBool_Type || t == &PyLong_Type || t == &PyFloat_Type ||
         t == &PyComplex_Type || t == &PyUnicode_Type || t == &PyBytes_Type ||
         t == &PyByteArray_Type || t == &PyTuple_Type || t == &PyList_Type || t == &PyDict_Type ||
         t == &PySet_Type || t == &PyFrozenSet_Type;
}


namespace {

// Why calling the value type `type` (described by `v`) with `args` (a tuple) and `kwargs` (a dict
// or null) is refused, or "". The arguments of a type that consumes them must be plain values;
// bytes and bytearray are never given a size; a Fraction is never parsed from a string with an
// exponent (Fraction("1e1000000000") computes a number of a billion digits).
std::string value_type_call_refusal(PyTypeObject* type, const ValueType* v, PyObject* args, PyObject* kwargs) {
  if (v->args == Args::Stores) return "";
  std::vector<PyObject*> values;
  for (Py_ssize_t i = v->args == Args::FirstStored ? 1 : 0; i < PyTuple_GET_SIZE(args); ++i)
    values.push_back(PyTuple_GET_ITEM(args, i));
  PyObject *k, *value;
  Py_ssize_t pos = 0;
  while (kwargs && PyDict_Next(kwargs, &pos, &k, &value)) values.push_back(value);
  bool fraction = std::string_view(v->module) == "fractions";
  for (PyObject* a : values) {
    if (!is_plain_value(a))
      return std::string("the class ") + type->tp_name + " with an argument of type " + Py_TYPE(a)->tp_name +
             " (its constructor converts its arguments; only plain values are passed)";
    // bytes(n) and bytearray(n) allocate n bytes that no byte of the snapshot justifies.
    if ((type == &PyBytes_Type || type == &PyByteArray_Type) && PyLong_Check(a))
      return std::string("the class ") + type->tp_name + " with a size (an allocation the snapshot's bytes do not justify)";
    if (fraction && PyUnicode_Check(a)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(a, &n);
      if (!s) {
        PyErr_Clear();
        return "a Fraction of a string that is not UTF-8";
      }
      for (Py_ssize_t i = 0; i < n; ++i)
        if (s[i] == 'e' || s[i] == 'E')
          return "a Fraction of a string with an exponent (the writer writes 'numerator/denominator'; an "
                 "exponent would make loading compute a number of that many digits)";
    }
  }
  return "";
}

}  // namespace

std::string reduce_refusal(PyObject* callable, PyObject* args) {
  const Resolved& k = resolved();
  if (!PyTuple_Check(args)) return "Reduce arguments are not a tuple";
  if (const char* name = reducer_name(callable)) return reducer_args_refusal(name, args);
  if (callable == k.getitem.get()) {
    if (PyTuple_GET_SIZE(args) == 2 && is_typing_object(PyTuple_GET_ITEM(args, 0))) return "";
    return "operator.getitem is called only to subscript a typing object (List[int])";
  }
  if (Py_IS_TYPE(callable, reinterpret_cast<PyTypeObject*>(k.partial.get()))) {
    // operator.methodcaller reduces to partial(methodcaller, name, **kwargs). The partial's own
    // arguments and keywords are checked with the call's, as if func were called directly:
    // partial(dict, x) is dict(x), which calls x.keys().
    Ref f = Ref::steal(PyObject_GetAttrString(callable, "func"));
    Ref pargs = f ? Ref::steal(PyObject_GetAttrString(callable, "args")) : Ref();
    Ref pkw = pargs ? Ref::steal(PyObject_GetAttrString(callable, "keywords")) : Ref();
    if (!f || !pargs || !pkw || !PyTuple_Check(pargs.get()) || !PyDict_Check(pkw.get())) {
      PyErr_Clear();
      return "a functools.partial without func, args and keywords";
    }
    const ValueType* v = PyType_Check(f.get()) ? value_type(f.get()) : nullptr;
    if (!v)
      return std::string("a functools.partial of ") + type_name(f.get()) +
             ", which is not a value type loading may call";
    Ref all = Ref::steal(PySequence_Concat(pargs.get(), args));
    if (!all) {
      PyErr_Clear();
      return "a functools.partial whose arguments cannot be joined";
    }
    std::string why = value_type_call_refusal(reinterpret_cast<PyTypeObject*>(f.get()), v, all.get(), pkw.get());
    return why.empty() ? "" : "a functools.partial of " + why;
  }
  if (!PyType_Check(callable))
    return std::string("a ") + Py_TYPE(callable)->tp_name + ", which loading never calls";
  auto* type = reinterpret_cast<PyTypeObject*>(callable);
  if (PyType_IsSubtype(type, reinterpret_cast<PyTypeObject*>(PyExc_BaseException))) return "";
  if (PyObject_TypeCheck(callable, reinterpret_cast<PyTypeObject*>(k.enum_type.get()))) return "";
  const ValueType* v = value_type(callable);
  if (!v)
    return std::string("the class ") + type->tp_name +
           ", which is not a value type loading may call (calling it could have effects)";
  return value_type_call_refusal(type, v, args, nullptr);
}

bool callable_class(PyObject* cls) {
  if (!PyType_Check(cls)) return false;
  auto* type = reinterpret_cast<PyTypeObject*>(cls);
  if (PyType_IsSubtype(type, reinterpret_cast<PyTypeObject*>(PyExc_BaseException))) return true;
  if (PyObject_TypeCheck(cls, reinterpret_cast<PyTypeObject*>(resolved().enum_type.get()))) return true;
  const ValueType* v = value_type(cls);
  return v && v->args == Args::Stores;
}

}  // namespace stasis::allowlist
