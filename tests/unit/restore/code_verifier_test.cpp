// Tests of restore/code_verifier: the value stack it finds at a position is what the eval loop
// holds there, wherever a saved frame may stand.
#include "restore/code_verifier.h"

#include <gtest/gtest.h>

#include "core/ref.h"
#include "tests/unit/python_namespace.h"

namespace stasis::restore {
namespace {

using stasis::testing::item;
using stasis::testing::run_python;

// A loop whose body is longer than 255 code units: its FOR_ITER needs an EXTENDED_ARG, and the
// loop's jump back lands on that EXTENDED_ARG (where a suspension at the loop head stands).
TEST(CodeVerifier, ALoopHeadBehindAnExtendedArgHasTheIteratorOnTheStack) {
  Ref ns = run_python(
      "import dis\n"
      "body = '\\n'.join(f'        x{i} = i + {i}' for i in range(120))\n"
      "exec(f'def f(n):\\n    for i in range(n):\\n{body}\\n    return i\\n')\n"
      "ins = list(dis.get_instructions(f))\n"
      "k = next(j for j, x in enumerate(ins) if x.opname == 'FOR_ITER')\n"
      "assert ins[k - 1].opname == 'EXTENDED_ARG'\n"
      "head = ins[k - 1].offset // 2\n"
      "it = iter(range(3))\n");
  auto* code = reinterpret_cast<PyCodeObject*>(PyFunction_GetCode(item(ns, "f")));
  int head = int(PyLong_AsLong(item(ns, "head")));
  ASSERT_TRUE(is_instruction_start(code, head));
  Ref one = Ref::steal(PyTuple_Pack(1, item(ns, "it")));
  EXPECT_EQ(check_stack_at(code, head, one.get(), false), "");
  EXPECT_EQ(check_stack_at(code, head + 1, one.get(), false), "");  // the FOR_ITER itself
  Ref none = Ref::steal(PyTuple_New(0));
  EXPECT_NE(check_stack_at(code, head, none.get(), false), "");
}

}  // namespace
}  // namespace stasis::restore
