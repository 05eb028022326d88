// restore/effect_guard.h — the second line of defence while an object graph loads (FORMAT.md,
// "Threat model"). The first is structural: loading calls only what core/allowlist.h lists and
// runs no code of the snapshot's (restore/code_guard.h). But the library code that loading may run
// — a value type's constructor, an importable class's __setstate__, __hash__, __repr__ or append,
// a handler's load function — runs on objects whose attributes the snapshot chose, and library
// code calls attributes: an os._Environ whose `decodekey` is os.system runs a shell command when
// its repr is taken. No list of classes closes every such chain, so the effects themselves are
// refused: while an object graph loads, a CPython audit hook (PEP 578) refuses, on the loading
// thread, every audited effect a load never needs — starting processes, signals to processes,
// creating, changing or removing files, the environment and the working directory, sockets and
// the network, ctypes, new threads, tracing and audit hooks, gc's object lists, and code
// objects made or compiled outside the load's own Code op and outside an import. The refused
// effect does not happen; the load fails with CorruptSnapshotError naming it.
//
// A handler's load function (stasis.register) may open existing files (never create or truncate
// one), make sockets and connect to sqlite databases: the built-in handlers reopen what they
// restore. Imports may read files, list directories and write their bytecode caches.
// The hook is installed once per process (audit hooks cannot be removed) and costs one pointer
// comparison per audited event when no load is running.
#pragma once

#include <Python.h>

#include <string>

namespace stasis::restore {

class EffectGuard {
 public:
  EffectGuard();   // arms the hook for the current thread (nested loads stack)
  ~EffectGuard();  // disarms it
  EffectGuard(const EffectGuard&) = delete;
  EffectGuard& operator=(const EffectGuard&) = delete;

  // The audit event of the first effect refused, or "".
  const std::string& refused() const { return refused_; }

  // While one is alive, the effects a handler's load function may have are allowed.
  class Handler {
   public:
    explicit Handler(EffectGuard* g) : g_(g) {
      if (g_) ++g_->handler_depth_;
    }
    ~Handler() {
      if (g_) --g_->handler_depth_;
    }
    Handler(const Handler&) = delete;
    Handler& operator=(const Handler&) = delete;

   private:
    EffectGuard* g_;
  };
  // While one is alive, the load's own Code op makes a code object (verified right after).
  class OwnCode {
   public:
    explicit OwnCode(EffectGuard* g) : g_(g) {
      if (g_) ++g_->own_code_;
    }
    ~OwnCode() {
      if (g_) --g_->own_code_;
    }
    OwnCode(const OwnCode&) = delete;
    OwnCode& operator=(const OwnCode&) = delete;

   private:
    EffectGuard* g_;
  };
  // While one is alive, nothing is refused: the import of a library module whose built-in
  // handlers a key needs (a fixed table, stasis/handlers MODULE_OF_KEY: numpy, sqlite3...), whose
  // import-time effects are its own, as when the program imports it (numpy sets environment
  // variables), and which the snapshot does not choose beyond naming the key.
  class LibraryImport {
   public:
    explicit LibraryImport(EffectGuard* g) : g_(g) {
      if (g_) ++g_->library_import_;
    }
    ~LibraryImport() {
      if (g_) --g_->library_import_;
    }
    LibraryImport(const LibraryImport&) = delete;
    LibraryImport& operator=(const LibraryImport&) = delete;

   private:
    EffectGuard* g_;
  };

 private:
  friend int effect_audit_hook(const char* event, PyObject* args, void* data);
  PyThreadState* thread_;
  int handler_depth_ = 0;
  int own_code_ = 0;
  int library_import_ = 0;
  std::string refused_;
};

}  // namespace stasis::restore
