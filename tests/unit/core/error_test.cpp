#include <Python.h>

#include "core/error.h"

#include <gtest/gtest.h>

namespace stasis {
namespace {

TEST(Error, CarriesCodeAndMessage) {
  Error e(ErrorCode::CorruptSnapshot, "checksum mismatch");
  EXPECT_EQ(e.code(), ErrorCode::CorruptSnapshot);
  EXPECT_STREQ(e.what(), "checksum mismatch");
}

TEST(Error, ContextTrailIsAppendedInnermostFirst) {
  Error e(ErrorCode::UnsupportedObject, "socket is not supported");
  e.add_context("encoding dict #12").add_context("writing job.snap");
  EXPECT_STREQ(e.what(),
               "socket is not supported (while encoding dict #12; while writing job.snap)");
  ASSERT_EQ(e.context().size(), 2u);
  EXPECT_EQ(e.context()[0], "encoding dict #12");
}

TEST(Error, CodesAreStableExitStatuses) {
  // These numbers are CLI exit statuses and Python exception codes (python/stasis/errors.py):
  // changing one breaks users' scripts.
  EXPECT_EQ(int(ErrorCode::NotASnapshot), 91);
  EXPECT_EQ(int(ErrorCode::TruncatedSnapshot), 92);
  EXPECT_EQ(int(ErrorCode::CorruptSnapshot), 93);
  EXPECT_EQ(int(ErrorCode::IncompatibleSnapshot), 94);
  EXPECT_EQ(int(ErrorCode::BadSignature), 95);
  EXPECT_EQ(int(ErrorCode::UnsupportedObject), 96);
  EXPECT_EQ(int(ErrorCode::NotAvailable), 97);
  EXPECT_STREQ(error_code_name(ErrorCode::BadSignature), "BadSignature");
}

TEST(Error, CheckThrowsPythonErrorOnNull) {
  PyErr_SetString(PyExc_ValueError, "boom");
  try {
    check<PyObject>(nullptr);
    FAIL() << "check(nullptr) did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PythonError);
    EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_ValueError));
  }
  PyErr_Clear();
  EXPECT_THROW(check_status(-1), Error);
  EXPECT_EQ(check_status(0), 0);
}

}  // namespace
}  // namespace stasis
