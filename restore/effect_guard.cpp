#include "restore/effect_guard.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace stasis::restore {

namespace {

std::vector<EffectGuard*> g_armed;  // guarded by the GIL; the innermost load last
bool g_installed = false;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Audited effects no load needs (the CPython 3.11 audit events table), refused while an object
// graph loads. A name ending with '.' refuses every event of that module.
constexpr const char* kRefused[] = {
    // processes and signals
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "os.startfile", "subprocess.", "pty.", "signal.",
    // the environment, the working directory, files and directories
    "os.putenv", "os.unsetenv", "os.chdir", "os.chroot", "os.remove", "os.rmdir", "os.rename",
    "os.mkdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.chflags",
    "os.lchflags", "os.lchmod", "os.lchown", "os.utime", "os.mkfifo", "os.mknod", "os.setxattr",
    "os.removexattr", "os.add_dll_directory", "shutil.", "tempfile.", "mmap.", "fcntl.",
    // the network, other processes' services, the terminal
    "socket.", "urllib.", "http.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.",
    "telnetlib.", "webbrowser.", "syslog.", "sqlite3.", "builtins.input", "builtins.breakpoint",
    "pdb.", "msvcrt.", "winreg.", "_winapi.",
    // the interpreter: native code, hooks, other objects, threads, time
    "ctypes.", "cpython.", "sys.settrace", "sys.setprofile", "sys.addaudithook", "sys._current_frames",
    "sys._current_exceptions", "sys.set_asyncgen_hooks_", "setopencodehook", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents", "_thread.start_new_thread", "resource.",
    "pickle.find_class",
    // code: made only by the Code op (which verifies it) or by an import
    "code.__new__", "marshal.", "compile", "exec",
};

bool refused_name(std::string_view event) {
  for (const char* r : kRefused) {
    std::string_view name(r);
    if (name.back() == '.' || name.back() == '_' ? starts_with(event, name) : event == name) return true;
  }
  return false;
}

// The frames of the running thread, innermost first: whether one is an import
// (importlib._bootstrap._find_and_load), and whether the innermost is collections.namedtuple
// (which compiles the source of its __new__ from validated field names).
struct Frames {
  bool importing = false;
  bool namedtuple = false;
};

Frames look_at_frames(PyThreadState* ts) {
  Frames r;
  PyFrameObject* f = PyThreadState_GetFrame(ts);  // new reference, or null
  bool innermost = true;
  while (f) {
    PyCodeObject* co = PyFrame_GetCode(f);
    const char* name = PyUnicode_Check(co->co_name) ? PyUnicode_AsUTF8(co->co_name) : nullptr;
    const char* file = PyUnicode_Check(co->co_filename) ? PyUnicode_AsUTF8(co->co_filename) : nullptr;
    if (name && file) {
      if (std::strcmp(name, "_find_and_load") == 0 && std::strcmp(file, "<frozen importlib._bootstrap>") == 0)
        r.importing = true;
      if (innermost && std::strcmp(name, "namedtuple") == 0 && ends_with(file, "/collections/__init__.py"))
        r.namedtuple = true;
    }
    Py_DECREF(co);
    innermost = false;
    PyFrameObject* back = r.importing ? nullptr : PyFrame_GetBack(f);
    Py_DECREF(f);
    f = back;
  }
  PyErr_Clear();
  return r;
}

std::string_view str_arg(PyObject* args, Py_ssize_t i) {
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) <= i) return {};
  PyObject* a = PyTuple_GET_ITEM(args, i);
  Py_ssize_t n = 0;
  const char* s = PyUnicode_Check(a) ? PyUnicode_AsUTF8AndSize(a, &n) : nullptr;
  if (!s) {
    PyErr_Clear();
    if (PyBytes_Check(a)) return std::string_view(PyBytes_AS_STRING(a), size_t(PyBytes_GET_SIZE(a)));
    return {};
  }
  return std::string_view(s, size_t(n));
}

// An import's bytecode cache: <dir>/__pycache__/<name>.pyc, written as <that>.<digits> first.
bool pyc_temporary(std::string_view path) {
  size_t dot = path.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == path.size()) return false;
  for (char c : path.substr(dot + 1))
    if (c < '0' || c > '9') return false;
  std::string_view pyc = path.substr(0, dot);
  return ends_with(pyc, ".pyc") && pyc.find("/__pycache__/") != std::string_view::npos;
}

bool unix_socket_file(std::string_view path) {
  if (path.empty() || path.find('\0') != std::string_view::npos) return false;
  struct stat st;
  return lstat(std::string(path).c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// Why the event is refused for the load `g`, or nullptr.
const char* refusal(EffectGuard& g, bool handler, bool own_code, std::string_view event, PyObject* args) {
  if (event == "open") {
    // (path, mode, flags): reading is fine; so is an import writing its cache; a handler may
    // reopen a file that exists (no O_CREAT, no O_TRUNC) or wrap a descriptor.
    long flags = 0;
    if (PyTuple_Check(args) && PyTuple_GET_SIZE(args) >= 3 && PyLong_Check(PyTuple_GET_ITEM(args, 2))) {
      flags = PyLong_AsLong(PyTuple_GET_ITEM(args, 2));
      if (flags == -1) PyErr_Clear();
    }
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) == 0) return nullptr;
    PyObject* path = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : nullptr;
    if (handler && !(flags & (O_CREAT | O_TRUNC))) return nullptr;
    if (handler && path && PyLong_Check(path)) return nullptr;
    // /dev/null written to changes nothing (pandas' import opens it read-write, as subprocess does).
    if (!(flags & (O_CREAT | O_TRUNC)) && str_arg(args, 0) == "/dev/null") return nullptr;
    if ((flags & O_CREAT) && (flags & O_EXCL) && pyc_temporary(str_arg(args, 0)) &&
        look_at_frames(PyThreadState_Get()).importing)
      return nullptr;
    return "a file opened for writing";
  }
  if (event == "os.mkdir" && ends_with(str_arg(args, 0), "/__pycache__") && look_at_frames(PyThreadState_Get()).importing)
    return nullptr;
  if (event == "os.rename" && pyc_temporary(str_arg(args, 0)) && look_at_frames(PyThreadState_Get()).importing)
    return nullptr;
  // A handler may also map a file it reopened (numpy.memmap), connect to an existing database,
  // read and set a descriptor's flags and queues (fcntl/ioctl: sockets, pipes), and remove a
  // stale Unix socket file before binding its path again (never another kind of file).
  if (handler && (starts_with(event, "socket.") || event == "sqlite3.connect" || event == "sqlite3.connect/handle" ||
                  event == "mmap.__new__" || event == "fcntl.fcntl" || event == "fcntl.ioctl"))
    return nullptr;
  if (handler && event == "os.remove" && unix_socket_file(str_arg(args, 0))) return nullptr;
  if (event == "code.__new__" && own_code) return nullptr;
  if (!refused_name(event)) return nullptr;
  if (event == "compile" || event == "exec" || starts_with(event, "marshal.")) {
    Frames f = look_at_frames(PyThreadState_Get());
    if (f.importing || (event != "marshal.loads" && f.namedtuple)) return nullptr;
    return "code that is neither the snapshot's verified code nor an import";
  }
  (void)g;
  return "an effect beyond the objects a load makes";
}

}  // namespace

int effect_audit_hook(const char* event, PyObject* args, void*) {
  if (g_armed.empty()) return 0;
  EffectGuard* g = g_armed.back();
  if (g->thread_ != PyThreadState_Get()) return 0;  // another thread of the program
  if (g->allows(EffectGuard::Allow::Everything)) return 0;
  const char* why = refusal(*g, g->allows(EffectGuard::Allow::HandlerEffects), g->allows(EffectGuard::Allow::OwnCode),
                            event, args);
  if (!why) return 0;
  if (g->refused_.empty()) g->refused_ = std::string(event) + " (" + why + ")";
  PyErr_Format(PyExc_RuntimeError, "stasis: loading an object graph refused %s (%s)", event, why);
  return -1;
}

EffectGuard::EffectGuard() : thread_(PyThreadState_Get()) {
  if (!g_installed) {
    if (PySys_AddAuditHook(effect_audit_hook, nullptr) < 0)
      throw Error(ErrorCode::PythonError, "cannot install the audit hook that guards loading");
    g_installed = true;
  }
  g_armed.push_back(this);
}

EffectGuard::~EffectGuard() {
  for (size_t i = g_armed.size(); i-- > 0;)
    if (g_armed[i] == this) {
      g_armed.erase(g_armed.begin() + long(i));
      break;
    }
}

}  // namespace stasis::restore
