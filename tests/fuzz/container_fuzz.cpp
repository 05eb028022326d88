// Fuzzes the container reader, the op-stream validator and the describer of `stasis inspect`
// (format/describe.h): any input must end in a clean stasis::Error of a snapshot kind, never a
// crash, hang, leak or sanitizer report.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "format/describe.h"
#include "format/payload.h"
#include "format/snapshot_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stasis;
  try {
    auto file = format::SnapshotReader::open_bytes(
        std::string_view(reinterpret_cast<const char*>(data), size), format::ReadOptions{});
    {
      format::PayloadReader reader(file);
      format::scan_ops(reader);
    }
    // What scan_ops accepts, the describer walks too; then what inspect asks of the description.
    format::PayloadReader again(file);
    format::Description d = format::describe_ops(again, file.footer().raw_size);
    d.heap();
    for (uint32_t root : d.roots) d.held(root, 100000);
    for (uint32_t i = 0; i < d.nodes.size() && i < 64; ++i) {
      d.items(d.nodes[i]);
      d.text_of(d.nodes[i]);
    }
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
