// format/describe.h: the op stream followed onto descriptions — kinds, items, types, lengths,
// containers made whole that grow later, floats kept as a count, the decoder's refusals, sizes.
#include "format/describe.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "error_code_of.h"
#include "format/payload.h"
#include "format/snapshot_file.h"

namespace stasis::format {
namespace {

using stasis::testing::code_of;

// A snapshot in memory whose op stream `ops` writes (one root unless said otherwise).
std::string stream(const std::function<void(PayloadWriter&)>& ops, uint64_t roots = 1) {
  std::string out;
  auto w = SnapshotWriter::to_string(out, WriteOptions{});
  {
    PayloadWriter p(w, PayloadHeader{"program", roots});
    ops(p);
    p.finish();
  }
  w.commit();
  return out;
}

void str(PayloadWriter& p, const std::string& s) {
  p.op(Op::Str);
  p.uvar(s.size());
  p.raw(s.data(), s.size());
}

Description describe(const std::string& bytes) {
  auto r = SnapshotReader::open_bytes(bytes, ReadOptions{});
  PayloadReader p(r);
  return describe_ops(p, r.footer().raw_size);
}

std::vector<uint32_t> items(const Description& d, uint32_t id) {
  auto its = d.items(d.nodes[id]);
  return std::vector<uint32_t>(its.begin(), its.end());
}

TEST(Describe, ScalarsContainersAndTheirTypes) {
  Description d = describe(stream([](PayloadWriter& p) {
    p.op(Op::EmptyList);
    str(p, "a\x1b");
    p.op(Op::IntSmall);
    p.svar(-7);
    p.op(Op::Tuple);
    p.uvar(2);
    p.op(Op::Appends);
    p.uvar(1);
  }));
  ASSERT_EQ(d.roots.size(), 1u);
  const DescNode& list = d.nodes[d.roots[0]];
  EXPECT_EQ(list.kind, DescKind::List);
  EXPECT_EQ(list.length, 1u);
  auto tuple = items(d, d.roots[0]);
  ASSERT_EQ(tuple.size(), 1u);
  EXPECT_EQ(d.nodes[tuple[0]].kind, DescKind::Tuple);
  auto pair = items(d, tuple[0]);
  ASSERT_EQ(pair.size(), 2u);
  EXPECT_EQ(d.text_of(d.nodes[pair[0]]), "a\x1b");
  EXPECT_EQ(d.nodes[pair[1]].ival, -7);
  EXPECT_EQ(d.types[d.nodes[pair[1]].type].qualname, "int");
  EXPECT_EQ(d.shallow_size(pair[1]), 28u);  // -7: not one of CPython's shared small ints
  EXPECT_EQ(d.shallow_size(pair[0]), 49u + 2);
  EXPECT_EQ(d.summary.counts[uint8_t(Op::Tuple)], 1u);
}

TEST(Describe, AShapedDictThatGrowsKeepsItsItemsInOrder) {
  Description d = describe(stream([](PayloadWriter& p) {
    str(p, "k");
    p.op(Op::Tuple);
    p.uvar(1);
    p.op(Op::Memo);  // the shape: memo id 0
    p.count_memo();
    p.op(Op::Pop);
    p.uvar(1);
    p.op(Op::IntSmall);
    p.svar(1);
    p.op(Op::ShapeDict);
    p.uvar(0);
    p.uvar(1);
    str(p, "z");
    p.op(Op::IntSmall);
    p.svar(2);
    p.op(Op::SetItems);
    p.uvar(1);
  }));
  const DescNode& dict = d.nodes[d.roots[0]];
  EXPECT_EQ(dict.kind, DescKind::Dict);
  EXPECT_EQ(dict.length, 2u);
  auto kv = items(d, d.roots[0]);
  ASSERT_EQ(kv.size(), 4u);
  EXPECT_EQ(d.text_of(d.nodes[kv[0]]), "k");
  EXPECT_EQ(d.nodes[kv[1]].ival, 1);
  EXPECT_EQ(d.text_of(d.nodes[kv[2]]), "z");
  EXPECT_EQ(d.nodes[kv[3]].ival, 2);
  EXPECT_EQ(d.shallow_size(kv[1]), 0u);  // 1 and 'k' are CPython's shared objects
  EXPECT_EQ(d.shallow_size(kv[0]), 0u);
}

TEST(Describe, ObjectsAreNamedByTheirClassAndKeepTheirState) {
  Description d = describe(stream([](PayloadWriter& p) {
    str(p, "shop.items");
    str(p, "Item");
    p.op(Op::Global);
    p.op(Op::Tuple);  // no arguments
    p.uvar(0);
    p.op(Op::NewObj);
    p.op(Op::EmptyDict);
    str(p, "price");
    p.op(Op::IntSmall);
    p.svar(3);
    p.op(Op::SetItems);
    p.uvar(1);
    p.op(Op::Build);
  }));
  const DescNode& obj = d.nodes[d.roots[0]];
  EXPECT_EQ(obj.kind, DescKind::Object);
  EXPECT_EQ(d.types[obj.type].module, "shop.items");
  EXPECT_EQ(d.types[obj.type].qualname, "Item");
  uint32_t state = d.body_of(obj).a[2];
  ASSERT_NE(state, kNoNode);
  EXPECT_EQ(d.nodes[state].kind, DescKind::Dict);
  auto heap = d.heap();
  bool found = false;
  for (const auto& row : heap)
    if (d.types[row.type].qualname == "Item") found = row.count == 1;
  EXPECT_TRUE(found);
}

TEST(Describe, FloatsAreCountedAndTheFirstKept) {
  Description d = describe(stream([](PayloadWriter& p) {
    p.op(Op::EmptyList);
    p.op(Op::Floats);
    p.uvar(20);
    std::string zeros(20 * 8, '\0');  // 20 x 0.0
    p.raw(zeros.data(), zeros.size());
  }));
  const DescNode& list = d.nodes[d.roots[0]];
  EXPECT_EQ(list.length, 20u);
  EXPECT_EQ(items(d, d.roots[0]).size(), 8u);
  EXPECT_EQ(d.extra_floats, 12u);
  uint64_t floats = 0;
  for (const auto& row : d.heap())
    if (d.types[row.type].qualname == "float") floats = row.count;
  EXPECT_EQ(floats, 20u);
  auto held = d.held(d.roots[0], 1000);
  EXPECT_EQ(held.bytes, 56u + 8 * 20 + 24 * 20);
  EXPECT_TRUE(held.complete);
}

TEST(Describe, HeldSizesCountSharedObjectsOnceAndStopAtTheBudget) {
  Description d = describe(stream([](PayloadWriter& p) {
    p.op(Op::EmptyList);
    str(p, "abc");
    p.op(Op::Memo);
    p.count_memo();
    p.op(Op::Ref);
    p.uvar(0);
    p.op(Op::Appends);
    p.uvar(2);
  }));
  auto h = d.held(d.roots[0], 100);
  EXPECT_EQ(h.bytes, 56u + 16 + (49 + 3));  // the str once
  EXPECT_EQ(h.objects, 2u);
  EXPECT_FALSE(d.held(d.roots[0], 1).complete);
}

TEST(Describe, RefusesWhatTheDecoderRefuses) {
  auto refused = [](const std::function<void(PayloadWriter&)>& ops) {
    std::string bytes = stream(ops);
    return code_of([&] { describe(bytes); });
  };
  EXPECT_EQ(refused([](PayloadWriter& p) {  // appends to a str
              str(p, "x");
              p.op(Op::None);
              p.op(Op::Appends);
              p.uvar(1);
            }),
            ErrorCode::CorruptSnapshot);
  EXPECT_EQ(refused([](PayloadWriter& p) {  // a cell's value into a list
              p.op(Op::EmptyList);
              p.op(Op::None);
              p.op(Op::CellSet);
            }),
            ErrorCode::CorruptSnapshot);
  EXPECT_EQ(refused([](PayloadWriter& p) {  // a memo id never defined
              p.op(Op::Ref);
              p.uvar(3);
            }),
            ErrorCode::CorruptSnapshot);
  EXPECT_EQ(refused([](PayloadWriter& p) {  // floats onto None
              p.op(Op::None);
              p.op(Op::Floats);
              p.uvar(0);
            }),
            ErrorCode::CorruptSnapshot);
}

}  // namespace
}  // namespace stasis::format
