#include "format/segments.h"

#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "format/byte_planes.h"
#include "format/xxh64.h"

namespace stasis::format {
namespace {

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t get32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
// Pieces a segment's stored bytes are hashed and written, or read and hashed, in: the hash reads
// each while it is in the cache.
constexpr size_t kPiece = size_t(1) << 20;
constexpr size_t kMaxHead = 8 + 4 + 1 + 4 * 8;
constexpr int kLevel = -1;

// ---- writing ---------------------------------------------------------------------------------

// One segment ready to be written: its header, then pieces (of the caller's buffer, or of the
// planes and compressed planes it owns), then the checksum.
struct Packed {
  struct Piece {
    const uint8_t* data;
    size_t size;
  };
  uint8_t head[kMaxHead];
  size_t head_size = 0;
  std::vector<Piece> pieces;
  uint8_t sum[8];
  bool hashed = false;  // sum is set; else the writer hashes the pieces as it writes them
  std::vector<uint8_t> planes, packed;
};

// Which of the `width` byte planes of segment src[0, k) to compress: those that zstd shrinks to at
// most kPlaneMaxRatio in a sample of 32 KiB from the middle of the segment.
bool choose_planes(const uint8_t* src, uint64_t k, size_t width, ZSTD_CCtx* cctx, bool chosen[8]) {
  constexpr size_t kSample = size_t(32) << 10;
  uint8_t planes[kSample], out[kSample];
  uint64_t from = (k - kSample) / 2;
  from -= from % width;
  const size_t per = kSample / width;
  split_planes(src + from, planes, per, width);
  bool any = false;
  for (size_t b = 0; b < width; ++b) {
    const size_t cap = size_t(double(per) * kPlaneMaxRatio);
    size_t z = ZSTD_compressCCtx(cctx, out, cap, planes + b * per, per, kLevel);
    chosen[b] = !ZSTD_isError(z) && z <= cap;
    any |= chosen[b];
  }
  return any;
}

void pack(const uint8_t* src, uint64_t k, size_t width, ZSTD_CCtx* cctx, Packed& p) {
  p.pieces.clear();
  bool chosen[8] = {};
  const bool any = k >= kMinPackedSegment && choose_planes(src, k, width, cctx, chosen);
  uint32_t lens[8];
  size_t planes = 1;
  lens[0] = uint32_t(k);
  if (any && width == 1) {
    const size_t cap = size_t(double(k) * kPlaneMaxRatio);
    p.packed.resize(cap);
    size_t z = ZSTD_compressCCtx(cctx, p.packed.data(), cap, src, size_t(k), kLevel);
    if (!ZSTD_isError(z) && z <= cap) {
      lens[0] = uint32_t(z) | kPlaneCompressed;
      p.pieces.push_back({p.packed.data(), z});
    }
  } else if (any) {
    const size_t count = size_t(k / width);
    const size_t cap = size_t(double(count) * kPlaneMaxRatio);
    p.planes.resize(size_t(k));
    p.packed.resize(cap * width);
    split_planes(src, p.planes.data(), count, width);
    size_t used = 0;
    bool compressed = false;
    for (size_t b = 0; b < width; ++b) {
      const uint8_t* plane = p.planes.data() + b * count;
      if (chosen[b]) {
        size_t z = ZSTD_compressCCtx(cctx, p.packed.data() + used, cap, plane, count, kLevel);
        if (!ZSTD_isError(z) && z <= cap) {
          lens[b] = uint32_t(z) | kPlaneCompressed;
          p.pieces.push_back({p.packed.data() + used, z});
          used += z;
          compressed = true;
          continue;
        }
      }
      lens[b] = uint32_t(count);
      p.pieces.push_back({plane, count});
    }
    planes = width;
    if (!compressed) {  // no plane shrank after all: as it is, not shuffled
      p.pieces.clear();
      planes = 1;
      lens[0] = uint32_t(k);
    }
  }
  if (p.pieces.empty()) p.pieces.push_back({src, size_t(k)});
  uint64_t stored = 0;
  for (const Packed::Piece& piece : p.pieces) stored += piece.size;
  put32(p.head, kSegmentMagic);
  put32(p.head + 4, uint32_t(4 + 1 + 4 * planes + stored + 8));
  put32(p.head + 8, uint32_t(k));
  p.head[12] = uint8_t(planes);
  for (size_t b = 0; b < planes; ++b) put32(p.head + 13 + 4 * b, lens[b]);
  p.head_size = 13 + 4 * planes;
  // Stored as it is: the writer hashes each piece just before writing it, so the buffer's memory
  // is read once (while in the cache), not once here and once more by the write.
  p.hashed = !(planes == 1 && p.pieces[0].data == src);
  if (!p.hashed) return;
  Xxh64 hash;
  hash.update(p.head + 8, p.head_size - 8);
  for (const Packed::Piece& piece : p.pieces) {
    for (size_t done = 0; done < piece.size; done += kPiece)
      hash.update(piece.data + done, std::min(kPiece, piece.size - done));
  }
  uint64_t h = hash.digest();
  for (int i = 0; i < 8; ++i) p.sum[i] = uint8_t(h >> (8 * i));
}

uint64_t write_packed(ByteSink& sink, const Packed& p) {
  sink.write(p.head, p.head_size);
  uint64_t n = p.head_size + 8;
  Xxh64 hash;
  if (!p.hashed) hash.update(p.head + 8, p.head_size - 8);
  for (const Packed::Piece& piece : p.pieces) {
    for (size_t done = 0; done < piece.size; done += kPiece) {
      const size_t k = std::min(kPiece, piece.size - done);
      if (!p.hashed) hash.update(piece.data + done, k);
      sink.write(piece.data + done, k);
    }
    n += piece.size;
  }
  if (p.hashed) {
    sink.write(p.sum, 8);
  } else {
    uint8_t sum[8];
    uint64_t h = hash.digest();
    for (int i = 0; i < 8; ++i) sum[i] = uint8_t(h >> (8 * i));
    sink.write(sum, 8);
  }
  return n;
}

struct CCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(c); }
};

// ---- reading ---------------------------------------------------------------------------------

struct Segment {
  uint64_t at = 0;       // payload offset of its frame header
  uint64_t size = 0;     // its size field: the bytes after the frame header
  uint32_t raw = 0;      // bytes it holds
  uint32_t width = 1;    // planes
  uint32_t lens[8] = {};
  uint8_t* out = nullptr;
  bool populate = true;  // map out's pages in one call first (not when huge pages were given)
  uint64_t head_size() const { return 13 + 4 * uint64_t(width); }
};

Error damaged(uint64_t at, const std::string& what) {
  return Error(ErrorCode::CorruptSnapshot, "buffer segment at payload byte " + std::to_string(at) + " " + what);
}

// Reads and checks the header of the segment at payload offset `at`; `expect` is the raw size it
// must hold (0: any, when it is only being verified).
Segment parse(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at, uint64_t expect,
              uint64_t left) {
  Segment s;
  s.at = at;
  uint8_t head[kMaxHead];
  if (at > stored || stored - at < 13 + 4 + 8)
    throw damaged(at, "lies outside the payload (" + std::to_string(stored) + " bytes)");
  const size_t want = size_t(std::min<uint64_t>(kMaxHead, stored - at));
  if (source.read_at(payload_offset + at, head, want) != want)
    throw Error(ErrorCode::TruncatedSnapshot, "the file ends inside a buffer segment");
  s.size = get32(head + 4);
  s.raw = get32(head + 8);
  s.width = head[12];
  if (get32(head) != kSegmentMagic)
    throw damaged(at, "has no buffer segment header (magic " + std::to_string(get32(head)) + ")" +
                          (expect ? " for the " + std::to_string(left) + " bytes the Buffer op needs" : ""));
  if (s.size > stored - at - 8) throw damaged(at, "reaches past the end of the payload");
  if (expect && s.raw != expect)  // as written: full segments, the last one shorter
    throw damaged(at, "holds " + std::to_string(s.raw) + " bytes where " + std::to_string(expect) +
                          " are due (segments hold " + std::to_string(kSegmentBytes) + " bytes but the last)");
  if ((s.width != 1 && s.width != 2 && s.width != 4 && s.width != 8) || s.raw % s.width != 0 || s.raw == 0 ||
      s.raw > kSegmentBytes || want < s.head_size())
    throw damaged(at, "has " + std::to_string(s.width) + " planes for " + std::to_string(s.raw) +
                          " bytes: the planes must be 1, 2, 4 or 8, dividing 1 to " + std::to_string(kSegmentBytes) +
                          " bytes");
  const uint64_t count = s.raw / s.width;
  uint64_t total = s.head_size() - 8 + 8;
  for (uint32_t b = 0; b < s.width; ++b) {
    s.lens[b] = get32(head + 13 + 4 * b);
    const uint64_t len = s.lens[b] & ~kPlaneCompressed;
    const bool compressed = s.lens[b] & kPlaneCompressed;
    if (compressed ? (len == 0 || len >= count) : len != count)
      throw damaged(at, "has a plane of " + std::to_string(len) + (compressed ? " compressed" : "") +
                            " bytes for " + std::to_string(count) + " bytes");
    total += len;
  }
  if (total != s.size)
    throw damaged(at, "has planes of " + std::to_string(total) + " bytes in all where its size says " +
                          std::to_string(s.size));
  return s;
}

// Walks the segments holding n bytes from payload offset `at` (headers only).
std::vector<Segment> walk(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at,
                          uint64_t n) {
  std::vector<Segment> segments;
  while (n > 0) {
    const uint64_t expect = std::min(n, kSegmentBytes);
    segments.push_back(parse(source, payload_offset, stored, at, expect, n));
    at += 8 + segments.back().size;
    n -= expect;
  }
  return segments;
}

struct ReadBuffers {
  std::vector<uint8_t> planes, packed;
  ZSTD_DCtx* dctx = nullptr;
  ~ReadBuffers() { ZSTD_freeDCtx(dctx); }
};

// Maps the pages of dst[0, n) in one call (MADV_POPULATE_WRITE, Linux 5.14; ignored where it is
// not known): a new buffer's pages are faulted in by the kernel in a loop rather than one fault
// at a time by the copy that fills them. Only the pages wholly inside the range.
void populate(uint8_t* dst, uint64_t n) {
#ifdef __linux__
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  uintptr_t from = (uintptr_t(dst) + page - 1) & ~(page - 1), to = (uintptr_t(dst) + n) & ~(page - 1);
  if (to > from) (void)madvise(reinterpret_cast<void*>(from), to - from, 23 /* MADV_POPULATE_WRITE */);
#else
  (void)dst, (void)n;
#endif
}

// Whether this machine gives transparent huge pages to memory that asks (THP "always" or
// "madvise", Debian's default; "never" does not).
bool huge_pages_given() {
  static const bool given = [] {
    char text[128] = {};
    FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    size_t got = std::fread(text, 1, sizeof text - 1, f);
    std::fclose(f);
    std::string s(text, got);
    return s.find("[always]") != std::string::npos || s.find("[madvise]") != std::string::npos;
  }();
  return given;
}

// Asks for transparent huge pages over the 2 MiB-aligned part of dst[0, n) (MADV_HUGEPAGE, as
// numpy's allocator does for its arrays): a buffer of segments is then faulted in 2 MiB at a time,
// 512 times fewer faults and page clears than with 4 KiB pages. Whether they are given.
bool advise_huge_pages(uint8_t* dst, uint64_t n) {
#ifdef __linux__
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  uintptr_t from = (uintptr_t(dst) + kHuge - 1) & ~(kHuge - 1), to = (uintptr_t(dst) + n) & ~(kHuge - 1);
  return to > from && huge_pages_given() && madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE) == 0;
#else
  (void)dst, (void)n;
  return false;
#endif
}

void read_into(const ByteSource& source, uint64_t from, uint8_t* to, uint64_t n, Xxh64& hash) {
  for (uint64_t done = 0; done < n;) {
    size_t piece = size_t(std::min<uint64_t>(kPiece, n - done));
    if (source.read_at(from + done, to + done, piece) != piece)
      throw Error(ErrorCode::TruncatedSnapshot, "the file ends inside a buffer segment");
    hash.update(to + done, piece);
    done += piece;
  }
}

// Reads segment s: its stored bytes (each plane where it belongs, compressed ones aside), hashed
// as they arrive; the checksum is compared before anything is decompressed or joined. With
// s.out null, only the checksum is verified.
void read_one(const ByteSource& source, uint64_t payload_offset, const Segment& s, ReadBuffers& b) {
  Xxh64 hash;
  uint8_t head[kMaxHead];
  put32(head, s.raw);
  head[4] = uint8_t(s.width);
  for (uint32_t i = 0; i < s.width; ++i) put32(head + 5 + 4 * i, s.lens[i]);
  hash.update(head, 5 + 4 * size_t(s.width));
  const uint64_t count = s.raw / s.width;
  const bool as_is = s.width == 1 && !(s.lens[0] & kPlaneCompressed);
  if (s.out && s.populate) populate(s.out, s.raw);
  uint8_t* planes = s.out;
  if (!s.out) {
    b.planes.resize(std::min<uint64_t>(s.raw, kPiece));
  } else if (!as_is && s.width > 1) {
    b.planes.resize(s.raw);
    planes = b.planes.data();
  }
  uint64_t packed_total = 0;
  for (uint32_t i = 0; i < s.width; ++i)
    if (s.lens[i] & kPlaneCompressed) packed_total += s.lens[i] & ~kPlaneCompressed;
  b.packed.resize(packed_total);
  uint64_t from = payload_offset + s.at + s.head_size(), packed = 0;
  for (uint32_t i = 0; i < s.width; ++i) {
    const uint64_t len = s.lens[i] & ~kPlaneCompressed;
    if (s.lens[i] & kPlaneCompressed) {
      read_into(source, from, b.packed.data() + packed, len, hash);
      packed += len;
    } else if (!s.out) {  // only checking: through a small buffer
      for (uint64_t done = 0; done < len; done += b.planes.size())
        read_into(source, from + done, b.planes.data(), std::min<uint64_t>(b.planes.size(), len - done), hash);
    } else {
      read_into(source, from, planes + i * count, len, hash);
    }
    from += len;
  }
  uint8_t sum[8];
  if (source.read_at(from, sum, 8) != 8) throw Error(ErrorCode::TruncatedSnapshot, "the file ends inside a buffer segment");
  if (hash.digest() != (uint64_t(get32(sum)) | uint64_t(get32(sum + 4)) << 32))
    throw damaged(s.at, "is damaged: its " + std::to_string(s.size - 8) + " stored bytes do not match their XXH64");
  if (!s.out || as_is) return;
  if (!b.dctx && !(b.dctx = ZSTD_createDCtx()))
    throw Error(ErrorCode::Internal, "cannot create a zstd decompression context");
  packed = 0;
  for (uint32_t i = 0; i < s.width; ++i) {
    if (!(s.lens[i] & kPlaneCompressed)) continue;
    const uint64_t len = s.lens[i] & ~kPlaneCompressed;
    size_t got = ZSTD_decompressDCtx(b.dctx, planes + i * count, size_t(count), b.packed.data() + packed, size_t(len));
    if (ZSTD_isError(got) || got != count)
      throw damaged(s.at, "has a plane that does not decompress to its " + std::to_string(count) + " bytes" +
                              (ZSTD_isError(got) ? std::string(": zstd says '") + ZSTD_getErrorName(got) + "'" : ""));
    packed += len;
  }
  if (s.width > 1) join_planes(planes, s.out, size_t(count), s.width);
}

}  // namespace

unsigned segment_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return std::clamp(n, 1u, 4u);
}

uint64_t write_segments(ByteSink& sink, const void* data, uint64_t n, size_t width) {
  const auto* src = static_cast<const uint8_t*>(data);
  const uint64_t count = (n + kSegmentBytes - 1) / kSegmentBytes;
  const unsigned workers = unsigned(std::min<uint64_t>(segment_threads(), count));
  uint64_t written = 0;
  if (count <= 1 || workers <= 1) {
    static thread_local CCtx cctx;
    Packed p;
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t k = std::min(kSegmentBytes, n - i * kSegmentBytes);
      pack(src + i * kSegmentBytes, k, width, cctx.c, p);
      written += write_packed(sink, p);
    }
    return written;
  }
  // Workers pack segments (sample, split, compress, hash) up to `window` ahead of the one this
  // thread writes; a written segment's buffers go back to them.
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::unique_ptr<Packed>> done;
    std::vector<std::unique_ptr<Packed>> spare;
    uint64_t next = 0, writing = 0;
    bool stop = false;
    std::exception_ptr error;
  } sh;
  sh.done.resize(count);
  const uint64_t window = workers + 2;
  auto work = [&] {
    CCtx cctx;
    for (;;) {
      std::unique_ptr<Packed> p;
      uint64_t i;
      {
        std::unique_lock<std::mutex> lock(sh.mutex);
        sh.cv.wait(lock, [&] { return sh.stop || sh.next >= count || sh.next < sh.writing + window; });
        if (sh.stop || sh.next >= count) return;
        i = sh.next++;
        if (!sh.spare.empty()) {
          p = std::move(sh.spare.back());
          sh.spare.pop_back();
        }
      }
      if (!p) p = std::make_unique<Packed>();
      try {
        uint64_t k = std::min(kSegmentBytes, n - i * kSegmentBytes);
        pack(src + i * kSegmentBytes, k, width, cctx.c, *p);
      } catch (...) {
        std::lock_guard<std::mutex> lock(sh.mutex);
        if (!sh.error) sh.error = std::current_exception();
        sh.stop = true;
        sh.cv.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lock(sh.mutex);
      sh.done[i] = std::move(p);
      sh.cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  auto finish = [&] {
    {
      std::lock_guard<std::mutex> lock(sh.mutex);
      sh.stop = true;
      sh.cv.notify_all();
    }
    for (std::thread& t : threads) t.join();
    threads.clear();
  };
  try {
    for (unsigned t = 0; t < workers; ++t) threads.emplace_back(work);
    CCtx cctx;
    for (uint64_t i = 0; i < count; ++i) {
      std::unique_ptr<Packed> p;
      bool mine = false;
      {
        std::unique_lock<std::mutex> lock(sh.mutex);
        // A segment no worker has started yet (they are busy, or not scheduled on a loaded
        // machine) is packed here rather than waited for.
        sh.cv.wait(lock, [&] { return sh.done[i] || sh.error || sh.next == i; });
        if (sh.error) std::rethrow_exception(sh.error);
        if (sh.done[i]) {
          p = std::move(sh.done[i]);
        } else {
          sh.next = i + 1;
          mine = true;
          if (!sh.spare.empty()) {
            p = std::move(sh.spare.back());
            sh.spare.pop_back();
          }
        }
      }
      if (mine) {
        if (!p) p = std::make_unique<Packed>();
        pack(src + i * kSegmentBytes, std::min(kSegmentBytes, n - i * kSegmentBytes), width, cctx.c, *p);
      }
      written += write_packed(sink, *p);
      std::lock_guard<std::mutex> lock(sh.mutex);
      sh.spare.push_back(std::move(p));
      sh.writing = i + 1;
      sh.cv.notify_all();
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  return written;
}

uint64_t check_segment_headers(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at,
                               uint64_t n) {
  std::vector<Segment> segments = walk(source, payload_offset, stored, at, n);
  return segments.empty() ? at : segments.back().at + 8 + segments.back().size;
}

void read_segments(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at, void* dst,
                   uint64_t n) {
  // The headers first: every segment's place is checked before any data is read.
  std::vector<Segment> segments = walk(source, payload_offset, stored, at, n);
  auto* out = static_cast<uint8_t*>(dst);
  const bool huge = advise_huge_pages(out, n);
  for (Segment& s : segments) {
    s.out = out;
    s.populate = !huge;
    out += s.raw;
  }
  const unsigned threads = unsigned(std::min<uint64_t>(segment_threads(), segments.size()));
  if (threads <= 1) {
    ReadBuffers b;
    for (const Segment& s : segments) read_one(source, payload_offset, s, b);
    return;
  }
  // Segment by segment on `threads` threads (this one included): each reads, checks and unpacks
  // whole segments, so the page faults of the new buffer, the copies and the checksums of
  // different segments run side by side. The error of the first damaged segment is the one thrown.
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(segments.size());
  auto work = [&] {
    ReadBuffers b;
    for (size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < segments.size();) {
      try {
        read_one(source, payload_offset, segments[i], b);
      } catch (...) {
        errors[i] = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  try {
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  } catch (...) {
    failed = true;
    for (std::thread& t : pool) t.join();
    throw;
  }
  work();
  for (std::thread& t : pool) t.join();
  for (std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

uint64_t check_segment(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at) {
  Segment s = parse(source, payload_offset, stored, at, 0, 0);
  ReadBuffers b;
  read_one(source, payload_offset, s, b);
  return 8 + s.size;
}

}  // namespace stasis::format
