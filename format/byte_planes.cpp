// format/byte_planes.cpp — byte-plane transposition (format/byte_planes.h). The 16-element
// kernels use SSE2, which every x86-64 CPU has; other machines (and the tails of blocks) take the
// plain loops, which give the same bytes.
#include "format/byte_planes.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define STASIS_AVX2_PLANES 1
#endif

namespace stasis::format {
namespace {

void split_plain(const uint8_t* src, uint8_t* dst, size_t from, size_t count, size_t width) {
  for (size_t b = 0; b < width; ++b) {
    uint8_t* plane = dst + b * count;
    for (size_t i = from; i < count; ++i) plane[i] = src[i * width + b];
  }
}

void join_plain(const uint8_t* src, uint8_t* dst, size_t from, size_t count, size_t width) {
  for (size_t b = 0; b < width; ++b) {
    const uint8_t* plane = src + b * count;
    for (size_t i = from; i < count; ++i) dst[i * width + b] = plane[i];
  }
}

#if defined(__SSE2__)
inline __m128i load(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void store(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
#define LO8 _mm_unpacklo_epi8
#define HI8 _mm_unpackhi_epi8
#define LO16 _mm_unpacklo_epi16
#define HI16 _mm_unpackhi_epi16
#define LO32 _mm_unpacklo_epi32
#define HI32 _mm_unpackhi_epi32
#define LO64 _mm_unpacklo_epi64
#define HI64 _mm_unpackhi_epi64

// Below, "bJ eK-L" names the bytes J of elements K to L, in that order.
// 16 elements of 8 bytes -> 8 planes of 16 bytes.
size_t split8(const uint8_t* src, uint8_t* dst, size_t count, size_t i) {
  for (; i + 16 <= count; i += 16) {
    const uint8_t* s = src + i * 8;
    __m128i t[8], u[8];
    for (int k = 0; k < 8; ++k) {  // elements 2k, 2k+1 -> their bytes paired: (b0 e2k, b0 e2k+1), ...
      __m128i r = load(s + 16 * k);
      t[k] = LO8(r, _mm_shuffle_epi32(r, 0x4e));
    }
    for (int k = 0; k < 4; ++k) {  // u[2k]: b0-3 of e4k..4k+3 (4-byte groups per byte), u[2k+1]: b4-7
      u[2 * k] = LO16(t[2 * k], t[2 * k + 1]);
      u[2 * k + 1] = HI16(t[2 * k], t[2 * k + 1]);
    }
    // v0: b0,b1 of e0-7; v1: b2,b3; v2: b4,b5; v3: b6,b7; v4..v7: the same of e8-15.
    __m128i v0 = LO32(u[0], u[2]), v1 = HI32(u[0], u[2]), v2 = LO32(u[1], u[3]), v3 = HI32(u[1], u[3]);
    __m128i v4 = LO32(u[4], u[6]), v5 = HI32(u[4], u[6]), v6 = LO32(u[5], u[7]), v7 = HI32(u[5], u[7]);
    store(dst + 0 * count + i, LO64(v0, v4));
    store(dst + 1 * count + i, HI64(v0, v4));
    store(dst + 2 * count + i, LO64(v1, v5));
    store(dst + 3 * count + i, HI64(v1, v5));
    store(dst + 4 * count + i, LO64(v2, v6));
    store(dst + 5 * count + i, HI64(v2, v6));
    store(dst + 6 * count + i, LO64(v3, v7));
    store(dst + 7 * count + i, HI64(v3, v7));
  }
  return i;
}

size_t join8(const uint8_t* src, uint8_t* dst, size_t count, size_t i) {
  for (; i + 16 <= count; i += 16) {
    __m128i p[8], a[8], c[8];
    for (int b = 0; b < 8; ++b) p[b] = load(src + b * count + i);
    for (int k = 0; k < 4; ++k) {  // a[2k]: b2k,2k+1 of e0-7; a[2k+1]: of e8-15
      a[2 * k] = LO8(p[2 * k], p[2 * k + 1]);
      a[2 * k + 1] = HI8(p[2 * k], p[2 * k + 1]);
    }
    c[0] = LO16(a[0], a[2]);  // b0-3 e0-3
    c[1] = HI16(a[0], a[2]);  // b0-3 e4-7
    c[2] = LO16(a[4], a[6]);  // b4-7 e0-3
    c[3] = HI16(a[4], a[6]);  // b4-7 e4-7
    c[4] = LO16(a[1], a[3]);  // b0-3 e8-11
    c[5] = HI16(a[1], a[3]);  // b0-3 e12-15
    c[6] = LO16(a[5], a[7]);  // b4-7 e8-11
    c[7] = HI16(a[5], a[7]);  // b4-7 e12-15
    uint8_t* d = dst + i * 8;
    store(d + 0, LO32(c[0], c[2]));
    store(d + 16, HI32(c[0], c[2]));
    store(d + 32, LO32(c[1], c[3]));
    store(d + 48, HI32(c[1], c[3]));
    store(d + 64, LO32(c[4], c[6]));
    store(d + 80, HI32(c[4], c[6]));
    store(d + 96, LO32(c[5], c[7]));
    store(d + 112, HI32(c[5], c[7]));
  }
  return i;
}

// 16 elements of 4 bytes -> 4 planes of 16 bytes.
size_t split4(const uint8_t* src, uint8_t* dst, size_t count) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const uint8_t* s = src + i * 4;
    __m128i r0 = load(s), r1 = load(s + 16), r2 = load(s + 32), r3 = load(s + 48);
    __m128i a0 = LO8(r0, r1), a1 = HI8(r0, r1), a2 = LO8(r2, r3), a3 = HI8(r2, r3);
    __m128i b0 = LO8(a0, a1), b1 = HI8(a0, a1), b2 = LO8(a2, a3), b3 = HI8(a2, a3);
    __m128i c0 = LO8(b0, b1), c1 = HI8(b0, b1), c2 = LO8(b2, b3), c3 = HI8(b2, b3);
    store(dst + 0 * count + i, LO64(c0, c2));  // c0: b0,b1 of e0-7; c2: b0,b1 of e8-15
    store(dst + 1 * count + i, HI64(c0, c2));
    store(dst + 2 * count + i, LO64(c1, c3));
    store(dst + 3 * count + i, HI64(c1, c3));
  }
  return i;
}

size_t join4(const uint8_t* src, uint8_t* dst, size_t count) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m128i p0 = load(src + i), p1 = load(src + count + i), p2 = load(src + 2 * count + i),
            p3 = load(src + 3 * count + i);
    __m128i a0 = LO8(p0, p1), a1 = HI8(p0, p1), a2 = LO8(p2, p3), a3 = HI8(p2, p3);
    uint8_t* d = dst + i * 4;
    store(d + 0, LO16(a0, a2));
    store(d + 16, HI16(a0, a2));
    store(d + 32, LO16(a1, a3));
    store(d + 48, HI16(a1, a3));
  }
  return i;
}

// 16 elements of 2 bytes -> 2 planes of 16 bytes.
size_t split2(const uint8_t* src, uint8_t* dst, size_t count) {
  size_t i = 0;
  const __m128i low = _mm_set1_epi16(0x00FF);
  for (; i + 16 <= count; i += 16) {
    __m128i r0 = load(src + i * 2), r1 = load(src + i * 2 + 16);
    store(dst + i, _mm_packus_epi16(_mm_and_si128(r0, low), _mm_and_si128(r1, low)));
    store(dst + count + i, _mm_packus_epi16(_mm_srli_epi16(r0, 8), _mm_srli_epi16(r1, 8)));
  }
  return i;
}

size_t join2(const uint8_t* src, uint8_t* dst, size_t count) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m128i p0 = load(src + i), p1 = load(src + count + i);
    store(dst + i * 2, LO8(p0, p1));
    store(dst + i * 2 + 16, HI8(p0, p1));
  }
  return i;
}
#endif

#if defined(STASIS_AVX2_PLANES)
// Width 8 with AVX2 (chosen at run time; about twice the SSE2 kernels' speed), 32 elements per
// step: register k holds elements 2k, 2k+1 in its low lane and 16+2k, 17+2k in its high lane; a
// byte shuffle pairs their bytes (byte b of both as one 16-bit unit), then an 8x8 transpose of
// 16-bit units within each lane leaves plane b's bytes of elements 0-15 in the low lane of
// output b and of elements 16-31 in its high lane. The transpose is its own inverse: join runs
// it on the planes and undoes the shuffle.
__attribute__((target("avx2"))) inline void transpose16(__m256i r[8]) {
  __m256i a[8], b[8];
  for (int k = 0; k < 4; ++k) {
    a[2 * k] = _mm256_unpacklo_epi16(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm256_unpackhi_epi16(r[2 * k], r[2 * k + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // h: registers 0-3 or 4-7
    __m256i* x = a + 4 * h;
    b[4 * h + 0] = _mm256_unpacklo_epi32(x[0], x[2]);
    b[4 * h + 1] = _mm256_unpackhi_epi32(x[0], x[2]);
    b[4 * h + 2] = _mm256_unpacklo_epi32(x[1], x[3]);
    b[4 * h + 3] = _mm256_unpackhi_epi32(x[1], x[3]);
  }
  for (int k = 0; k < 4; ++k) {
    r[2 * k] = _mm256_unpacklo_epi64(b[k], b[k + 4]);
    r[2 * k + 1] = _mm256_unpackhi_epi64(b[k], b[k + 4]);
  }
}

__attribute__((target("avx2"))) size_t split8_avx2(const uint8_t* src, uint8_t* dst, size_t count) {
  const __m256i pair = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const uint8_t* s = src + i * 8;
    __m256i r[8];
    for (int k = 0; k < 8; ++k) {
      __m256i v = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16 * k))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 128 + 16 * k)), 1);
      r[k] = _mm256_shuffle_epi8(v, pair);
    }
    transpose16(r);
    for (int b = 0; b < 8; ++b) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + b * count + i), r[b]);
  }
  return i;
}

__attribute__((target("avx2"))) size_t join8_avx2(const uint8_t* src, uint8_t* dst, size_t count) {
  const __m256i unpair = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                          0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    __m256i r[8];
    for (int b = 0; b < 8; ++b) r[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + b * count + i));
    transpose16(r);
    uint8_t* d = dst + i * 8;
    for (int k = 0; k < 8; ++k) {
      __m256i v = _mm256_shuffle_epi8(r[k], unpair);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16 * k), _mm256_castsi256_si128(v));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 128 + 16 * k), _mm256_extracti128_si256(v, 1));
    }
  }
  return i;
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

#if !defined(__SSE2__)
size_t split8(const uint8_t*, uint8_t*, size_t, size_t i) { return i; }
size_t join8(const uint8_t*, uint8_t*, size_t, size_t i) { return i; }
size_t split4(const uint8_t*, uint8_t*, size_t) { return 0; }
size_t join4(const uint8_t*, uint8_t*, size_t) { return 0; }
size_t split2(const uint8_t*, uint8_t*, size_t) { return 0; }
size_t join2(const uint8_t*, uint8_t*, size_t) { return 0; }
#endif

}  // namespace

void split_planes(const uint8_t* src, uint8_t* dst, size_t count, size_t width) {
  size_t done = 0;
  switch (width) {
    case 1: std::memcpy(dst, src, count); return;
    case 2: done = split2(src, dst, count); break;
    case 4: done = split4(src, dst, count); break;
    case 8:
#if defined(STASIS_AVX2_PLANES)
      if (have_avx2()) done = split8_avx2(src, dst, count);
#endif
      done = split8(src, dst, count, done);  // from element `done` on
      break;
  }
  split_plain(src, dst, done, count, width);
}

void join_planes(const uint8_t* src, uint8_t* dst, size_t count, size_t width) {
  size_t done = 0;
  switch (width) {
    case 1: std::memcpy(dst, src, count); return;
    case 2: done = join2(src, dst, count); break;
    case 4: done = join4(src, dst, count); break;
    case 8:
#if defined(STASIS_AVX2_PLANES)
      if (have_avx2()) done = join8_avx2(src, dst, count);
#endif
      done = join8(src, dst, count, done);
      break;
  }
  join_plain(src, dst, done, count, width);
}

}  // namespace stasis::format
