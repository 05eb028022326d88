#include "updater/profiler.h"

#include <pythread.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace stasis::updater::profiler {
namespace {

uint64_t now_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

std::vector<Ref> session_keys;  // one reference per key seen this session (wrappers may go first)

struct Node {
  PyObject* key = nullptr;  // borrowed; session_keys holds a reference
  Node* parent = nullptr;
  std::unordered_map<PyObject*, std::unique_ptr<Node>> children;
  uint64_t calls = 0, total_ns = 0, child_ns = 0;

  Node* child(PyObject* k) {
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

struct ThreadTree {
  unsigned long thread_id = 0;
  Node root;
  Node* current = &root;
  std::vector<uint64_t> starts;  // one per open call
};

// All state is touched with the GIL held only.
struct Session {
  uint64_t generation = 0;
  bool active = false;
  std::map<unsigned long, std::unique_ptr<ThreadTree>> threads;
} session;

thread_local ThreadTree* tls_tree = nullptr;
thread_local uint64_t tls_generation = 0;

ThreadTree* tree() {
  if (tls_generation != session.generation || !tls_tree) {
    unsigned long id = PyThread_get_thread_ident();
    auto& slot = session.threads[id];
    if (!slot) {
      slot = std::make_unique<ThreadTree>();
      slot->thread_id = id;
    }
    tls_tree = slot.get();
    tls_generation = session.generation;
  }
  return tls_tree;
}

void collect(const Node& node, std::vector<PyObject*>& path, unsigned long tid, PyObject* out) {
  if (node.key) {
    path.push_back(node.key);
    Ref keys = Ref::steal(check(PyTuple_New(Py_ssize_t(path.size()))));
    for (size_t i = 0; i < path.size(); ++i) {
      Py_INCREF(path[i]);
      PyTuple_SET_ITEM(keys.get(), Py_ssize_t(i), path[i]);
    }
    uint64_t self = node.total_ns > node.child_ns ? node.total_ns - node.child_ns : 0;
    Ref row = Ref::steal(check(Py_BuildValue("(kOKKK)", tid, keys.get(), (unsigned long long)node.calls,
                                             (unsigned long long)node.total_ns, (unsigned long long)self)));
    check_status(PyList_Append(out, row.get()));
  }
  for (const auto& [k, child] : node.children) collect(*child, path, tid, out);
  if (node.key) path.pop_back();
}

}  // namespace

void start() {
  session.threads.clear();
  session_keys.clear();
  ++session.generation;
  session.active = true;
}

void enter(PyObject* key) {
  if (!session.active) return;
  ThreadTree* t = tree();
  Node* n = t->current->child(key);
  t->current = n;
  t->starts.push_back(now_ns());
}

void exit() {
  uint64_t end = now_ns();
  if (!session.active) return;
  ThreadTree* t = tree();
  if (t->starts.empty()) return;  // entered before this session started
  uint64_t elapsed = end - t->starts.back();
  t->starts.pop_back();
  Node* n = t->current;
  n->calls += 1;
  n->total_ns += elapsed;
  if (n->parent) n->parent->child_ns += elapsed;
  t->current = n->parent ? n->parent : &t->root;
}

Ref stop() {
  session.active = false;
  Ref out = Ref::steal(check(PyList_New(0)));
  std::vector<PyObject*> path;
  for (const auto& [tid, t] : session.threads) collect(t->root, path, tid, out.get());
  session.threads.clear();
  session_keys.clear();
  ++session.generation;
  return out;
}

}  // namespace stasis::updater::profiler
