// Fuzzes the container reader and the op-stream validator: any input must end in a clean
// stasis::Error of a snapshot kind, never a crash, hang, leak or sanitizer report.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "format/payload.h"
#include "format/snapshot_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stasis;
  try {
    auto file = format::SnapshotReader::open_bytes(
        std::string_view(reinterpret_cast<const char*>(data), size), format::ReadOptions{});
    format::PayloadReader reader(file);
    format::scan_ops(reader);
  } catch (const Error& e) {
    switch (e.code()) {
      case ErrorCode::NotASnapshot: case ErrorCode::TruncatedSnapshot:
      case ErrorCode::CorruptSnapshot: case ErrorCode::IncompatibleSnapshot:
        break;
      default:
        __builtin_trap();  // any other kind is a bug in the reader
    }
  }
  return 0;
}
