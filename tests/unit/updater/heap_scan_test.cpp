#include "updater/heap_scan.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "python_namespace.h"

namespace stasis::updater {
namespace {

Ref run(const char* source) { return testing::run_python(source); }
using testing::item;

TEST(HeapScan, FindsEveryFunctionMadeFromACode) {
  Ref ns = run(
      "def make(n):\n"
      "    def f(x):\n"
      "        return x + n\n"
      "    return f\n"
      "fs = [make(1), make(2), make(3)]\n"
      "code = fs[0].__code__\n");
  CodeSet codes{item(ns, "code")};
  HeapMatches m = scan_heap(codes, {});
  EXPECT_EQ(m.functions.size(), 3u);
  EXPECT_TRUE(m.generators.empty());
}

TEST(HeapScan, FindsInstancesOfAClassAndItsSubclasses) {
  Ref ns = run(
      "class A: pass\n"
      "class B(A): pass\n"
      "class C: pass\n"
      "objs = [A(), B(), B(), C()]\n");
  std::vector<PyTypeObject*> classes{(PyTypeObject*)item(ns, "A"), (PyTypeObject*)item(ns, "C")};
  HeapMatches m = scan_heap({}, classes);
  ASSERT_EQ(m.instances.size(), 2u);
  EXPECT_EQ(m.instances[0].size(), 3u);
  EXPECT_EQ(m.instances[1].size(), 1u);
}

TEST(HeapScan, ReportsCreatedAndSuspendedGeneratorsButNotFinishedOnes) {
  Ref ns = run(
      "def g():\n"
      "    yield 1\n"
      "    yield 2\n"
      "created = g()\n"
      "suspended = g(); next(suspended)\n"
      "finished = g(); list(finished)\n"
      "code = g.__code__\n");
  CodeSet codes{item(ns, "code")};
  HeapMatches m = scan_heap(codes, {});
  ASSERT_EQ(m.generators.size(), 2u);
  std::vector<ActiveUse> uses = active_uses(codes, m.generators);
  ASSERT_EQ(uses.size(), 2u);
  int lines = uses[0].line + uses[1].line;
  EXPECT_EQ(lines, -1 + 2);  // not started (-1) and parked at the first yield (line 2)
  EXPECT_EQ(uses[0].kind, "generator");
}

TEST(HeapScan, AFunctionThatReturnedIsNotActive) {
  Ref ns = run(
      "import sys\n"
      "def probe():\n"
      "    return sys._getframe().f_code\n"
      "code = probe()\n");
  // probe has returned: its code is on no stack any more.
  CodeSet codes{item(ns, "code")};
  EXPECT_TRUE(active_uses(codes, {}).empty());
}

}  // namespace
}  // namespace stasis::updater
