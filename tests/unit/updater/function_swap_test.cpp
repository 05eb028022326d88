#include "updater/function_swap.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "python_namespace.h"
#include "updater/update_errors.h"

namespace stasis::updater {
namespace {

Ref run(const char* source) { return testing::run_python(source); }
using testing::item;

long call_long(PyObject* fn, long arg) {
  Ref r = Ref::steal(PyObject_CallFunction(fn, "l", arg));
  EXPECT_TRUE(r);
  return r ? PyLong_AsLong(r.get()) : -1;
}

CodeSwap swap_to(PyObject* old_fn, PyObject* new_fn) {
  CodeSwap s;
  s.from = {PyFunction_GET_CODE(old_fn)};
  s.code = Ref::borrow(PyFunction_GET_CODE(new_fn));
  s.defaults = Ref::borrow(Py_None);
  s.kwdefaults = Ref::borrow(Py_None);
  return s;
}

TEST(Commit, SwapsCodeOnEveryClosureKeepingEachOnesCells) {
  Ref ns = run(
      "def make(n):\n"
      "    def f(x):\n"
      "        return x + n\n"
      "    return f\n"
      "a, b = make(1), make(2)\n"
      "def new_make(n):\n"
      "    def f(x):\n"
      "        return x * 100 + n\n"
      "    return f\n"
      "new = new_make(0)\n");
  CommitResult r = commit({}, {swap_to(item(ns, "a"), item(ns, "new"))}, {}, {});
  EXPECT_TRUE(r.busy.empty());
  EXPECT_EQ(r.matches.functions.size(), 2u);
  EXPECT_EQ(call_long(item(ns, "a"), 3), 301);
  EXPECT_EQ(call_long(item(ns, "b"), 3), 302);
}

TEST(Commit, BusyTargetChangesNothing) {
  Ref ns = run(
      "def g():\n"
      "    yield 1\n"
      "def h():\n"
      "    yield 2\n"
      "parked = g(); next(parked)\n");
  PyObject* g = item(ns, "g");
  CodeSet check{PyFunction_GET_CODE(g)};
  CommitResult r = commit(check, {swap_to(g, item(ns, "h"))}, {}, {});
  ASSERT_EQ(r.busy.size(), 1u);
  EXPECT_EQ(r.busy[0].line, 2);
  EXPECT_EQ(PyFunction_GET_CODE(g), r.busy[0].code.get());  // still the old code
}

TEST(Commit, AddedFreeVariableIsRefusedBeforeAnyChange) {
  Ref ns = run(
      "def plain(x):\n"
      "    return x\n"
      "other = plain\n"
      "def outer():\n"
      "    y = 5\n"
      "    def uses_y(x):\n"
      "        return x + y\n"
      "    return uses_y\n"
      "new = outer()\n");
  PyObject* plain = item(ns, "plain");
  PyObject* before = PyFunction_GET_CODE(plain);
  try {
    commit({}, {swap_to(plain, item(ns, "new"))}, {}, {});
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kUpdateRefused);
    EXPECT_NE(std::string(e.what()).find("free variable 'y'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(PyFunction_GET_CODE(plain), before);
}

}  // namespace
}  // namespace stasis::updater
