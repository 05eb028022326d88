// Tests of restore/heap_decoder and the per-type decoders: hostile op streams are refused with
// CorruptSnapshot (never a crash, never a call the format does not allow).
#include "restore/heap_decoder.h"

#include <gtest/gtest.h>

#include <functional>

#include "format/payload.h"
#include "format/snapshot_file.h"

namespace stasis::restore {
namespace {

using format::Op;
using Ops = std::function<void(format::PayloadWriter&)>;

std::string wrap(const Ops& ops) {
  std::string out;
  auto w = format::SnapshotWriter::to_string(out, format::WriteOptions{});
  format::PayloadWriter p(w, format::PayloadHeader{"objects", 1});
  ops(p);
  p.finish();
  w.commit();
  return out;
}

Ref decode(const Ops& ops) {
  std::string bytes = wrap(ops);
  auto r = format::SnapshotReader::open_bytes(bytes, format::ReadOptions{});
  format::PayloadReader p(r);
  return HeapDecoder(p).decode();
}

ErrorCode code_of(const Ops& ops, std::string* message = nullptr) {
  try {
    decode(ops);
  } catch (const Error& e) {
    PyErr_Clear();
    if (message) *message = e.message();
    return e.code();
  }
  return ErrorCode::Internal;  // "no error"
}

void str(format::PayloadWriter& p, const std::string& s) {
  p.op(Op::Str);
  p.uvar(s.size());
  p.raw(s.data(), s.size());
}

void global(format::PayloadWriter& p, const char* module, const char* name) {
  str(p, module);
  str(p, name);
  p.op(Op::Global);
}

TEST(HeapDecoder, BuildsASetAndAFrozenSet) {
  Ref r = decode([](format::PayloadWriter& p) {
    p.op(Op::EmptySet);
    p.op(Op::IntSmall);
    p.svar(1);
    p.op(Op::AddItems);
    p.uvar(1);
    p.op(Op::IntSmall);
    p.svar(2);
    p.op(Op::FrozenSet);
    p.uvar(1);
    p.op(Op::Tuple);
    p.uvar(2);
  });
  ASSERT_TRUE(r);
  EXPECT_TRUE(PySet_CheckExact(PyTuple_GET_ITEM(r.get(), 0)));
  EXPECT_TRUE(PyFrozenSet_CheckExact(PyTuple_GET_ITEM(r.get(), 1)));
}

TEST(HeapDecoder, RefusesToCallAFunctionThatIsNotAnAllowedReducer) {
  std::string msg;
  EXPECT_EQ(code_of([](format::PayloadWriter& p) {
              global(p, "os", "system");
              str(p, "echo pwned");
              p.op(Op::Tuple);
              p.uvar(1);
              p.op(Op::Reduce);
            }, &msg),
            ErrorCode::CorruptSnapshot);
  EXPECT_NE(msg.find("loading never calls"), std::string::npos) << msg;
}

TEST(HeapDecoder, GlobalMustBeAClassOrFunction) {
  EXPECT_EQ(code_of([](format::PayloadWriter& p) { global(p, "os", "environ"); }),
            ErrorCode::CorruptSnapshot);
  EXPECT_EQ(code_of([](format::PayloadWriter& p) { global(p, "no_such_module_xyz", "f"); }),
            ErrorCode::IncompatibleSnapshot);
}

TEST(HeapDecoder, GeneratorOfAnOrdinaryFunctionIsRefused) {
  EXPECT_EQ(code_of([](format::PayloadWriter& p) {
              global(p, "os", "getcwd");  // a builtin, not a generator function
              p.op(Op::Generator);
            }),
            ErrorCode::CorruptSnapshot);
}

TEST(HeapDecoder, RejectsStackUnderflowAndUnknownOps) {
  EXPECT_EQ(code_of([](format::PayloadWriter& p) { p.op(Op::Build); }), ErrorCode::CorruptSnapshot);
  EXPECT_EQ(code_of([](format::PayloadWriter& p) { p.op(static_cast<Op>(0xEE)); }),
            ErrorCode::CorruptSnapshot);
  EXPECT_EQ(code_of([](format::PayloadWriter& p) {
              p.op(Op::EmptyDict);
              p.op(Op::ShapeValues);
              p.uvar(7);
              p.uvar(1);
            }),
            ErrorCode::CorruptSnapshot);
}

TEST(HeapDecoder, FunctionClosureMustMatchTheCode) {
  // A code object with one free variable, given no closure: refused before it could run.
  std::string msg;
  EXPECT_EQ(code_of([](format::PayloadWriter& p) {
              global(p, "builtins", "compile");  // not allowed in Reduce: shows the refusal path
              p.op(Op::Pop);
              p.uvar(1);
              p.op(Op::None);
              p.op(Op::None);
              str(p, "f");
              str(p, "f");
              p.op(Op::None);
              p.op(Op::Function);
            }, &msg),
            ErrorCode::CorruptSnapshot);
  EXPECT_NE(msg.find("Function without a code object"), std::string::npos) << msg;
}

bool imported(const char* module) {
  PyObject* modules = PyImport_GetModuleDict();
  return PyDict_GetItemString(modules, module) != nullptr;
}

// load/loads read the payload once and verify it as they go: plain values are built meanwhile,
// but an op with effects (here an import) waits for the verdict, and a damaged payload fails with
// zstd's error, not with whatever its garbage ops did.
TEST(HeapDecoder, OpsWithEffectsWaitForTheVerification) {
  ASSERT_FALSE(imported("colorsys")) << "the test needs a module nothing imported yet";
  // Plain values, an import, and more plain values: many chunks after the import, more than
  // the reader decompresses ahead, so the decoder reaches it long before the end is verified.
  const uint64_t n = 600'000, at = 1000;
  std::string bytes = wrap([&](format::PayloadWriter& p) {
    for (uint64_t i = 0; i < n; ++i) {
      if (i == at) global(p, "colorsys", "rgb_to_hsv");
      p.op(Op::IntSmall);
      p.svar(int64_t(i * 2654435761u));
    }
    p.op(Op::Tuple);
    p.uvar(n + 1);
  });
  format::ReadOptions options;
  options.verify_payload = false;
  for (size_t from_end : {41, 45}) {  // the frame checksum, the last compressed block
    std::string bad = bytes;
    bad[bad.size() - from_end] ^= 0x10;
    std::string msg;
    try {
      auto r = format::SnapshotReader::open_bytes(bad, options);
      format::PayloadReader p(r);
      HeapDecoder(p).decode();
      ADD_FAILURE() << "a damaged payload decoded";
    } catch (const Error& e) {
      PyErr_Clear();
      EXPECT_EQ(e.code(), ErrorCode::CorruptSnapshot);
      msg = e.message();
    }
    EXPECT_NE(msg.find("damaged"), std::string::npos) << msg;
    EXPECT_FALSE(imported("colorsys")) << "an op with effects ran on unverified bytes";
  }
  auto r = format::SnapshotReader::open_bytes(bytes, options);
  format::PayloadReader p(r);
  Ref root = HeapDecoder(p).decode();
  ASSERT_TRUE(root);
  EXPECT_EQ(PyTuple_GET_SIZE(root.get()), Py_ssize_t(n + 1));
  EXPECT_TRUE(PyFunction_Check(PyTuple_GET_ITEM(root.get(), Py_ssize_t(at))));
  EXPECT_TRUE(imported("colorsys"));
}

}  // namespace
}  // namespace stasis::restore
