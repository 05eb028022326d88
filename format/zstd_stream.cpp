#include "format/zstd_stream.h"

#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "core/error.h"
#include "format/segments.h"

namespace stasis::format {
namespace {
void check_zstd(size_t rc, const char* what) {
  if (ZSTD_isError(rc))
    throw Error(ErrorCode::Internal, std::string(what) + ": " + ZSTD_getErrorName(rc));
}

// One compression context kept per thread between snapshots: its worker threads and buffer pools
// (tens of MB for a large payload) are reused instead of being mapped and faulted in again.
// After fork() the child has none of the parent's zstd worker threads: a context cached by the
// parent would wait for them forever, so the child drops it (without freeing: that would join
// threads that do not exist in this process).
thread_local ZSTD_CCtx* t_spare_cctx = nullptr;
thread_local pid_t t_spare_pid = 0;

ZSTD_CCtx* take_cctx() {
  ZSTD_CCtx* c = std::exchange(t_spare_cctx, nullptr);
  if (c && t_spare_pid != getpid()) c = nullptr;  // inherited through fork(): abandoned
  if (c && ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters))) {
    ZSTD_freeCCtx(c);
    c = nullptr;
  }
  return c ? c : ZSTD_createCCtx();
}
}  // namespace

ZstdWriteBuf::ZstdWriteBuf(ByteSink& sink, int level, int workers)
    : sink_(sink), cctx_(take_cctx()), in_(1 << 20), out_(ZSTD_CStreamOutSize()) {
  if (!cctx_) throw Error(ErrorCode::Internal, "cannot create a zstd compression context");
  check_zstd(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level), "zstd level");
  check_zstd(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1), "zstd checksum flag");
  if (workers > 0) {
    // Multi-threaded compression is optional in libzstd builds; fall back silently without it.
    size_t rc = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, workers);
    (void)rc;
  }
  setp(in_.data(), in_.data() + in_.size());
}

ZstdWriteBuf::~ZstdWriteBuf() {
  if (!t_spare_cctx && !ZSTD_isError(ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_only))) {
    t_spare_cctx = cctx_;
    t_spare_pid = getpid();
  } else {
    ZSTD_freeCCtx(cctx_);
  }
}

void ZstdWriteBuf::compress(ZSTD_EndDirective mode) {
  size_t pending = size_t(pptr() - pbase());
  raw_bytes_ += pending;
  ZSTD_inBuffer input = {pbase(), pending, 0};
  for (;;) {
    ZSTD_outBuffer output = {out_.data(), out_.size(), 0};
    size_t remaining = ZSTD_compressStream2(cctx_, &output, &input, mode);
    check_zstd(remaining, "zstd compression failed");
    if (output.pos) {
      sink_.write(out_.data(), output.pos);
      compressed_bytes_ += output.pos;
    }
    bool done = (mode == ZSTD_e_end) ? remaining == 0 : input.pos == input.size;
    if (done) break;
  }
  setp(in_.data(), in_.data() + in_.size());
}

ZstdWriteBuf::int_type ZstdWriteBuf::overflow(int_type ch) {
  compress(ZSTD_e_continue);
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

std::streamsize ZstdWriteBuf::xsputn(const char* s, std::streamsize n) {
  std::streamsize left = n;
  while (left > 0) {
    std::streamsize room = epptr() - pptr();
    if (room == 0) {
      compress(ZSTD_e_continue);
      continue;
    }
    std::streamsize k = std::min(room, left);
    std::memcpy(pptr(), s, size_t(k));
    pbump(int(k));
    s += k;
    left -= k;
  }
  return n;
}

int ZstdWriteBuf::sync() { return 0; }  // data is compressed as the buffer fills, or by finish()

void ZstdWriteBuf::finish() { compress(ZSTD_e_end); }

namespace {
uint32_t get32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
}  // namespace

uint64_t ZstdWriteBuf::segments(const void* data, uint64_t n, size_t width) {
  compress(ZSTD_e_end);
  const uint64_t at = compressed_bytes_;
  compressed_bytes_ += write_segments(sink_, data, n, width);
  return at;
}

ZstdReadBuf::ZstdReadBuf(const ByteSource& source, uint64_t offset, uint64_t length, bool check_segments)
    : source_(source), offset_(offset), length_(length), dctx_(ZSTD_createDCtx()),
      in_(ZSTD_DStreamInSize()), out_(ZSTD_DStreamOutSize()), check_segments_(check_segments) {
  if (!dctx_) throw Error(ErrorCode::Internal, "cannot create a zstd decompression context");
  setg(out_.data(), out_.data(), out_.data());
}

ZstdReadBuf::~ZstdReadBuf() { ZSTD_freeDCtx(dctx_); }

bool ZstdReadBuf::refill() {
  size_t n = decompress_into(out_.data(), out_.size());
  if (n == 0) return false;
  setg(out_.data(), out_.data(), out_.data() + n);
  return true;
}

size_t ZstdReadBuf::decompress_into(char* dst, size_t capacity) {
  for (;;) {
    if (frame_done_) {
      if (!next_frame()) return 0;
      frame_done_ = false;  // the context starts the next frame by itself
    }
    if (in_read_ == in_size_) {
      if (in_pos_ >= length_)
        throw Error(ErrorCode::TruncatedSnapshot,
                    "the compressed payload ends before its last frame is complete (after " +
                        std::to_string(length_) + " compressed bytes); the file was cut short");
      size_t want = size_t(std::min<uint64_t>(in_.size(), length_ - in_pos_));
      size_t got = source_.read_at(offset_ + in_pos_, in_.data(), want);
      if (got == 0)
        throw Error(ErrorCode::TruncatedSnapshot, "the file ends inside the compressed payload");
      in_pos_ += got;
      in_size_ = got;
      in_read_ = 0;
    }
    ZSTD_inBuffer input = {in_.data(), in_size_, in_read_};
    ZSTD_outBuffer output = {dst, capacity, 0};
    size_t rc = ZSTD_decompressStream(dctx_, &output, &input);
    uint64_t at = offset_ + in_pos_ - (in_size_ - in_read_);
    in_read_ = input.pos;
    if (ZSTD_isError(rc))
      throw Error(ErrorCode::CorruptSnapshot,
                  std::string("compressed payload is damaged near file offset ") +
                      std::to_string(at) + ": zstd says '" + ZSTD_getErrorName(rc) + "'");
    if (rc == 0) frame_done_ = true;
    if (output.pos) {
      raw_bytes_ += output.pos;
      return output.pos;
    }
  }
}

bool ZstdReadBuf::next_frame() {
  for (;;) {
    const uint64_t cur = in_pos_ - (in_size_ - in_read_);  // payload bytes consumed
    if (cur >= length_) return false;
    uint8_t head[8];
    size_t got = source_.read_at(offset_ + cur, head, size_t(std::min<uint64_t>(8, length_ - cur)));
    uint32_t magic = got >= 4 ? get32(head) : 0;
    if (magic == kZstdFrameMagic) return true;
    if (magic != kSegmentMagic || got < 8)
      throw Error(ErrorCode::CorruptSnapshot,
                  "unexpected bytes after the end of a compressed frame at offset " +
                      std::to_string(offset_ + cur) + ": neither a zstd frame nor a buffer segment");
    uint64_t size = get32(head + 4);
    if (size < 8 || size > length_ - cur - 8)
      throw Error(ErrorCode::CorruptSnapshot, "buffer segment at offset " + std::to_string(offset_ + cur) +
                                                  " claims " + std::to_string(size) +
                                                  " bytes: more than the payload holds, or too few");
    if (check_segments_) size = check_segment(source_, offset_, length_, cur) - 8;
    const uint64_t next = cur + 8 + size;
    if (next <= in_pos_) {
      in_read_ = in_size_ - size_t(in_pos_ - next);
    } else {
      in_pos_ = next;
      in_size_ = in_read_ = 0;
    }
  }
}

ZstdReadBuf::int_type ZstdReadBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (!refill()) return traits_type::eof();
  return traits_type::to_int_type(*gptr());
}

std::streamsize ZstdReadBuf::xsgetn(char* s, std::streamsize n) {
  std::streamsize done = 0;
  while (done < n) {
    if (gptr() == egptr() && n - done >= std::streamsize(out_.size())) {
      // A large read (an op chunk): zstd writes into the caller's buffer, without a copy.
      size_t k = decompress_into(s + done, size_t(n - done));
      if (k == 0) break;
      done += std::streamsize(k);
      continue;
    }
    if (gptr() == egptr() && !refill()) break;
    std::streamsize k = std::min<std::streamsize>(egptr() - gptr(), n - done);
    std::memcpy(s + done, gptr(), size_t(k));
    gbump(int(k));
    done += k;
  }
  return done;
}

}  // namespace stasis::format
