// Tests of snapshot/heap_encoder (and its memo, snapshot/pointer_map.h): what ops it writes.
#include "snapshot/heap_encoder.h"

#include <gtest/gtest.h>

#include "format/payload.h"
#include "format/snapshot_file.h"
#include "snapshot/pointer_map.h"

namespace stasis::snapshot {
namespace {

using format::Op;

Ref eval(const char* expr) {
  Ref main = Ref::borrow(PyImport_AddModule("__main__"));
  PyObject* g = PyModule_GetDict(main.get());
  Ref r = Ref::steal(PyRun_String(expr, Py_eval_input, g, g));
  if (!r) PyErr_Print();
  return r;
}

// Encodes `obj` and returns the op summary of the result.
format::OpSummary encode(PyObject* obj) {
  std::string out;
  {
    auto w = format::SnapshotWriter::to_string(out, format::WriteOptions{});
    format::PayloadWriter p(w, format::PayloadHeader{"objects", 1});
    HeapEncoder(p).encode(obj);
    p.finish();
    w.commit();
  }
  auto r = format::SnapshotReader::open_bytes(out, format::ReadOptions{});
  format::PayloadReader p(r);
  return format::scan_ops(p);
}

uint64_t count(const format::OpSummary& s, Op op) { return s.counts[uint8_t(op)]; }

TEST(PointerMap, FindsWhatWasInsertedAcrossGrowth) {
  PointerMap m;
  std::vector<int> cells(10000);
  for (size_t i = 0; i < cells.size(); ++i) m.insert(&cells[i], i);
  EXPECT_EQ(m.size(), cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    const uint64_t* v = m.find(&cells[i]);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(*v, i);
  }
  int other;
  EXPECT_EQ(m.find(&other), nullptr);
}

TEST(HeapEncoder, MemoizesOnlySharedObjects) {
  Ref unshared = eval("[[1], [2], 'a' + str(1)]");
  EXPECT_EQ(encode(unshared.get()).memo_count, 0u);
  Ref shared = eval("(lambda x: [x, x])([5])");
  format::OpSummary s = encode(shared.get());
  EXPECT_EQ(s.memo_count, 1u);
  EXPECT_EQ(count(s, Op::Ref), 1u);
}

TEST(HeapEncoder, WritesFloatRunsAsOneOp) {
  Ref floats = eval("[i * 0.5 for i in range(10000)]");
  format::OpSummary s = encode(floats.get());
  EXPECT_EQ(count(s, Op::Float), 0u);
  EXPECT_EQ(count(s, Op::Floats), 3u);  // runs of at most 4096
}

TEST(HeapEncoder, DictsWithTheSameKeysShareAShape) {
  Ref dicts = eval("[{'a': i, 'b': -i} for i in range(100)]");
  format::OpSummary s = encode(dicts.get());
  EXPECT_EQ(count(s, Op::ShapeDict), 99u);  // the first dict is written plainly
  EXPECT_EQ(count(s, Op::SetItems), 1u);
  Ref shared = eval("(lambda d: [{'a': 1, 'b': 2}, d, d])({'a': 0, 'b': 0})");
  s = encode(shared.get());
  EXPECT_EQ(count(s, Op::ShapeValues), 1u);  // shared: shell first (for cycles), then its values
  EXPECT_EQ(count(s, Op::ShapeDict), 0u);     // the first sighting of the shape is plain
}

TEST(HeapEncoder, UnsupportedObjectNamesThePath) {
  Ref value = eval("{'outer': [1, {'inner': __import__('_thread').get_ident}]}");
  // A builtin function is fine; a frame object is not.
  Ref frame = eval("{'outer': [1, {'inner': __import__('sys')._getframe()}]}");
  EXPECT_NO_THROW(encode(value.get()));
  try {
    encode(frame.get());
    FAIL() << "a frame was encoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::UnsupportedObject);
    EXPECT_NE(e.message().find("root['outer'][1]['inner']: frame is not supported"), std::string::npos)
        << e.message();
  }
  PyErr_Clear();
}

TEST(HeapEncoder, DeepNestingUsesNoCStack) {
  Ref deep = eval("(lambda: [l := [], [l.append(l := []) for _ in range(200000)]][0])()");
  ASSERT_TRUE(deep);
  format::OpSummary s = encode(deep.get());
  EXPECT_EQ(count(s, Op::EmptyList), 200001u);
}

}  // namespace
}  // namespace stasis::snapshot
