#include "core/ref.h"

#include <gtest/gtest.h>

namespace stasis {
namespace {

TEST(Ref, StealTakesOverTheNewReference) {
  PyObject* raw = PyList_New(0);
  Py_ssize_t before = Py_REFCNT(raw);
  {
    Ref r = Ref::steal(raw);
    EXPECT_EQ(Py_REFCNT(raw), before);
    Py_INCREF(raw);  // keep it alive past the Ref to observe the decrement
  }
  EXPECT_EQ(Py_REFCNT(raw), before);
  Py_DECREF(raw);
}

TEST(Ref, BorrowAddsAReference) {
  PyObject* raw = PyList_New(0);
  Py_ssize_t before = Py_REFCNT(raw);
  {
    Ref r = Ref::borrow(raw);
    EXPECT_EQ(Py_REFCNT(raw), before + 1);
  }
  EXPECT_EQ(Py_REFCNT(raw), before);
  Py_DECREF(raw);
}

TEST(Ref, CopyIncrementsMoveTransfers) {
  Ref a = Ref::steal(PyList_New(0));
  Py_ssize_t base = Py_REFCNT(a.get());
  Ref b = a;
  EXPECT_EQ(Py_REFCNT(a.get()), base + 1);
  Ref c = std::move(b);
  EXPECT_FALSE(b);
  EXPECT_EQ(c.get(), a.get());
  EXPECT_EQ(Py_REFCNT(a.get()), base + 1);
}

TEST(Ref, ReleaseGivesOwnershipAway) {
  Ref a = Ref::steal(PyList_New(0));
  PyObject* raw = a.release();
  EXPECT_FALSE(a);
  EXPECT_EQ(Py_REFCNT(raw), 1);
  Py_DECREF(raw);
}

TEST(Ref, StealOfNullIsEmptyAndSafe) {
  Ref r = Ref::steal(nullptr);
  EXPECT_FALSE(r);
  r.reset();
  Ref b = Ref::borrow(nullptr);
  EXPECT_FALSE(b);
}

TEST(Ref, AssignmentReleasesThePreviousObject) {
  PyObject* first = PyList_New(0);
  Py_INCREF(first);
  Ref r = Ref::steal(first);
  EXPECT_EQ(Py_REFCNT(first), 2);
  r = Ref::steal(PyList_New(0));
  EXPECT_EQ(Py_REFCNT(first), 1);
  Py_DECREF(first);
}

}  // namespace
}  // namespace stasis
