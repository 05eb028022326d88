// engine/heap_api.cpp — module state for the whole-program snapshot (see heap_api.h).
#include "engine/heap_api.h"

#include <string>
#include <vector>

#include "engine/errors.h"

namespace stasis::engine {
namespace {

PyObject* g_module_states = nullptr;  // {name: (save, load)}

// The interpreter's library directories (sysconfig stdlib/platstdlib/purelib/platlib), resolved.
const std::vector<std::string>& library_paths() {
  static std::vector<std::string>* paths = [] {
    auto* out = new std::vector<std::string>;
    Ref sysconfig = Ref::steal(PyImport_ImportModule("sysconfig"));
    Ref os_path = Ref::steal(PyImport_ImportModule("os.path"));
    if (!sysconfig || !os_path) throw Error::python();
    Ref all = Ref::steal(PyObject_CallMethod(sysconfig.get(), "get_paths", nullptr));
    if (!all) throw Error::python();
    for (const char* k : {"stdlib", "platstdlib", "purelib", "platlib"}) {
      PyObject* p = PyDict_GetItemString(all.get(), k);
      if (!p) continue;
      Ref real = Ref::steal(PyObject_CallMethod(os_path.get(), "realpath", "O", p));
      if (!real) throw Error::python();
      out->push_back(std::string(PyUnicode_AsUTF8(real.get())) + "/");
    }
    // Debian installs packages under dist-packages, which sysconfig does not name.
    out->push_back("/usr/lib/python3/dist-packages/");
    return out;
  }();
  return *paths;
}

bool user_module(PyObject* module) {
  if (!PyModule_Check(module)) {
    PyErr_SetString(PyExc_TypeError, "a module is required");
    throw Error::python();
  }
  Ref file = Ref::steal(PyObject_GetAttrString(module, "__file__"));
  if (!file || !PyUnicode_Check(file.get())) {
    PyErr_Clear();
    return false;  // builtin or frozen: library
  }
  Ref os_path = Ref::steal(PyImport_ImportModule("os.path"));
  Ref real = Ref::steal(PyObject_CallMethod(os_path.get(), "realpath", "O", file.get()));
  if (!real) throw Error::python();
  std::string path = PyUnicode_AsUTF8(real.get());
  for (const std::string& lib : library_paths())
    if (path.compare(0, lib.size(), lib) == 0) return false;
  return true;
}

bool is_metadata(PyObject* name) {
  static const char* kMeta[] = {"__name__", "__loader__", "__spec__", "__builtins__", "__file__",
                                "__cached__", "__package__", "__path__", "__doc__"};
  for (const char* m : kMeta)
    if (PyUnicode_CompareWithASCIIString(name, m) == 0) return true;
  return false;
}

}  // namespace

PyObject* is_user_module(PyObject*, PyObject* module) {
  return guarded([&]() -> Ref { return Ref::borrow(user_module(module) ? Py_True : Py_False); });
}

PyObject* module_state(PyObject*, PyObject* module) {
  return guarded([&]() -> Ref {
    bool user = user_module(module);
    Ref name = Ref::steal(PyObject_GetAttrString(module, "__name__"));
    if (!name) throw Error::python();
    Ref state;
    if (user) {
      state = Ref::steal(PyDict_New());
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      PyObject* globals = PyModule_GetDict(module);
      while (PyDict_Next(globals, &pos, &k, &v))
        if (!(PyUnicode_Check(k) && is_metadata(k)) && PyDict_SetItem(state.get(), k, v) < 0)
          throw Error::python();
    } else {
      PyObject* entry = g_module_states ? PyDict_GetItem(g_module_states, name.get()) : nullptr;
      state = entry ? Ref::steal(PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 0), module))
                    : Ref::borrow(Py_None);
      if (!state) throw Error::python();
    }
    return Ref::steal(Py_BuildValue("(sOO)", user ? "user" : "library", name.get(), state.get()));
  });
}

PyObject* restore_module_state(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *module, *kind, *name, *state;
    if (!PyArg_ParseTuple(args, "O!(UUO):restore_module_state", &PyModule_Type, &module, &kind, &name, &state))
      throw Error::python();
    Ref actual = Ref::steal(PyObject_GetAttrString(module, "__name__"));
    if (!actual || PyObject_RichCompareBool(actual.get(), name, Py_EQ) != 1) {
      PyErr_Format(PyExc_ValueError, "state of module %R applied to module %R", name, actual.get());
      throw Error::python();
    }
    if (PyUnicode_CompareWithASCIIString(kind, "user") == 0) {
      if (!PyDict_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "user module state must be a dict");
        throw Error::python();
      }
      if (PyDict_Update(PyModule_GetDict(module), state) < 0) throw Error::python();
    } else if (state != Py_None) {
      PyObject* entry = g_module_states ? PyDict_GetItem(g_module_states, name) : nullptr;
      if (!entry)
        throw Error(ErrorCode::IncompatibleSnapshot,
                    std::string("the snapshot holds state of library module '") + PyUnicode_AsUTF8(name) +
                        "', and no module state is registered for it here (register_module_state)");
      if (!Ref::steal(PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(entry, 1), module, state, nullptr)))
        throw Error::python();
    }
    return Ref::borrow(Py_None);
  });
}

PyObject* register_module_state(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *name, *save, *load;
    if (!PyArg_ParseTuple(args, "UOO:register_module_state", &name, &save, &load)) throw Error::python();
    if (!g_module_states && !(g_module_states = PyDict_New())) throw Error::python();
    Ref entry = Ref::steal(PyTuple_Pack(2, save, load));
    if (!entry || PyDict_SetItem(g_module_states, name, entry.get()) < 0) throw Error::python();
    return Ref::borrow(Py_None);
  });
}

}  // namespace stasis::engine
