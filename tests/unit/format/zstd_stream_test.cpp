#include "format/zstd_stream.h"

#include <gtest/gtest.h>

#include <istream>
#include <ostream>
#include <random>

#include "core/error.h"

namespace stasis::format {
namespace {

std::string sample(size_t n, bool compressible) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = compressible ? char('a' + (i / 7) % 5) : char(rng());
  return s;
}

std::string compress(const std::string& data, int workers = 0) {
  std::string out;
  StringSink sink(out);
  ZstdWriteBuf buf(sink, 3, workers);
  std::ostream os(&buf);
  // Mixed write sizes exercise overflow() and xsputn().
  size_t i = 0;
  while (i < data.size()) {
    size_t k = std::min<size_t>(data.size() - i, (i % 3 == 0) ? 1 : 70000);
    os.write(data.data() + i, std::streamsize(k));
    i += k;
  }
  os.flush();
  buf.finish();
  EXPECT_EQ(buf.raw_bytes(), data.size());
  EXPECT_EQ(buf.compressed_bytes(), out.size());
  return out;
}

std::string decompress(const std::string& z) {
  MemorySource src(z);
  ZstdReadBuf buf(src, 0, z.size());
  std::istream is(&buf);
  is.exceptions(std::ios::badbit);
  std::string out;
  char chunk[4096];
  while (is.read(chunk, sizeof chunk) || is.gcount() > 0) out.append(chunk, size_t(is.gcount()));
  EXPECT_TRUE(buf.finished());
  return out;
}

TEST(ZstdStream, RoundTripsCompressibleAndRandomData) {
  for (bool compressible : {true, false}) {
    std::string data = sample(3'000'000, compressible);
    std::string z = compress(data);
    if (compressible) EXPECT_LT(z.size(), data.size() / 20);
    EXPECT_EQ(decompress(z), data);
  }
}

TEST(ZstdStream, WorkerThreadGivesTheSameData) {
  std::string data = sample(5'000'000, true);
  EXPECT_EQ(decompress(compress(data, 1)), data);
}

TEST(ZstdStream, EmptyPayloadIsAValidFrame) { EXPECT_EQ(decompress(compress("")), ""); }

TEST(ZstdStream, TruncationIsDetectedAtEveryCut) {
  std::string z = compress(sample(200'000, false));
  for (size_t cut : {size_t(1), size_t(10), z.size() / 2, z.size() - 4, z.size() - 1}) {
    try {
      decompress(z.substr(0, cut));
      FAIL() << "no error at cut " << cut;
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::TruncatedSnapshot || e.code() == ErrorCode::CorruptSnapshot)
          << e.what();
    }
  }
}

TEST(ZstdStream, FlippedBitIsCorruptWithOffset) {
  std::string z = compress(sample(500'000, true));
  z[z.size() / 2] ^= 0x04;
  try {
    decompress(z);
    FAIL() << "flipped bit not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::CorruptSnapshot);
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace stasis::format
