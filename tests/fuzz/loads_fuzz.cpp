// Fuzzes the whole object loader (decode into Python objects) inside an embedded interpreter, as
// stasis.load does (Trust::Objects: the stream-code guard, the effect guard, the allowlists and
// the code verifier all run). Mutations of the golden snapshots reach the decoder past the
// checksum only when libFuzzer happens to keep it valid, so an input that is not a snapshot file
// is taken as an op stream and re-wrapped as a fresh, correctly checksummed payload — a hostile
// writer's file. Any error must be a snapshot error; a crash, a sanitizer report or a hang fails
// the run.
#include <Python.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "format/payload.h"
#include "format/preamble.h"
#include "format/snapshot_file.h"
#include "restore/heap_decoder.h"

namespace {
void check_kind(const stasis::Error& e) {
  using stasis::ErrorCode;
  switch (e.code()) {
    case ErrorCode::NotASnapshot: case ErrorCode::TruncatedSnapshot:
    case ErrorCode::CorruptSnapshot: case ErrorCode::IncompatibleSnapshot:
      return;
    default:
      __builtin_trap();
  }
}
}  // namespace

// `ops` as the op stream of a complete "objects" snapshot, every checksum valid: the container of
// FORMAT.md (format/preamble.h for the preamble and footer), the payload records written as
// cereal's portable binary archive writes them (tests/format/craft.py does the same in Python),
// compressed with one zstd context kept for the whole run — a writer per input would map and
// fault in megabytes of fresh memory per input under ASan.
static std::string wrap(const uint8_t* ops, size_t size) {
  using namespace stasis::format;
  static ZSTD_CCtx* cctx = [] {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    return c;
  }();
  static const std::string preamble = encode_preamble(current_preamble("objects", 0));
  auto u8 = [](std::string& o, uint8_t v) { o.push_back(char(v)); };
  auto u32 = [](std::string& o, uint32_t v) { o.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [](std::string& o, uint64_t v) { o.append(reinterpret_cast<const char*>(&v), 8); };
  std::string raw;
  u8(raw, 1);  // the portable archive's endianness byte: little-endian
  u8(raw, uint8_t(RecordTag::Header));
  u32(raw, 1);  // PayloadHeader's class version
  u64(raw, 7);
  raw += "objects";
  u64(raw, 1);  // root_count
  u64(raw, 0);  // hash_seed
  u64(raw, 0);  // meta: ""
  uint64_t chunks = 0;
  for (size_t at = 0; at < size; at += kMaxChunk, ++chunks) {
    size_t n = std::min(kMaxChunk, size - at);
    u8(raw, uint8_t(RecordTag::OpChunk));
    u64(raw, n);
    raw.append(reinterpret_cast<const char*>(ops + at), n);
  }
  u8(raw, uint8_t(RecordTag::End));
  u32(raw, 1);  // PayloadEnd's class version
  u64(raw, chunks);
  u64(raw, size);
  u64(raw, 0);
  u64(raw, 0);
  std::string body(ZSTD_compressBound(raw.size()), '\0');
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
  size_t n = ZSTD_compress2(cctx, body.data(), body.size(), raw.data(), raw.size());
  if (ZSTD_isError(n)) __builtin_trap();
  body.resize(n);
  Footer footer;
  footer.compressed_size = n;
  footer.raw_size = raw.size();
  footer.record_count = 2 + chunks;
  return preamble + body + encode_footer(footer);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Py_InitializeEx(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stasis;
  static const std::string_view kMagic("\x89STASIS\n", 8);
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // One decode per input: a snapshot file (the golden files and their mutations) is loaded as
  // load/loads do it, one decompression verified while the decoder runs (the container's own
  // checks and scan_ops are container_fuzz's); any other input is an op stream, re-wrapped in a
  // fresh, correctly checksummed payload — a hostile writer's file — and decoded without scan_ops,
  // on this thread (a read-ahead thread per input costs a context switch per chunk handed over,
  // milliseconds on a loaded machine).
  std::string wrapped;
  format::ReadOptions options;
  if (input.substr(0, kMagic.size()) == kMagic) {
    options.verify_payload = false;
  } else {
    options.read_ahead = false;  // verified when opened: decoded on this thread
    wrapped = wrap(data, size);
    input = wrapped;
  }
  try {
    auto file = format::SnapshotReader::open_bytes(input, options);
    format::PayloadReader payload(file);
    restore::HeapDecoder(payload).decode();  // the decoder must defend itself
  } catch (const Error& e) {
    check_kind(e);
  }
  PyErr_Clear();
  return 0;
}
