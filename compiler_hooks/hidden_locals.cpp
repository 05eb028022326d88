#include "compiler_hooks/hidden_locals.h"

#include "compiler_hooks/resume_table.h"
#include "core/cpython_internals.h"

namespace stasis::compiler_hooks {
namespace {

getter g_frame_f_locals = nullptr;  // CPython's own getter
PyGetSetDef g_def{};

bool is_hidden(PyObject* name) {
  if (!PyUnicode_Check(name) || PyUnicode_GET_LENGTH(name) < 2) return false;
  return PyUnicode_READ_CHAR(name, 0) == '.' && !Py_UNICODE_ISDIGIT(PyUnicode_READ_CHAR(name, 1));
}

// The frame's own dict is what a debugger writes into (PyFrame_LocalsToFast reads it back after
// a trace function): removing the temporaries from it would clear them in the running frame.
// So frames that hold temporaries get a copy; writes through it are lost (README, deviation 2).
PyObject* f_locals_without_temporaries(PyObject* frame, void* closure) {
  PyObject* locals = g_frame_f_locals(frame, closure);
  if (!locals || !PyDict_Check(locals)) return locals;
  PyCodeObject* code = PyFrame_GetCode(reinterpret_cast<PyFrameObject*>(frame));
  PyObject* copy = nullptr;
  if ((code->co_flags & CO_OPTIMIZED) && is_rewritten(code)) {
    PyObject* names = internals::code_localsplus_names(code);  // all locals, cells, frees: no tuple to build
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); ++i) {
      PyObject* name = PyTuple_GET_ITEM(names, i);
      if (!is_hidden(name) || !PyDict_Contains(locals, name)) continue;
      if (!copy && !(copy = PyDict_Copy(locals))) break;
      if (PyDict_DelItem(copy, name) < 0) {
        Py_CLEAR(copy);
        break;
      }
    }
    if (PyErr_Occurred()) {
      Py_XDECREF(copy);
      Py_DECREF(code);
      Py_DECREF(locals);
      return nullptr;
    }
  }
  Py_DECREF(code);
  if (!copy) return locals;
  Py_DECREF(locals);
  return copy;
}

}  // namespace

bool hide_temporaries_from_f_locals() {
  if (g_frame_f_locals) return true;
  PyObject* descr = PyDict_GetItemString(PyFrame_Type.tp_dict, "f_locals");  // borrowed
  if (!descr || Py_TYPE(descr) != &PyGetSetDescr_Type) {
    PyErr_SetString(PyExc_RuntimeError, "frame.f_locals is not the getter CPython 3.11 defines");
    return false;
  }
  PyGetSetDef* original = reinterpret_cast<PyGetSetDescrObject*>(descr)->d_getset;
  g_def = PyGetSetDef{original->name, f_locals_without_temporaries, original->set, original->doc,
                      original->closure};
  PyObject* replacement = PyDescr_NewGetSet(&PyFrame_Type, &g_def);
  if (!replacement) return false;
  int rc = PyDict_SetItemString(PyFrame_Type.tp_dict, "f_locals", replacement);
  Py_DECREF(replacement);
  if (rc < 0) return false;
  g_frame_f_locals = original->get;
  PyType_Modified(&PyFrame_Type);
  return true;
}

}  // namespace stasis::compiler_hooks
