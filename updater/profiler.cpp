#include "updater/profiler.h"

#include <pythread.h>

#include <chrono>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"

namespace stasis::updater::profiler {
namespace {

uint64_t steady_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

// Timestamps in ticks: the TSC on x86-64 (a few ns to read, against ~25 ns for clock_gettime),
// converted to nanoseconds at stop() with the rate measured over the session.
#if defined(__x86_64__)
inline uint64_t now_ticks() { return __rdtsc(); }
#else
inline uint64_t now_ticks() { return steady_ns(); }
#endif

std::vector<Ref> session_keys;  // one reference per key seen this session (wrappers may go first)

struct Node {
  PyObject* key = nullptr;  // borrowed; session_keys holds a reference
  Node* parent = nullptr;
  std::unordered_map<PyObject*, std::unique_ptr<Node>> children;
  uint64_t calls = 0, total_ns = 0, child_ns = 0;

  Node* last_child = nullptr;  // most calls repeat the previous callee: one comparison

  Node* child(PyObject* k) {
    if (last_child && last_child->key == k) return last_child;
    auto& slot = children[k];
    if (!slot) {
      slot = std::make_unique<Node>();
      slot->key = k;
      session_keys.push_back(Ref::borrow(k));
      slot->parent = this;
    }
    return slot.get();
  }
};

struct OpenCall {
  uint64_t start_ns;
  uint64_t serial;  // of its token; 0 for calls timed by a wrapper's enter()/exit()
};

struct ThreadTree {
  unsigned long thread_id = 0;
  Node root;
  Node* current = &root;
  std::vector<OpenCall> open;  // innermost last
};

// All state is touched with the GIL held only.
struct AsyncStat {
  Ref key;
  uint64_t calls = 0, total = 0;
};

struct Session {
  uint64_t generation = 0;
  uint64_t next_serial = 1;
  bool active = false;
  uint64_t start_ticks = 0, start_ns = 0;   // for the ticks -> ns rate
  std::map<unsigned long, std::unique_ptr<ThreadTree>> threads;
  // Generator and coroutine calls: wall time from first resumption to the end, per thread and key,
  // kept out of the call trees (what runs while they are parked is not their callee).
  std::map<std::pair<unsigned long, PyObject*>, AsyncStat> async_calls;
} session;

// One-entry cache: the GIL lets one thread run at a time and switches are rare (milliseconds),
// so the current thread state almost always is the last one seen (cheaper than thread_local
// lookups in a dlopen'ed module).
PyThreadState* cached_tstate = nullptr;
ThreadTree* cached_tree = nullptr;
uint64_t cached_generation = 0;

ThreadTree* tree() {
  PyThreadState* ts = PyThreadState_Get();
  if (ts == cached_tstate && cached_generation == session.generation) return cached_tree;
  unsigned long id = PyThread_get_thread_ident();
  auto& slot = session.threads[id];
  if (!slot) {
    slot = std::make_unique<ThreadTree>();
    slot->thread_id = id;
  }
  cached_tstate = ts;
  cached_tree = slot.get();
  cached_generation = session.generation;
  return cached_tree;
}

void collect(const Node& node, std::vector<PyObject*>& path, unsigned long tid, double ns_per_tick, PyObject* out) {
  if (node.key) {
    path.push_back(node.key);
    Ref keys = Ref::steal(check(PyTuple_New(Py_ssize_t(path.size()))));
    for (size_t i = 0; i < path.size(); ++i) {
      Py_INCREF(path[i]);
      PyTuple_SET_ITEM(keys.get(), Py_ssize_t(i), path[i]);
    }
    uint64_t self = node.total_ns > node.child_ns ? node.total_ns - node.child_ns : 0;
    Ref row = Ref::steal(check(Py_BuildValue("(kOKKKO)", tid, keys.get(), (unsigned long long)node.calls,
                                             (unsigned long long)(double(node.total_ns) * ns_per_tick),
                                             (unsigned long long)(double(self) * ns_per_tick), Py_False)));
    check_status(PyList_Append(out, row.get()));
  }
  for (const auto& [k, child] : node.children) collect(*child, path, tid, ns_per_tick, out);
  if (node.key) path.pop_back();
}

}  // namespace

void start() {
  session.threads.clear();
  session.async_calls.clear();
  session_keys.clear();
  ++session.generation;
  session.active = true;
  session.start_ticks = now_ticks();
  session.start_ns = steady_ns();
}

namespace {

uint64_t open_call(PyObject* key, uint64_t serial) {
  ThreadTree* t = tree();
  t->current = t->current->child(key);
  t->open.push_back({now_ticks(), serial});
  return serial;
}

// Closes the innermost open call of thread tree `t` at time `end`.
void close_call(ThreadTree* t, uint64_t end) {
  uint64_t elapsed = end - t->open.back().start_ns;
  t->open.pop_back();
  Node* n = t->current;
  n->calls += 1;
  n->total_ns += elapsed;
  if (n->parent) n->parent->child_ns += elapsed;
  t->current = n->parent ? n->parent : &t->root;
}

// The token an injected prologue leaves on the value stack; its deallocation (when the frame
// returns or unwinds) closes the call. A token that dies late (its frame object outlived the call)
// or on another thread finds no matching open call and is ignored; calls opened after it and left
// open by such a token are closed with it.
struct Token {
  PyObject_HEAD
  uint64_t serial;
  uint64_t generation;
};

std::vector<PyObject*> token_freelist;  // GIL-protected; tokens are not GC-tracked

void token_dealloc(PyObject* self) {
  uint64_t end = now_ticks();
  auto* token = reinterpret_cast<Token*>(self);
  if (session.active && token->generation == session.generation) {
    ThreadTree* t = tree();
    size_t i = t->open.size();
    while (i > 0 && t->open[i - 1].serial != token->serial) --i;
    if (i > 0)
      while (t->open.size() >= i) close_call(t, end);
  }
  if (token_freelist.size() < 1024) token_freelist.push_back(self);  // stays a Token: reused as is
  else PyObject_Free(self);
}

PyTypeObject* token_type() {
  static PyTypeObject type = [] {
    PyTypeObject t = {PyVarObject_HEAD_INIT(nullptr, 0)};
    t.tp_name = "stasis.updater.ProfileToken";
    t.tp_basicsize = sizeof(Token);
    t.tp_dealloc = token_dealloc;
    t.tp_flags = Py_TPFLAGS_DEFAULT;
    t.tp_doc = "closes a profiled call when the frame holding it ends";
    return t;
  }();
  static bool ready = PyType_Ready(&type) == 0;
  if (!ready) throw Error::python();
  return &type;
}

}  // namespace

void enter(PyObject* key) {
  if (session.active) open_call(key, 0);
}

void exit() {
  uint64_t end = now_ticks();
  if (!session.active) return;
  ThreadTree* t = tree();
  if (!t->open.empty()) close_call(t, end);  // empty: entered before this session started
}

// The token of a generator or coroutine call (see enter_async_token).
struct AsyncToken {
  PyObject_HEAD
  uint64_t start;
  uint64_t generation;
  unsigned long thread_id;
  PyObject* key;  // strong
};

void async_token_dealloc(PyObject* self) {
  uint64_t end = now_ticks();
  auto* token = reinterpret_cast<AsyncToken*>(self);
  if (session.active && token->generation == session.generation) {
    AsyncStat& stat = session.async_calls[{token->thread_id, token->key}];
    if (!stat.key) stat.key = Ref::borrow(token->key);
    stat.calls += 1;
    stat.total += end - token->start;
  }
  Py_DECREF(token->key);
  PyObject_Free(self);
}

PyTypeObject* async_token_type() {
  static PyTypeObject type = [] {
    PyTypeObject t = {PyVarObject_HEAD_INIT(nullptr, 0)};
    t.tp_name = "stasis.updater.ProfileAsyncToken";
    t.tp_basicsize = sizeof(AsyncToken);
    t.tp_dealloc = async_token_dealloc;
    t.tp_flags = Py_TPFLAGS_DEFAULT;
    t.tp_doc = "records a generator or coroutine call when its frame ends";
    return t;
  }();
  static bool ready = PyType_Ready(&type) == 0;
  if (!ready) throw Error::python();
  return &type;
}

Ref enter_async_token(PyObject* key) {
  if (!session.active) return Ref::borrow(Py_None);
  auto* token = PyObject_New(AsyncToken, async_token_type());
  if (!token) throw Error::python();
  token->start = now_ticks();
  token->generation = session.generation;
  token->thread_id = PyThread_get_thread_ident();
  token->key = Py_NewRef(key);
  return Ref::steal(reinterpret_cast<PyObject*>(token));
}

Ref enter_token(PyObject* key) {
  if (!session.active) return Ref::borrow(Py_None);
  Token* token;
  if (!token_freelist.empty()) {
    token = reinterpret_cast<Token*>(token_freelist.back());
    token_freelist.pop_back();
    internals::revive_object(reinterpret_cast<PyObject*>(token));
  } else {
    token = PyObject_New(Token, token_type());
    if (!token) throw Error::python();
  }
  token->generation = session.generation;
  token->serial = open_call(key, session.next_serial++);
  return Ref::steal(reinterpret_cast<PyObject*>(token));
}

Ref stop() {
  session.active = false;
  uint64_t ticks = now_ticks() - session.start_ticks, ns = steady_ns() - session.start_ns;
  double ns_per_tick = ticks ? double(ns) / double(ticks) : 1.0;
  Ref out = Ref::steal(check(PyList_New(0)));
  std::vector<PyObject*> path;
  for (const auto& [tid, t] : session.threads) collect(t->root, path, tid, ns_per_tick, out.get());
  for (const auto& [where, stat] : session.async_calls) {
    auto ns_total = (unsigned long long)(double(stat.total) * ns_per_tick);
    Ref row = Ref::steal(check(Py_BuildValue("(k(O)KKKO)", where.first, stat.key.get(),
                                             (unsigned long long)stat.calls, ns_total, ns_total, Py_True)));
    check_status(PyList_Append(out.get(), row.get()));
  }
  session.async_calls.clear();
  session.threads.clear();
  session_keys.clear();
  ++session.generation;
  return out;
}

}  // namespace stasis::updater::profiler
