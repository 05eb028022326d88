// format/zstd_stream.h — std::streambufs that compress into a ByteSink and decompress from a
// ByteSource, one zstd frame with content checksum, never holding the whole payload in memory.
// Counterparts: ZstdWriteBuf (SnapshotWriter) and ZstdReadBuf (SnapshotReader).
// Errors surface as stasis::Error: CorruptSnapshot (zstd says the data is damaged, with the
// compressed offset) or TruncatedSnapshot (input ends before the frame does).
#pragma once

#include <zstd.h>

#include <cstdint>
#include <streambuf>
#include <vector>

#include "format/byte_io.h"

namespace stasis::format {

class ZstdWriteBuf final : public std::streambuf {
 public:
  // level: zstd level (1..19); workers: zstd worker threads (0 = compress on the caller's thread).
  ZstdWriteBuf(ByteSink& sink, int level, int workers);
  ~ZstdWriteBuf() override;
  ZstdWriteBuf(const ZstdWriteBuf&) = delete;
  ZstdWriteBuf& operator=(const ZstdWriteBuf&) = delete;

  // Ends the frame and flushes everything into the sink. Call exactly once.
  void finish();
  // Ends the current zstd frame and writes data[0, n), items of `width` bytes, after it as buffer
  // segments (format/segments.h, FORMAT.md): zstd skippable frames holding kSegmentBytes each,
  // packed on worker threads, written from `data` or from their planes. The bytes written next
  // start a new zstd frame. Returns the payload offset (compressed bytes before it) of the first.
  uint64_t segments(const void* data, uint64_t n, size_t width);
  uint64_t raw_bytes() const { return raw_bytes_ + uint64_t(pptr() - pbase()); }
  uint64_t compressed_bytes() const { return compressed_bytes_; }

 protected:
  int_type overflow(int_type ch) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  void compress(ZSTD_EndDirective mode);
  ByteSink& sink_;
  ZSTD_CCtx* cctx_;
  std::vector<char> in_;
  std::vector<char> out_;
  uint64_t raw_bytes_ = 0;
  uint64_t compressed_bytes_ = 0;
};

class ZstdReadBuf final : public std::streambuf {
 public:
  // Decompresses source[offset, offset + length): zstd frames, skipping the buffer segments between
  // them (read by read_segments); with check_segments, their checksums are verified as skipped.
  ZstdReadBuf(const ByteSource& source, uint64_t offset, uint64_t length, bool check_segments = false);
  ~ZstdReadBuf() override;
  ZstdReadBuf(const ZstdReadBuf&) = delete;
  ZstdReadBuf& operator=(const ZstdReadBuf&) = delete;

  uint64_t raw_bytes_read() const { return raw_bytes_ - uint64_t(egptr() - gptr()); }
  // True once the frame ended cleanly (checksum verified by zstd) and all input was consumed.
  bool finished() const { return frame_done_ && in_pos_ >= length_ && in_read_ == in_size_; }

 protected:
  int_type underflow() override;
  std::streamsize xsgetn(char* s, std::streamsize n) override;

 private:
  bool refill();
  // After a frame ended: skips the raw segments that follow; true when another zstd frame follows.
  bool next_frame();
  // Decompresses up to `capacity` bytes into dst; 0 at the end of the frame.
  size_t decompress_into(char* dst, size_t capacity);
  const ByteSource& source_;
  uint64_t offset_;
  uint64_t length_;
  uint64_t in_pos_ = 0;      // bytes of input consumed from the source
  ZSTD_DCtx* dctx_;
  std::vector<char> in_;
  size_t in_size_ = 0, in_read_ = 0;
  std::vector<char> out_;
  uint64_t raw_bytes_ = 0;
  bool frame_done_ = false;
  bool check_segments_ = false;
};

}  // namespace stasis::format
