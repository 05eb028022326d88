// Fuzzes the whole object loader (validate, then decode into Python objects) inside an embedded
// interpreter, as stasis.load does (Trust::Objects: the stream-code guard, the allowlists and the
// code verifier all run). Mutations of the golden snapshots reach the decoder past the checksum
// only when libFuzzer happens to keep it valid, so the harness also feeds the op stream directly:
// the input bytes are re-wrapped as a fresh, correctly checksummed payload — a hostile writer's
// file. Any error must be a snapshot error; a crash, a sanitizer report or a hang fails the run.
#include <Python.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "format/payload.h"
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

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Py_InitializeEx(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stasis;
  // 1. The input as a snapshot file.
  try {
    auto file = format::SnapshotReader::open_bytes(
        std::string_view(reinterpret_cast<const char*>(data), size), format::ReadOptions{});
    {
      format::PayloadReader scan(file);
      format::scan_ops(scan);
    }
    format::PayloadReader payload(file);
    restore::HeapDecoder(payload).decode();
  } catch (const Error& e) {
    check_kind(e);
  }
  PyErr_Clear();
  // 1b. As load/loads read it: one decompression, verified while the decoder runs.
  try {
    format::ReadOptions unverified;
    unverified.verify_payload = false;
    auto file = format::SnapshotReader::open_bytes(
        std::string_view(reinterpret_cast<const char*>(data), size), unverified);
    format::PayloadReader payload(file);
    restore::HeapDecoder(payload).decode();
  } catch (const Error& e) {
    check_kind(e);
  }
  PyErr_Clear();
  // 2. The input as an op stream inside a valid container: exercises the decoder directly.
  std::string wrapped;
  {
    format::WriteOptions fast;
    fast.level = 1;
    fast.workers = 0;  // compress on this thread: a worker thread per input halves the exec rate
    auto w = format::SnapshotWriter::to_string(wrapped, fast);
    format::PayloadWriter p(w, format::PayloadHeader{"objects", 1});
    p.raw(data, size);
    p.finish();
    w.commit();
  }
  try {
    auto file = format::SnapshotReader::open_bytes(wrapped, format::ReadOptions{});
    format::PayloadReader payload(file);
    restore::HeapDecoder(payload).decode();  // without scan_ops: the decoder must defend itself
  } catch (const Error& e) {
    check_kind(e);
  }
  PyErr_Clear();
  return 0;
}
