#include "format/preamble.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "error_code_of.h"
#include "format/schema.h"

namespace stasis::format {
namespace {

using stasis::testing::code_of;

TEST(Preamble, RoundTripsEveryField) {
  Preamble p = current_preamble("objects", kFlagSigned);
  std::string bytes = encode_preamble(p);
  size_t used = 0;
  Preamble q = decode_preamble(bytes + "payload...", false, used);
  EXPECT_EQ(used, bytes.size());
  EXPECT_EQ(q.format_version, kFormatVersion);
  EXPECT_EQ(q.flags, uint32_t(kFlagSigned));
  EXPECT_TRUE(q.is_signed());
  EXPECT_EQ(q.python_hexversion, p.python_hexversion);
  EXPECT_EQ(q.python_version, p.python_version);
  EXPECT_EQ(q.implementation, "cpython");
  EXPECT_EQ(q.host, p.host);
  EXPECT_EQ(q.payload_kind, "objects");
  EXPECT_EQ(q.created_unix, p.created_unix);
  EXPECT_NO_THROW(check_compatible(q));
}

TEST(Preamble, EmptyAndForeignFilesAreNotSnapshots) {
  size_t used;
  EXPECT_EQ(code_of([&] { decode_preamble("", true, used); }), ErrorCode::NotASnapshot);
  EXPECT_EQ(code_of([&] { decode_preamble("PK\x03\x04 zip file", true, used); }),
            ErrorCode::NotASnapshot);
}

TEST(Preamble, EveryTruncationIsReportedAsTruncated) {
  std::string bytes = encode_preamble(current_preamble("objects", 0));
  for (size_t n = 1; n < bytes.size(); ++n) {
    size_t used;
    EXPECT_EQ(code_of([&] { decode_preamble(bytes.substr(0, n), true, used); }),
              ErrorCode::TruncatedSnapshot)
        << "cut at " << n;
  }
}

TEST(Preamble, AFlippedBitIsCorrupt) {
  std::string bytes = encode_preamble(current_preamble("objects", 0));
  for (size_t i = 12; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x10;
    size_t used;
    EXPECT_EQ(code_of([&] { decode_preamble(bad, true, used); }), ErrorCode::CorruptSnapshot)
        << "byte " << i;
  }
}

TEST(Preamble, OtherFormatVersionIsIncompatibleAndSaysWhich) {
  Preamble p = current_preamble("objects", 0);
  p.format_version = kFormatVersion + 1;
  try {
    check_compatible(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::IncompatibleSnapshot);
    EXPECT_NE(std::string(e.what()).find("version " + std::to_string(kFormatVersion + 1)),
              std::string::npos)
        << e.what();
  }
}

TEST(Preamble, OtherPythonMinorIsIncompatiblePatchIsNot) {
  Preamble p = current_preamble("objects", 0);
  p.python_hexversion = 0x030C01F0;
  p.python_version = "3.12.1";
  try {
    check_compatible(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::IncompatibleSnapshot);
    std::string msg = e.what();
    EXPECT_NE(msg.find("3.12.1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("CPython 3.12.x is needed"), std::string::npos) << msg;
  }
  Preamble q = current_preamble("objects", 0);
  q.python_hexversion = (q.python_hexversion & 0xFFFF0000u) | 0x0900F0u;  // another patch level
  EXPECT_NO_THROW(check_compatible(q));
}

TEST(Footer, RoundTripsAndDetectsDamage) {
  Footer f{123, 456, 7};
  std::string bytes = encode_footer(f);
  ASSERT_EQ(bytes.size(), kFooterSize);
  Footer g = decode_footer(bytes);
  EXPECT_EQ(g.compressed_size, 123u);
  EXPECT_EQ(g.raw_size, 456u);
  EXPECT_EQ(g.record_count, 7u);
  std::string bad = bytes;
  bad[3] ^= 1;
  EXPECT_EQ(code_of([&] { decode_footer(bad); }), ErrorCode::CorruptSnapshot);
  std::string cut = bytes;
  cut[kFooterSize - 1] = 'X';
  EXPECT_EQ(code_of([&] { decode_footer(cut); }), ErrorCode::TruncatedSnapshot);
}

}  // namespace
}  // namespace stasis::format
