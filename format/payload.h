// format/payload.h — the payload's record sequence: PayloadHeader, OpChunk..., PayloadEnd
// (format/schema.h), with a byte-level op stream on top. PayloadWriter is used by snapshot/,
// PayloadReader by restore/ and by scan_ops() (validation and `stasis inspect`).
// Invariant: op bytes are buffered into chunks of at most kMaxChunk; neither side holds more than
// a few (the reader decompresses up to kReadAhead chunks ahead on a background thread, so zstd
// runs while the decoder builds objects; only that thread touches the archive after the header).
// Verification: when the SnapshotReader did not check the payload when it opened, this one pass
// is the check (zstd blocks, frame checksum, raw size, end record); verified() says when it has
// passed. wait_verified() blocks until then: meanwhile the background thread reads ahead without
// the kReadAhead bound (up to ReadOptions::max_buffered bytes, then it verifies the rest without
// keeping it, and decompresses that part again once the payload is verified).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <cstring>
#include <string>
#include <vector>

#include "format/schema.h"
#include "format/snapshot_file.h"

namespace stasis::format {

class PayloadWriter {
 public:
  PayloadWriter(SnapshotWriter& file, const PayloadHeader& header);

  void op(Op o) {
    if (used_ + 1 > kMaxChunk) flush_chunk();
    buf_[used_++] = static_cast<uint8_t>(o);
  }
  void uvar(uint64_t v) {
    if (used_ + 10 > kMaxChunk) flush_chunk();
    while (v >= 0x80) {
      buf_[used_++] = static_cast<uint8_t>(v | 0x80);
      v >>= 7;
    }
    buf_[used_++] = static_cast<uint8_t>(v);
  }
  void svar(int64_t v) { uvar((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void raw(const void* data, size_t size);
  // Room for `size` (<= kMaxChunk) bytes written in place by the caller; they count as written.
  uint8_t* claim(size_t size) {
    if (used_ + size > kMaxChunk) flush_chunk();
    uint8_t* p = buf_.data() + used_;
    used_ += size;
    return p;
  }
  // A large buffer, items of `width` bytes: written after the op chunks so far as buffer segments
  // (SnapshotWriter::segments), outside the op stream; returns their payload offset, which the
  // Buffer op that follows names.
  uint64_t segments(const void* data, uint64_t n, size_t width) {
    flush_chunk();
    return file_.segments(data, n, width);
  }
  void count_object() { ++end_.object_count; }
  void count_objects(uint64_t n) { end_.object_count += n; }
  void count_memo() { ++end_.memo_count; }
  uint64_t memo_count() const { return end_.memo_count; }

  void finish();  // writes the last chunk and PayloadEnd

 private:
  void flush_chunk();
  SnapshotWriter& file_;
  std::vector<uint8_t> buf_;
  size_t used_ = 0;
  PayloadEnd end_;
};

class PayloadReader {
 public:
  // Reads PayloadHeader from a fresh archive of `file`.
  explicit PayloadReader(SnapshotReader& file);
  ~PayloadReader();
  PayloadReader(const PayloadReader&) = delete;
  PayloadReader& operator=(const PayloadReader&) = delete;

  const PayloadHeader& header() const { return header_; }
  bool at_end() {
    return pos_ == chunk_.size() && !next_chunk();
  }
  uint8_t byte() {
    if (pos_ == chunk_.size() && !next_chunk()) throw past_end();
    return chunk_[pos_++];
  }
  uint64_t uvar() {
    if (chunk_.size() - pos_ >= 10) {  // the whole varint is in this chunk
      const uint8_t* p = chunk_.data() + pos_;
      uint64_t v = p[0] & 0x7F;
      if (!(p[0] & 0x80)) {
        pos_ += 1;
        return v;
      }
      for (int i = 1; i < 10; ++i) {
        v |= uint64_t(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
          pos_ += size_t(i) + 1;
          return v;
        }
      }
      throw Error(ErrorCode::CorruptSnapshot, "malformed varint at op byte " + std::to_string(offset()));
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = byte();
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw Error(ErrorCode::CorruptSnapshot, "malformed varint at op byte " + std::to_string(offset()));
  }
  int64_t svar() {
    uint64_t u = uvar();
    return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  // Copies `size` op bytes into `out` (they may span chunks).
  void raw(void* out, size_t size);
  // Returns a view of `size` op bytes, valid until the next read.
  std::string_view view(size_t size) {
    if (chunk_.size() - pos_ >= size) {
      std::string_view v(reinterpret_cast<const char*>(chunk_.data() + pos_), size);
      pos_ += size;
      return v;
    }
    return view_across(size);
  }
  uint64_t offset() const { return consumed_ + pos_; }
  // The payload's raw size as the footer gives it: no op can need more bytes than that (checked
  // against the data when the payload ends).
  uint64_t raw_size() const;
  // The payload's stored (compressed) size: raw segments lie within it.
  uint64_t stored_size() const;
  // The segments holding the n bytes at payload offset `at` (a Buffer op stored out of line):
  // check_segments checks their headers (call it before allocating the n bytes); read_segments
  // reads them into dst, each checked against its checksum before it is unpacked.
  void check_segments(uint64_t at, uint64_t n) { file_.check_segments(at, n); }
  void read_segments(uint64_t at, void* dst, uint64_t n) { file_.read_segments(at, dst, n); }
  // After at_end(): the end record and the check that nothing follows it.
  const PayloadEnd& end() const { return end_; }
  // True once every byte of the payload passed zstd's checks (when opened, or by this pass).
  bool verified() const { return verified_; }
  // Blocks until the whole payload is verified; throws its error (CorruptSnapshot, Truncated...)
  // if it is not. The op bytes not read yet stay available.
  void wait_verified() {
    if (!verified_) wait_for_verification(true);
  }
  // After an error while decoding unverified bytes: throws the payload's own error, if it has one
  // (a damaged frame explains garbage ops better than the op does); returns when it verifies.
  void rethrow_payload_error() {
    if (!verified_) wait_for_verification(false);
  }

 private:
  bool next_chunk();
  std::string_view view_across(size_t size);
  void wait_for_verification(bool keep);
  Error past_end() const;
  bool next_chunk_here();  // without read-ahead (ReadOptions::read_ahead false)
  struct ReadAhead;
  std::unique_ptr<ReadAhead> ahead_;
  cereal::PortableBinaryInputArchive* here_ = nullptr;  // without read-ahead: the archive
  uint64_t here_chunks_ = 0, here_bytes_ = 0;
  SnapshotReader& file_;
  PayloadHeader header_;
  std::vector<uint8_t> chunk_;
  size_t pos_ = 0;
  uint64_t consumed_ = 0;
  bool ended_ = false;
  bool verified_ = false;
  PayloadEnd end_;
  std::string scratch_;
};

// Walks the op stream without building objects: checks its grammar (stack depths, memo ids,
// lengths) and counts ops by kind. Used to validate before decoding and by `stasis inspect`.
struct OpSummary {
  std::array<uint64_t, 256> counts{};
  uint64_t op_bytes = 0;
  uint64_t max_stack = 0;
  uint64_t memo_count = 0;
  uint64_t string_bytes = 0;
};
OpSummary scan_ops(PayloadReader& reader);
// The Buffer op's header (FORMAT.md): throws CorruptSnapshot naming op byte `at` unless flags,
// element width and size are possible, and the size fits in the payload's `raw_size` bytes, or for
// a buffer stored out of line (kBufferOutOfLine) in as many segments as its `stored_size` can hold
// (the decoder allocates the whole buffer before its bytes arrive, after checking the segments'
// headers: a size no payload of this file can hold must not reach the allocator). Shared by
// scan_ops and the decoder.
inline constexpr uint64_t kMaxBufferBytes = uint64_t(1) << 48;
inline constexpr uint64_t kBufferReadOnly = 1, kBufferOutOfLine = 2;
void check_buffer_header(uint64_t flags, uint64_t width, uint64_t n, uint64_t at, uint64_t raw_size,
                         uint64_t stored_size);
const char* op_name(uint8_t op);
// Op bytes written and read by every PayloadWriter/PayloadReader of the process so far, counted a
// chunk at a time: what a progress meter (engine/progress.h) reads from another thread.
std::atomic<uint64_t>& op_bytes_progress();

}  // namespace stasis::format
