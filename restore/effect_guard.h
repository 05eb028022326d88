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

  // What a scope below lets through while it is alive.
  enum class Allow {
    HandlerEffects,  // the effects a handler's load function may have
    OwnCode,         // the load's own Code op makes a code object (verified right after)
    Everything,      // the import of a library module from a fixed list (core/allowlist.h
                     // kUnguardedImports, stasis/handlers MODULE_OF_KEY: numpy, pandas,
                     // sqlite3...), whose import-time effects are its own, as when the program
                     // imports it (numpy sets environment variables); the snapshot chooses only
                     // whether it is imported
  };
  // Counts itself on `g` (null: no guard, nothing to do) for its lifetime.
  template <Allow kWhat>
  class Scope {
   public:
    explicit Scope(EffectGuard* g) : g_(g) {
      if (g_) ++g_->depth_[int(kWhat)];
    }
    ~Scope() {
      if (g_) --g_->depth_[int(kWhat)];
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    EffectGuard* g_;
  };
  using Handler = Scope<Allow::HandlerEffects>;
  using OwnCode = Scope<Allow::OwnCode>;
  using LibraryImport = Scope<Allow::Everything>;

 private:
  friend int effect_audit_hook(const char* event, PyObject* args, void* data);
  PyThreadState* thread_;
  bool allows(Allow what) const { return depth_[int(what)] > 0; }
  int depth_[3] = {};  // scopes alive, by Allow
  std::string refused_;
};

}  // namespace stasis::restore
