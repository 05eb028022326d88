#include "engine/updater_api.h"

#include "engine/errors.h"
#include "updater/control_watch.h"
#include "updater/function_swap.h"
#include "updater/heap_scan.h"
#include "updater/line_tracer.h"
#include "updater/profiler.h"
#include "updater/update_errors.h"

namespace stasis::engine::updater_api {

using namespace stasis::updater;  // NOLINT: this file binds the updater
namespace updater = stasis::updater;
namespace {

std::vector<PyTypeObject*> type_list(PyObject* classes) {
  std::vector<PyTypeObject*> out;
  if (!classes || classes == Py_None) return out;
  Ref seq = Ref::steal(check(PySequence_Fast(classes, "classes must be a sequence of types")));
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    PyObject* t = PySequence_Fast_GET_ITEM(seq.get(), i);
    if (!PyType_Check(t)) {
      PyErr_SetString(PyExc_TypeError, "classes must be a sequence of types");
      throw Error::python();
    }
    out.push_back((PyTypeObject*)t);
  }
  return out;
}

Ref to_list(const std::vector<Ref>& items) {
  Ref list = Ref::steal(check(PyList_New(Py_ssize_t(items.size()))));
  for (size_t i = 0; i < items.size(); ++i) PyList_SET_ITEM(list.get(), Py_ssize_t(i), Ref(items[i]).release());
  return list;
}

Ref functions_by_code(const std::vector<Ref>& functions) {
  Ref d = Ref::steal(check(PyDict_New()));
  for (const Ref& f : functions) {
    PyObject* code = PyFunction_GET_CODE(f.get());
    PyObject* list = PyDict_GetItemWithError(d.get(), code);
    if (!list) {
      if (PyErr_Occurred()) throw Error::python();
      Ref fresh = Ref::steal(check(PyList_New(0)));
      check_status(PyDict_SetItem(d.get(), code, fresh.get()));
      list = fresh.get();
    }
    check_status(PyList_Append(list, f.get()));
  }
  return d;
}

Ref instance_lists(const HeapMatches& m) {
  Ref out = Ref::steal(check(PyList_New(0)));
  for (const auto& v : m.instances) check_status(PyList_Append(out.get(), to_list(v).get()));
  return out;
}

Ref uses_list(const std::vector<ActiveUse>& uses) {
  Ref out = Ref::steal(check(PyList_New(0)));
  for (const auto& u : uses) {
    Ref row = Ref::steal(check(Py_BuildValue("(skOi)", u.kind.c_str(), u.thread_id, u.code.get(), u.line)));
    check_status(PyList_Append(out.get(), row.get()));
  }
  return out;
}

}  // namespace

PyObject* scan(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *codes, *classes;
    if (!PyArg_ParseTuple(args, "OO:scan", &codes, &classes)) throw Error::python();
    Ref keep_codes = Ref::borrow(codes);
    CodeSet set = code_set(codes);
    HeapMatches m = scan_heap(set, type_list(classes));
    return Ref::steal(check(Py_BuildValue("(NNN)", functions_by_code(m.functions).release(),
                                          to_list(m.generators).release(), instance_lists(m).release())));
  });
}

PyObject* active(PyObject*, PyObject* codes) {
  return guarded([&]() -> Ref {
    CodeSet set = code_set(codes);
    HeapMatches m = scan_heap(set, {});
    return uses_list(active_uses(set, m.generators));
  });
}

// commit(check_codes, swaps, attrs, classes, retype=None)
//   swaps: [(from_codes, code, defaults, kwdefaults, orig_code or None, orig_slot)]
//   attrs: [(owner, name, value)] or [(owner, name)] to delete
// -> (busy, installed_codes, swapped_functions, [instances per class]); busy non-empty: nothing changed.
PyObject* commit(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *check_codes, *swaps_in, *attrs_in, *classes, *retype = Py_None;
    if (!PyArg_ParseTuple(args, "OOOO|O:commit", &check_codes, &swaps_in, &attrs_in, &classes, &retype))
      throw Error::python();
    if (retype != Py_None && !PyDict_Check(retype)) {
      PyErr_SetString(PyExc_TypeError, "retype must be a dict {type: type} or None");
      throw Error::python();
    }
    std::vector<CodeSwap> swaps;
    Ref swaps_seq = Ref::steal(check(PySequence_Fast(swaps_in, "swaps must be a sequence")));
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(swaps_seq.get()); ++i) {
      PyObject *from, *code, *defaults, *kwdefaults, *orig;
      Py_ssize_t slot;
      if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(swaps_seq.get(), i), "OOOOOn:swap", &from, &code, &defaults,
                            &kwdefaults, &orig, &slot))
        throw Error::python();
      if (!PyCode_Check(code) || (orig != Py_None && !PyCode_Check(orig))) {
        PyErr_SetString(PyExc_TypeError, "swap codes must be code objects");
        throw Error::python();
      }
      CodeSwap s;
      s.from = code_set(from);
      s.code = Ref::borrow(code);
      s.defaults = Ref::borrow(defaults);
      s.kwdefaults = Ref::borrow(kwdefaults);
      if (orig != Py_None) s.orig_code = Ref::borrow(orig);
      s.orig_slot = slot;
      swaps.push_back(std::move(s));
    }
    std::vector<AttrChange> attrs;
    Ref attrs_seq = Ref::steal(check(PySequence_Fast(attrs_in, "attrs must be a sequence")));
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(attrs_seq.get()); ++i) {
      PyObject *owner, *name, *value = nullptr;
      if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(attrs_seq.get(), i), "OU|O:attr", &owner, &name, &value))
        throw Error::python();
      attrs.push_back({Ref::borrow(owner), Ref::borrow(name), Ref::borrow(value)});
    }
    Ref keep = Ref::borrow(args);  // code sets borrow from args
    CommitResult r = commit(code_set(check_codes), swaps, attrs, type_list(classes), retype);
    return Ref::steal(check(Py_BuildValue("(NNNN)", uses_list(r.busy).release(), to_list(r.installed_codes).release(),
                                          to_list(r.matches.functions).release(), instance_lists(r.matches).release())));
  });
}

PyObject* profile_start(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    profiler::start();
    return Ref::borrow(Py_None);
  });
}

PyObject* profile_stop(PyObject*, PyObject*) {
  return guarded([&]() -> Ref { return profiler::stop(); });
}

// The two hot entry points: no guard needed (they cannot fail), no allocation on the fast path.
PyObject* profile_enter(PyObject*, PyObject* key) {
  profiler::enter(key);
  Py_RETURN_NONE;
}

PyObject* profile_exit(PyObject*, PyObject*) {
  profiler::exit();
  Py_RETURN_NONE;
}

PyObject* profile_token(PyObject*, PyObject* key) {
  return guarded([&]() -> Ref { return profiler::enter_token(key); });
}

PyObject* profile_async_token(PyObject*, PyObject* key) {
  return guarded([&]() -> Ref { return profiler::enter_async_token(key); });
}

PyObject* line_trace_enter(PyObject*, PyObject* spec) {
  return guarded([&]() -> Ref {
    line_tracer::enter(spec);
    return Ref::borrow(Py_None);
  });
}

PyObject* line_trace_exit(PyObject*, PyObject*) {
  line_tracer::exit();
  Py_RETURN_NONE;
}

PyObject* watch_start(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    int fd;
    PyObject *callback, *owners;
    if (!PyArg_ParseTuple(args, "iOO!:updater_watch_start", &fd, &callback, &PySet_Type, &owners))
      throw Error::python();
    return Ref::steal(check(PyLong_FromUnsignedLong(updater::control_watch::start(fd, callback, owners))));
  });
}

PyObject* watch_stop(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    updater::control_watch::stop();
    return Ref::borrow(Py_None);
  });
}

PyObject* watch_forget(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    updater::control_watch::forget();
    return Ref::borrow(Py_None);
  });
}

}  // namespace stasis::engine::updater_api
