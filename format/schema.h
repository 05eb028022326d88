// format/schema.h — THE snapshot schema: the format version, the payload's cereal records and the
// object-graph op codes. Defined here once; FORMAT.md documents every item. Any change to a record,
// a tag or an op is a format change: bump kFormatVersion in the same commit and regenerate the
// golden files (build/bin/python tests/golden/regen.py); tests/golden catches a forgotten bump.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace stasis::format {

inline constexpr uint16_t kFormatVersion = 9;

// Every payload record is preceded by its tag (a uint8 in the cereal archive).
enum class RecordTag : uint8_t {
  Header = 1,   // PayloadHeader, always first
  OpChunk = 2,  // OpChunk: a slice of the object-graph op stream
  End = 3,      // PayloadEnd, always last
};

struct PayloadHeader {
  std::string kind;         // "objects": one root object graph; "program": a suspended program
  uint64_t root_count = 1;  // roots left on the op machine's stack at the end
  // "program" payloads: PYTHONHASHSEED of the suspended program; `stasis resume` must know it
  // before it builds any object (set and str-keyed orders depend on it). 0 for "objects".
  uint64_t hash_seed = 0;
  // "program" payloads: what `stasis resume` sets up before it builds any object, as a JSON
  // object (python/stasis/program/, FORMAT.md): the program's own modules (created empty, so
  // functions restored by value find their globals), its sys.path, and the import hook's
  // selection (roots, rewrite, no_rewrite), so that re-imported modules get the same code. "" else.
  std::string meta;
  template <class Archive>
  void save(Archive& ar, std::uint32_t /*version*/) const {
    ar(kind, root_count, hash_seed, meta);
  }
  // The same bytes as cereal's own std::string load, with the length checked before allocating:
  // the header may be read before the payload is verified (format/payload.h).
  template <class Archive>
  void load(Archive& ar, std::uint32_t /*version*/) {
    load_string(ar, kind);
    ar(root_count, hash_seed);
    load_string(ar, meta);
  }

 private:
  static constexpr uint64_t kMaxString = uint64_t(64) << 20;
  template <class Archive>
  static void load_string(Archive& ar, std::string& s) {
    cereal::size_type size = 0;
    ar(cereal::make_size_tag(size));
    if (size > kMaxString)
      throw Error(ErrorCode::CorruptSnapshot, "payload header field claims " +
                                                  std::to_string(size) + " bytes");
    s.resize(size_t(size));
    ar(cereal::binary_data(s.data(), s.size()));
  }
};

// The object graph is one op stream (ops below), cut into chunks of at most kMaxChunk bytes so
// neither side holds it whole. A chunk boundary may fall anywhere, even inside an op.
inline constexpr size_t kMaxChunk = 1 << 18;
// OpChunk record: uint64 size, then `size` bytes (size <= kMaxChunk).
template <class Archive>
void save_op_chunk(Archive& ar, const uint8_t* data, uint64_t size) {
  ar(size, cereal::binary_data(data, size));
}
template <class Archive>
void load_op_chunk(Archive& ar, std::vector<uint8_t>& bytes) {
  uint64_t size = 0;
  ar(size);
  if (size > kMaxChunk)  // never trust a length before allocating for it
    throw Error(ErrorCode::CorruptSnapshot, "op chunk claims " + std::to_string(size) +
                                                " bytes, at most " + std::to_string(kMaxChunk) +
                                                " are allowed");
  bytes.resize(size);
  ar(cereal::binary_data(bytes.data(), bytes.size()));
}

struct PayloadEnd {
  uint64_t chunk_count = 0;
  uint64_t op_bytes = 0;     // total bytes of the op stream
  uint64_t object_count = 0; // objects encoded (leaves and containers)
  uint64_t memo_count = 0;   // objects given a memo id (shared or possibly shared)
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t /*version*/) {
    ar(chunk_count, op_bytes, object_count, memo_count);
  }
};

// The op machine: a value stack and a memo table (ids 0, 1, 2... in MEMO order).
// Integers in op arguments are unsigned LEB128 varints ("uvar"); signed ones are zigzag ("svar").
//
// THE table of ops: every fact about an op that more than one place needs is here, once —
// its code, name, operands, stack effect and whether it builds only plain values. Read by
// format/payload.cpp (op_name, scan_ops), restore/ (which ops may run before the payload is
// verified) and tests/golden (every op must be covered). FORMAT.md documents each op.
//
// Operands, in the order they follow the op byte:
enum class Operand : uint8_t {
  None,       // nothing
  Svar,       // svar v
  Bytes,      // uvar n, then n bytes
  Fixed8,     // 8 bytes
  Fixed16,    // 16 bytes
  Count,      // uvar k: the count the stack effect uses
  MemoId,     // uvar id of an earlier Memo
  MemoCount,  // uvar id of an earlier Memo (a shape: a tuple of keys), uvar k
  Floats,     // uvar n, then 8n bytes
  Layout,     // uvar mask, uvar finger, uvar n, n uvar deltas, uvar d, d uvar deltas
  Buffer,     // uvar flags, uvar width, uvar n, then n bytes in blocks of byte planes (byte_planes.h)
};
// Stack effect: values the op needs on the stack and leaves in their place.
enum class Effect : uint8_t {
  Fixed,    // needs `needs`, leaves `leaves`
  Items,    // k values onto the container below them: needs k + 1, leaves 1
  Pairs,    // k key/value pairs onto the container below them: needs 2k + 1, leaves 1
  Collect,  // k values into a new object: needs k, leaves 1
  Drop,     // discards k values: needs k, leaves 0
};

// X(name, code, operand, effect, needs, leaves, plain)
// plain: builds only plain built-in values (no import, no call of a class, a reducer or a
// handler, no code object, function or class), so the decoder may run it before the payload is
// verified (format/payload.h); every other op waits for the verdict.
#define STASIS_OPS(X)                                                                          \
  X(None, 0x01, None, Fixed, 0, 1, true)            /* push None */                            \
  X(True, 0x02, None, Fixed, 0, 1, true)            /* push True */                            \
  X(False, 0x03, None, Fixed, 0, 1, true)           /* push False */                           \
  X(IntSmall, 0x04, Svar, Fixed, 0, 1, true)        /* push int v (|v| < 2**63) */             \
  X(IntBig, 0x05, Bytes, Fixed, 0, 1, true)         /* push int, little-endian 2's complement */ \
  X(Float, 0x06, Fixed8, Fixed, 0, 1, true)         /* push float, IEEE-754 big-endian (v3) */ \
  X(Str, 0x07, Bytes, Fixed, 0, 1, true)            /* push str, UTF-8 (surrogates pass) */    \
  X(Bytes, 0x08, Bytes, Fixed, 0, 1, true)          /* push bytes */                           \
  X(Memo, 0x09, None, Fixed, 1, 1, true)            /* next memo id to the top value */        \
  X(Ref, 0x0A, MemoId, Fixed, 0, 1, true)           /* push memo[id] */                        \
  X(EmptyList, 0x0B, None, Fixed, 0, 1, true)       /* push [] */                              \
  X(Appends, 0x0C, Count, Items, 0, 0, true)        /* append k values to the list below */    \
  X(EmptyDict, 0x0D, None, Fixed, 0, 1, true)       /* push {} */                              \
  X(SetItems, 0x0E, Count, Pairs, 0, 0, true)       /* insert k pairs into the dict below */   \
  X(Tuple, 0x0F, Count, Collect, 0, 0, true)        /* push a tuple of k values */             \
  X(Pop, 0x10, Count, Drop, 0, 0, true)             /* discard k values (FORMAT.md) */         \
  /* --- format version 2: the heap snapshot engine (FORMAT.md, "The op stream") --- */       \
  X(Ellipsis, 0x11, None, Fixed, 0, 1, true)        /* push Ellipsis */                        \
  X(NotImplemented, 0x12, None, Fixed, 0, 1, true)  /* push NotImplemented */                  \
  X(Complex, 0x13, Fixed16, Fixed, 0, 1, true)      /* push complex(real, imag) */             \
  X(ByteArray, 0x14, Bytes, Fixed, 0, 1, true)      /* push bytearray */                       \
  X(EmptySet, 0x15, None, Fixed, 0, 1, true)        /* push set() */                           \
  X(AddItems, 0x16, Count, Items, 0, 0, true)       /* add k values to the set below */        \
  X(FrozenSet, 0x17, Count, Collect, 0, 0, true)    /* push a frozenset of k values */         \
  X(Floats, 0x18, Floats, Fixed, 1, 1, true)        /* append n floats to the list on top */   \
  X(Global, 0x19, None, Fixed, 2, 1, false)         /* module, qualname: push what is there */ \
  X(Module, 0x1A, None, Fixed, 1, 1, false)         /* name: push the imported module */       \
  X(Reduce, 0x1B, None, Fixed, 2, 1, false)         /* callable, args: push callable(*args) */ \
  X(NewObj, 0x1C, None, Fixed, 2, 1, false)         /* cls, args: push cls.__new__(cls, *a) */ \
  X(Build, 0x1D, None, Fixed, 2, 1, false)          /* state onto the object below */          \
  X(ListItems, 0x1E, Count, Items, 0, 0, false)     /* append k values to the object below */  \
  X(DictItems, 0x1F, Count, Pairs, 0, 0, false)     /* obj[key] = value, k pairs */            \
  X(Cell, 0x20, None, Fixed, 0, 1, false)           /* push a new empty cell */                \
  X(CellSet, 0x21, None, Fixed, 2, 1, false)        /* value into the cell below */            \
  X(Code, 0x22, None, Fixed, 1, 1, false)           /* tuple of 18 fields: push code object */ \
  X(Function, 0x23, None, Fixed, 5, 1, false)       /* code, globals, name, qualname, closure */ \
  X(FunctionState, 0x24, None, Fixed, 7, 1, false)  /* defaults ... module onto function */   \
  X(Class, 0x25, None, Fixed, 4, 1, false)          /* metaclass, name, bases, namespace */    \
  X(ClassState, 0x26, None, Fixed, 2, 1, false)     /* dict: setattr each on the class below */ \
  X(Generator, 0x27, None, Fixed, 1, 1, false)      /* function: a not started generator */    \
  X(GeneratorFrame, 0x28, None, Fixed, 6, 1, false) /* locals, mask, stack, lasti, state */    \
  X(WeakRef, 0x29, None, Fixed, 2, 1, false)        /* referent, callback: push weakref.ref */ \
  X(DeadWeakRef, 0x2A, None, Fixed, 0, 1, true)     /* push a dead weakref.ref */              \
  X(Registered, 0x2B, None, Fixed, 2, 1, false)     /* key, state: push the handler's load */  \
  X(ExceptionState, 0x2C, None, Fixed, 4, 1, false) /* cause, context, suppress onto exc */    \
  X(ShapeValues, 0x2D, MemoCount, Items, 0, 0, true) /* k values under the shape's keys */     \
  X(ShapeDict, 0x2E, MemoCount, Collect, 0, 0, true) /* push a dict of the shape's k keys */   \
  X(SetLayout, 0x2F, Layout, Fixed, 1, 1, true)     /* the hash-table layout of the set on top */ \
  /* --- format version 7 --- */                                                              \
  X(Buffer, 0x30, Buffer, Fixed, 0, 1, true)        /* push bytes (flags bit 0) or bytearray */

enum class Op : uint8_t {
#define STASIS_OP_ENUM(name, code, operand, effect, needs, leaves, plain) name = code,
  STASIS_OPS(STASIS_OP_ENUM)
#undef STASIS_OP_ENUM
};

struct OpInfo {
  const char* name = nullptr;  // nullptr: not an op
  Operand operand = Operand::None;
  Effect effect = Effect::Fixed;
  uint8_t needs = 0, leaves = 0;
  bool plain = false;
};

namespace detail {
struct OpTable {
  OpInfo ops[256]{};
  uint8_t last = 0;
  constexpr OpTable() {
#define STASIS_OP_INFO(name_, code, operand_, effect_, needs_, leaves_, plain_)               \
  ops[code] = OpInfo{#name_, Operand::operand_, Effect::effect_, needs_, leaves_, plain_};   \
  if (code > last) last = code;
    STASIS_OPS(STASIS_OP_INFO)
#undef STASIS_OP_INFO
  }
};
inline constexpr OpTable kOpTable{};
}  // namespace detail

// The facts of `op`; info.name is nullptr for a byte that is not an op.
constexpr const OpInfo& op_info(uint8_t op) { return detail::kOpTable.ops[op]; }
inline constexpr uint8_t kLastOp = detail::kOpTable.last;
static_assert(kLastOp == 0x30, "a new op: bump kFormatVersion, FORMAT.md, tests/golden");

// The writer fills containers (Appends, SetItems, AddItems, ListItems, DictItems) in batches of at
// most kBatch values, which bounds the reader's stack by nesting depth x 2 x kBatch.
inline constexpr uint64_t kBatch = 1000;

// The most values the reader's stack may hold at once: a flood of values that no op consumes is
// refused (CorruptSnapshotError naming the op) before it exhausts memory. Legitimate streams stay
// far below it (nesting depth x 2 x kBatch, plus the items of the largest tuple or frozenset).
inline constexpr uint64_t kMaxStack = uint64_t(1) << 25;

}  // namespace stasis::format

CEREAL_CLASS_VERSION(stasis::format::PayloadHeader, 1)
CEREAL_CLASS_VERSION(stasis::format::PayloadEnd, 1)
