// engine/module.cpp — the stasis._engine module table. Each folder's entry points are listed here.
#include <Python.h>

#include <string>

#include "compiler_hooks/hidden_locals.h"
#include "core/allowlist.h"
#include "engine/checkpoint_api.h"
#include "engine/crash_api.h"
#include "engine/describe_api.h"
#include "engine/errors.h"
#include "engine/net_api.h"
#include "engine/objects_api.h"
#include "engine/program_api.h"
#include "engine/updater_api.h"
#include "format/program_schema.h"
#include "format/schema.h"
#include "format/version.h"

namespace {

#define KW(fn) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn)), METH_VARARGS | METH_KEYWORDS

PyObject* hide_temporaries(PyObject*, PyObject*) {
  if (!stasis::compiler_hooks::hide_temporaries_from_f_locals()) return nullptr;
  Py_RETURN_NONE;
}

// import_refusal(name, program=False) -> str: why loading (of a program snapshot, with
// `program`) never imports module `name` ("" when it may).
PyObject* import_refusal(PyObject*, PyObject* args) {
  const char* s = nullptr;
  int program = 0;
  if (!PyArg_ParseTuple(args, "s|p:import_refusal", &s, &program)) return nullptr;
  std::string why = stasis::allowlist::import_refusal(s, program != 0);
  return PyUnicode_FromStringAndSize(why.data(), Py_ssize_t(why.size()));
}

PyMethodDef kMethods[] = {
    {"dumps", KW(stasis::engine::dumps), "dumps(obj, *, key=None, level=3) -> bytes"},
    {"dump", KW(stasis::engine::dump), "dump(obj, path, *, key=None, level=3)"},
    {"loads", KW(stasis::engine::loads), "loads(data, *, key=None) -> object"},
    {"load", KW(stasis::engine::load), "load(path, *, key=None) -> object"},
    {"inspect", KW(stasis::engine::inspect), "inspect(path, *, key=None, describe=False) -> dict"},
    {"view_roots", stasis::engine::view_roots, METH_O, "view_roots(view) -> [node ids] (inspect(describe=True))"},
    {"view_node", stasis::engine::view_node, METH_VARARGS, "view_node(view, id, limit) -> dict of plain values"},
    {"view_held", stasis::engine::view_held, METH_VARARGS, "view_held(view, id, budget) -> (bytes, objects, complete)"},
    {"view_heap", stasis::engine::view_heap, METH_O, "view_heap(view) -> [(module, qualname, count, bytes)]"},
    {"payload_header", KW(stasis::engine::payload_header),
     "payload_header(path or bytes, *, key=None, verify=True) -> {kind, root_count, hash_seed, meta}: builds nothing"},
    // whole-program suspension (issue 5): python/stasis/program/
    {"arm_thread", KW(stasis::engine::arm_thread), "arm_thread(thread_id, base_code, ...): park it at a safe point"},
    {"poll_threads", stasis::engine::poll_threads, METH_NOARGS, "trace the armed threads that can reach a safe point"},
    {"park_states", stasis::engine::park_states, METH_NOARGS, "states of the armed threads"},
    {"wait_for_park", stasis::engine::wait_for_park, METH_O, "sleep until an armed thread parks"},
    {"avoid_parked_points", stasis::engine::avoid_parked_points, METH_NOARGS, "a capture failed: move on"},
    {"forget_avoided", stasis::engine::forget_avoided, METH_NOARGS, "the request ended"},
    {"program_trace", stasis::engine::program_trace, METH_NOARGS, "(armed, the program's trace function)"},
    {"trace_replaced", stasis::engine::trace_replaced, METH_NOARGS, "after the program's sys.settrace()"},
    {"profile_is_ours", stasis::engine::profile_is_ours, METH_NOARGS, "the calling thread is being watched"},
    {"profile_replacing", stasis::engine::profile_replacing, METH_NOARGS, "before the program's sys.setprofile()"},
    {"thread_states", stasis::engine::thread_states, METH_NOARGS, "[(ident, has_frames)] of all threads"},
    {"asend_parts", stasis::engine::asend_parts, METH_O, "(agen, sendval, state) of an asend awaitable"},
    {"thread_context_value", stasis::engine::thread_context_value, METH_VARARGS,
     "thread_context_value(ident, name): a context variable of another thread"},
    {"settle", stasis::engine::settle, METH_O, "hold the GIL a while; freeze if no thread wants it"},
    {"freeze", stasis::engine::freeze, METH_NOARGS, "every armed thread parks at its next event"},
    {"thaw", stasis::engine::thaw, METH_NOARGS, "disarm every thread and let parked ones go on"},
    {"capture_stack", stasis::engine::capture_stack, METH_VARARGS, "capture_stack(frame, base_code) -> frames"},
    {"crash_frame_record", stasis::engine::crash_frame_record, METH_VARARGS,
     "crash_frame_record(frame, offset, keep, depth, is_base) -> the record of a frame raising (--snapshot-on-crash)"},
    {"frame_stack_value", stasis::engine::frame_stack_value, METH_VARARGS,
     "frame_stack_value(frame, index) -> a value of an outer frame's stack (--snapshot-on-crash)"},
    {"crash_hook", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(stasis::engine::crash_hook)),
     METH_FASTCALL, "crash_hook(exc, lasti, depth): called by the crash handlers (--snapshot-on-crash)"},
    {"crash_hook_configure", stasis::engine::crash_hook_configure, METH_VARARGS,
     "crash_hook_configure(slow_path, pending, given_up, main_base, main_ident, bootstrap_inner)"},
    {"crash_hook_disable", stasis::engine::crash_hook_disable, METH_NOARGS, "crash_hook_disable()"},
    {"crash_hook_plan", stasis::engine::crash_hook_plan, METH_VARARGS, "crash_hook_plan(code, lasti, plan)"},
    {"frame_called_by_c", stasis::engine::frame_called_by_c, METH_O,
     "frame_called_by_c(frame) -> whether C code called it (--snapshot-on-crash)"},
    {"replay", KW(stasis::engine::replay), "replay(entry, globals, frames, ...): rebuild and continue"},
    // periodic checkpoints (issue 13): python/stasis/program/periodic.py
    {"fork_writer", stasis::engine::fork_writer, METH_VARARGS,
     "fork_writer(timeout) -> pid: fork by the GIL holder; the child may run Python code"},
    {"collapse_huge_pages", stasis::engine::collapse_huge_pages, METH_VARARGS,
     "collapse_huge_pages(min_resident=448) -> (chunks, failed, unsupported)"},
    {"objects_of_types", stasis::engine::objects_of_types, METH_O,
     "objects_of_types(types) -> [objects]: GC-tracked instances of the types"},
    // services (issue 12): stasis/handover.py
    {"interrupt_thread", stasis::engine::interrupt_thread, METH_O,
     "interrupt_thread(ident): make that thread's blocking system call return EINTR (it is retried)"},
    {"buffered_read_ahead", stasis::engine::buffered_read_ahead, METH_VARARGS,
     "buffered_read_ahead(f, raw) -> bytes | None: a buffered reader's unread bytes (threads frozen)"},
    {"buffered_preload", stasis::engine::buffered_preload, METH_VARARGS,
     "buffered_preload(f, raw, data) -> bool: a new buffered reader starts with data read ahead"},
    // updater (issue 6): stasis/updater/*.py
    {"updater_scan", stasis::engine::updater_api::scan, METH_VARARGS, "updater_scan(codes, classes)"},
    {"updater_active", stasis::engine::updater_api::active, METH_O, "updater_active(codes)"},
    {"updater_commit", stasis::engine::updater_api::commit, METH_VARARGS, "updater_commit(check, swaps, attrs, classes)"},
    {"updater_profile_start", stasis::engine::updater_api::profile_start, METH_NOARGS, "start a profile session"},
    {"updater_profile_stop", stasis::engine::updater_api::profile_stop, METH_NOARGS, "end it: call-tree rows"},
    {"updater_profile_enter", stasis::engine::updater_api::profile_enter, METH_O, "called by profile wrappers"},
    {"updater_profile_exit", stasis::engine::updater_api::profile_exit, METH_NOARGS, "called by profile wrappers"},
    {"updater_profile_token", stasis::engine::updater_api::profile_token, METH_O, "called by profile prologues"},
    {"updater_profile_async_token", stasis::engine::updater_api::profile_async_token, METH_O,
     "called by profile prologues of generators and coroutines"},
    {"updater_line_trace_enter", stasis::engine::updater_api::line_trace_enter, METH_O, "called by line wrappers"},
    {"updater_line_trace_exit", stasis::engine::updater_api::line_trace_exit, METH_NOARGS, "called by line wrappers"},
    {"updater_watch_start", stasis::engine::updater_api::watch_start, METH_VARARGS,
     "updater_watch_start(fd, callback, owners) -> ident: call callback() with the GIL when fd is readable"},
    {"updater_watch_stop", stasis::engine::updater_api::watch_stop, METH_NOARGS, "stop and join the watcher"},
    {"updater_watch_forget", stasis::engine::updater_api::watch_forget, METH_NOARGS,
     "in a forked child: drop the parent's watcher"},
    {"import_refusal", import_refusal, METH_VARARGS,
     "import_refusal(name, program=False) -> why loading (of a program snapshot) never imports that module, "
     "or '' (core/allowlist.h)"},
    {"text_reader_state", stasis::engine::text_reader_state, METH_O,
     "text_reader_state(f) -> (decoder, pending text, telling, newline) of an io.TextIOWrapper"},
    {"register", stasis::engine::register_handler, METH_VARARGS,
     "register(type, key, save, load): a type handler (stasis.register)"},
    {"set_handler_finder", stasis::engine::set_handler_finder, METH_O,
     "set_handler_finder(f): f(key) registers the built-in handlers a key belongs to, returns its load"},
    {"hide_temporaries", hide_temporaries, METH_NOARGS,
     "frame.f_locals leaves out the rewriter's hidden temporaries (compiler_hooks/hidden_locals.h)"},
    {"register_error_classes", stasis::engine::register_error_classes, METH_O,
     "register_error_classes({code: class}): used once by stasis/__init__.py"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "stasis._engine",
                       "Stasis C++ engine (use the stasis package, not this module).", -1, kMethods};

// The field names of the program payload's records (format/program_schema.h), as tuples of str.
#define STASIS_FIELD_STR(name) #name,
constexpr const char* kFrameFields[] = {STASIS_FRAME_FIELDS(STASIS_FIELD_STR)};
constexpr const char* kThreadFields[] = {STASIS_THREAD_FIELDS(STASIS_FIELD_STR)};
constexpr const char* kProgramFields[] = {STASIS_PROGRAM_FIELDS(STASIS_FIELD_STR)};
constexpr const char* kMetaFields[] = {STASIS_META_FIELDS(STASIS_FIELD_STR)};
#undef STASIS_FIELD_STR

template <size_t N>
int add_fields(PyObject* m, const char* name, const char* const (&fields)[N]) {
  PyObject* t = PyTuple_New(N);
  if (!t) return -1;
  for (size_t i = 0; i < N; ++i) {
    PyObject* s = PyUnicode_FromString(fields[i]);
    if (!s) {
      Py_DECREF(t);
      return -1;
    }
    PyTuple_SET_ITEM(t, i, s);
  }
  int rc = PyModule_AddObjectRef(m, name, t);
  Py_DECREF(t);
  return rc;
}

}  // namespace

PyMODINIT_FUNC PyInit__engine(void) {
  PyObject* m = PyModule_Create(&kModule);
  if (!m) return nullptr;
  if (PyModule_AddIntConstant(m, "FORMAT_VERSION", stasis::format::kFormatVersion) < 0 ||
      PyModule_AddStringConstant(m, "ENGINE_VERSION", STASIS_ENGINE_VERSION) < 0 ||
      PyModule_AddIntConstant(m, "PROGRAM_LAYOUT", stasis::format::program::kProgramLayout) < 0 ||
      add_fields(m, "FRAME_FIELDS", kFrameFields) < 0 || add_fields(m, "THREAD_FIELDS", kThreadFields) < 0 ||
      add_fields(m, "PROGRAM_FIELDS", kProgramFields) < 0 || add_fields(m, "META_FIELDS", kMetaFields) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
