#include "updater/profiler.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace stasis::updater::profiler {
namespace {

// {"a;b": calls} from stop()'s rows.
std::map<std::string, unsigned long long> calls_by_path(const Ref& rows) {
  std::map<std::string, unsigned long long> out;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows.get()); ++i) {
    PyObject* row = PyList_GET_ITEM(rows.get(), i);
    PyObject* keys = PyTuple_GET_ITEM(row, 1);
    std::string path;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(keys); ++k)
      path += (k ? ";" : "") + std::string(PyUnicode_AsUTF8(PyTuple_GET_ITEM(keys, k)));
    if (PyTuple_GET_ITEM(row, 5) == Py_True) path += " (async)";
    out[path] += PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(row, 2));
  }
  return out;
}

struct Keys {
  Ref a = Ref::steal(PyUnicode_InternFromString("a"));
  Ref b = Ref::steal(PyUnicode_InternFromString("b"));
};

TEST(Profiler, NestedTokensBuildTheCallTree) {
  Keys k;
  start();
  {
    Ref outer = enter_token(k.a.get());
    for (int i = 0; i < 3; ++i) Ref inner = enter_token(k.b.get());  // each dies at once
  }
  auto calls = calls_by_path(stop());
  EXPECT_EQ(calls, (std::map<std::string, unsigned long long>{{"a", 1}, {"a;b", 3}}));
}

TEST(Profiler, ATokenThatDiesLateClosesTheCallsLeftOpenAboveIt) {
  Keys k;
  start();
  Ref outer = enter_token(k.a.get());
  Ref leaked = enter_token(k.b.get());  // as if its frame object outlived the call
  outer.reset();                        // the caller ends: closes b (orphan) and a
  leaked.reset();                       // no open call matches any more: ignored
  auto calls = calls_by_path(stop());
  EXPECT_EQ(calls, (std::map<std::string, unsigned long long>{{"a", 1}, {"a;b", 1}}));
}

TEST(Profiler, TokensOutsideASessionAreNoneAndOldTokensAreIgnored) {
  Keys k;
  Ref none = enter_token(k.a.get());
  EXPECT_EQ(none.get(), Py_None);
  start();
  Ref old = enter_token(k.a.get());
  stop();
  start();
  old.reset();  // from the previous session
  auto calls = calls_by_path(stop());
  EXPECT_TRUE(calls.empty());
}

TEST(Profiler, AsyncCallsAreKeptOutOfTheCallTree) {
  Keys k;
  start();
  Ref coroutine = enter_async_token(k.a.get());
  { Ref meanwhile = enter_token(k.b.get()); }  // runs while the coroutine is parked
  coroutine.reset();
  auto calls = calls_by_path(stop());
  EXPECT_EQ(calls, (std::map<std::string, unsigned long long>{{"a (async)", 1}, {"b", 1}}));
}

}  // namespace
}  // namespace stasis::updater::profiler
