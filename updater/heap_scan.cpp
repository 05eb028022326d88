#include "updater/heap_scan.h"

#include <tuple>

#include "core/cpython_internals.h"
#include "core/error.h"

namespace stasis::updater {

CodeSet code_set(PyObject* iterable) {
  CodeSet set;
  if (!iterable || iterable == Py_None) return set;
  Ref it = Ref::steal(check(PyObject_GetIter(iterable)));
  while (Ref item = Ref::steal(PyIter_Next(it.get()))) set.insert(item.get());  // kept alive by the caller
  if (PyErr_Occurred()) throw Error::python();
  return set;
}

namespace {

bool is_generator_like(PyObject* obj) {
  return PyGen_Check(obj) || PyCoro_CheckExact(obj) || PyAsyncGen_CheckExact(obj);
}

struct Walk {
  const CodeSet* codes;
  const std::vector<PyTypeObject*>* classes;
  std::unordered_map<PyTypeObject*, int> class_index;  // type -> index into classes, -1 for none
  std::vector<PyObject*> functions, generators;
  std::vector<std::vector<PyObject*>> instances;

  int classify(PyTypeObject* type) {
    auto it = class_index.find(type);
    if (it != class_index.end()) return it->second;
    int found = -1;
    for (size_t i = 0; i < classes->size(); ++i)
      if (PyType_IsSubtype(type, (*classes)[i])) {  // walks tp_mro: no Python code, no allocation
        found = int(i);
        break;
      }
    class_index.emplace(type, found);
    return found;
  }

  static int visit(PyObject* obj, void* arg) {
    auto* w = static_cast<Walk*>(arg);
    if (!w->codes->empty()) {
      if (PyFunction_Check(obj)) {
        if (w->codes->count(reinterpret_cast<PyFunctionObject*>(obj)->func_code)) w->functions.push_back(obj);
        return 0;
      }
      if (is_generator_like(obj)) {
        int state = internals::generator_state(obj);
        if ((state == -2 || state == -1) && w->codes->count((PyObject*)internals::generator_code(obj)))
          w->generators.push_back(obj);
        return 0;
      }
    }
    if (!w->classes->empty()) {
      int i = w->classify(Py_TYPE(obj));
      if (i >= 0) w->instances[i].push_back(obj);
    }
    return 0;
  }
};

std::vector<Ref> own(const std::vector<PyObject*>& borrowed) {
  std::vector<Ref> out;
  out.reserve(borrowed.size());
  for (PyObject* o : borrowed) out.push_back(Ref::borrow(o));
  return out;
}

}  // namespace

HeapMatches scan_heap(const CodeSet& codes, const std::vector<PyTypeObject*>& classes) {
  Walk w;
  w.codes = &codes;
  w.classes = &classes;
  w.instances.resize(classes.size());
  // The C++ vectors may allocate; Python objects are not created until the walk is over.
  stasis_internals_visit_gc_objects(&Walk::visit, &w);
  HeapMatches m;
  m.functions = own(w.functions);
  m.generators = own(w.generators);
  for (auto& v : w.instances) m.instances.push_back(own(v));
  return m;
}

namespace {

struct FrameWalk {
  const CodeSet* codes;
  std::vector<std::tuple<unsigned long, PyObject*, int>> hits;  // thread id, code (borrowed), line

  static int visit(PyThreadState* ts, void* arg) {
    auto* w = static_cast<FrameWalk*>(arg);
    for (_PyInterpreterFrame* f = internals::current_interpreter_frame(ts); f; f = internals::calling_frame(f)) {
      auto* code = (PyObject*)internals::frame_code(f);
      if (w->codes->count(code))
        w->hits.emplace_back(internals::thread_ident(ts), code, internals::interpreter_frame_line(f));
    }
    return 0;
  }
};

}  // namespace

std::vector<ActiveUse> active_uses(const CodeSet& codes, const std::vector<Ref>& generators) {
  std::vector<ActiveUse> uses;
  FrameWalk walk{&codes, {}};
  stasis_internals_visit_thread_states(&FrameWalk::visit, &walk);  // under HEAD_LOCK; no allocation
  for (const auto& [tid, code, line] : walk.hits) uses.push_back({"thread", tid, Ref::borrow(code), line});
  for (const Ref& g : generators) {
    PyObject* code = (PyObject*)internals::generator_code(g.get());
    const char* kind = PyCoro_CheckExact(g.get()) ? "coroutine"
                       : PyAsyncGen_CheckExact(g.get()) ? "async generator" : "generator";
    int line = -1;
    if (internals::generator_state(g.get()) == -1) {
      Ref frame = Ref::steal(PyObject_GetAttrString(g.get(), PyCoro_CheckExact(g.get()) ? "cr_frame"
                                                         : PyAsyncGen_CheckExact(g.get()) ? "ag_frame" : "gi_frame"));
      if (frame && frame.get() != Py_None) line = PyFrame_GetLineNumber((PyFrameObject*)frame.get());
      PyErr_Clear();
    }
    uses.push_back({kind, 0, Ref::borrow(code), line});
  }
  return uses;
}

}  // namespace stasis::updater
