#include "format/snapshot_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <fstream>

#include "core/error.h"
#include "error_code_of.h"
#include "format/payload.h"
#include "format/schema.h"

namespace fs = boost::filesystem;

namespace stasis::format {
namespace {

using stasis::testing::code_of;

// A payload of `n` varints and a string, spanning several chunks.
void write_sample(SnapshotWriter& w, uint64_t n) {
  PayloadWriter p(w, PayloadHeader{"objects", 1});
  for (uint64_t i = 0; i < n; ++i) {
    p.op(Op::IntSmall);
    p.svar(int64_t(i * 2654435761u) - int64_t(i));
  }
  p.op(Op::Tuple);
  p.uvar(n);
  p.finish();
}

void read_sample(SnapshotReader& r, uint64_t n) {
  PayloadReader p(r);
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(p.byte(), uint8_t(Op::IntSmall));
    ASSERT_EQ(p.svar(), int64_t(i * 2654435761u) - int64_t(i));
  }
  EXPECT_EQ(p.byte(), uint8_t(Op::Tuple));
  EXPECT_EQ(p.uvar(), n);
  EXPECT_TRUE(p.at_end());
  if (n >= 100'000) EXPECT_GT(p.end().chunk_count, 1u) << "the sample should span chunks";
}

std::string make_bytes(uint64_t n, std::optional<std::string> key = std::nullopt) {
  std::string out;
  WriteOptions o;
  o.key = key;
  auto w = SnapshotWriter::to_string(out, o);
  write_sample(w, n);
  w.commit();
  return out;
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fs::unique_path("stasis-test-%%%%%%%%");
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) { return (dir_ / name).string(); }
  size_t entries() { return size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }
  fs::path dir_;
};

TEST(SnapshotFile, RoundTripsInMemoryAcrossChunks) {
  std::string bytes = make_bytes(200'000);
  auto r = SnapshotReader::open_bytes(bytes, ReadOptions{});
  EXPECT_EQ(r.preamble().payload_kind, "objects");
  EXPECT_EQ(r.footer().record_count, r.footer().record_count);
  read_sample(r, 200'000);
  // scan_ops sees the same stream and its grammar is valid.
  PayloadReader again(r);
  OpSummary s = scan_ops(again);
  EXPECT_EQ(s.counts[uint8_t(Op::IntSmall)], 200'000u);
}

using SnapshotFileOnDisk = TempDir;

TEST_F(SnapshotFileOnDisk, WritesAtomicallyAndLeavesNoTemporaryFile) {
  std::string target = path("job.snap");
  {
    auto w = SnapshotWriter::to_file(target, WriteOptions{});
    write_sample(w, 1000);
    EXPECT_FALSE(fs::exists(target)) << "target visible before commit";
    w.commit();
  }
  EXPECT_EQ(entries(), 1u);
  auto r = SnapshotReader::open_file(target, ReadOptions{});
  read_sample(r, 1000);
}

TEST_F(SnapshotFileOnDisk, AnAbandonedWriteKeepsThePreviousSnapshot) {
  std::string target = path("job.snap");
  {
    auto w = SnapshotWriter::to_file(target, WriteOptions{});
    write_sample(w, 10);
    w.commit();
  }
  std::string before;
  {
    std::ifstream in(target, std::ios::binary);
    before.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    auto w = SnapshotWriter::to_file(target, WriteOptions{});
    write_sample(w, 100'000);
    // destroyed without commit(), as when encoding fails half-way
  }
  std::ifstream in(target, std::ios::binary);
  std::string after((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(before, after);
  EXPECT_EQ(entries(), 1u) << "temporary file left behind";
}

TEST_F(SnapshotFileOnDisk, MissingFileAndDirectoryAreIoErrors) {
  EXPECT_EQ(code_of([&] { SnapshotReader::open_file(path("nope.snap"), ReadOptions{}); }),
            ErrorCode::Io);
  EXPECT_EQ(code_of([&] { SnapshotReader::open_file(dir_.string(), ReadOptions{}); }), ErrorCode::Io);
  EXPECT_EQ(code_of([&] { SnapshotWriter::to_file(path("no/such/dir/x.snap"), WriteOptions{}); }),
            ErrorCode::Io);
}

TEST(SnapshotFile, EveryCutIsTruncated) {
  std::string bytes = make_bytes(20'000);
  size_t preamble_size;
  decode_preamble(bytes, false, preamble_size);
  for (size_t cut = 1; cut < bytes.size(); cut += (cut < preamble_size + 64 ? 1 : 97)) {
    ErrorCode c = code_of([&] { SnapshotReader::open_bytes(bytes.substr(0, cut), ReadOptions{}); });
    EXPECT_EQ(c, ErrorCode::TruncatedSnapshot) << "cut at " << cut << " of " << bytes.size();
  }
}

TEST(SnapshotFile, FlippedBitInPayloadIsCorrupt) {
  std::string bytes = make_bytes(20'000);
  size_t preamble_size;
  decode_preamble(bytes, false, preamble_size);
  for (size_t at : {preamble_size + 5, preamble_size + 500, bytes.size() / 2, bytes.size() - 45}) {
    std::string bad = bytes;
    bad[at] ^= 0x20;
    EXPECT_EQ(code_of([&] { SnapshotReader::open_bytes(bad, ReadOptions{}); }),
              ErrorCode::CorruptSnapshot)
        << "flip at " << at;
  }
}

TEST(SnapshotFile, SignedFilesNeedTheRightKey) {
  std::string signed_bytes = make_bytes(1000, std::string("secret-key"));
  ReadOptions good;
  good.key = "secret-key";
  auto r = SnapshotReader::open_bytes(signed_bytes, good);
  EXPECT_TRUE(r.preamble().is_signed());
  read_sample(r, 1000);

  ReadOptions wrong;
  wrong.key = "other-key";
  EXPECT_EQ(code_of([&] { SnapshotReader::open_bytes(signed_bytes, wrong); }), ErrorCode::BadSignature);

  EXPECT_EQ(code_of([&] { SnapshotReader::open_bytes(make_bytes(10), good); }), ErrorCode::BadSignature)
      << "an unsigned file must be refused when a key is given";

  // Without a key a signed file still reads.
  EXPECT_NO_THROW(SnapshotReader::open_bytes(signed_bytes, ReadOptions{}));

  // Tampering with the payload of a signed file: the signature fails before decompression.
  std::string tampered = signed_bytes;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_EQ(code_of([&] { SnapshotReader::open_bytes(tampered, good); }), ErrorCode::BadSignature);
}

TEST(SnapshotFile, ScanOpsRejectsABadStream) {
  std::string out;
  auto w = SnapshotWriter::to_string(out, WriteOptions{});
  {
    PayloadWriter p(w, PayloadHeader{"objects", 1});
    p.op(Op::Appends);  // nothing on the stack to append to
    p.uvar(3);
    p.finish();
  }
  w.commit();
  auto r = SnapshotReader::open_bytes(out, ReadOptions{});
  PayloadReader p(r);
  EXPECT_EQ(code_of([&] { scan_ops(p); }), ErrorCode::CorruptSnapshot);
}

// Without verify_payload (load/loads), PayloadReader's one decompression is the check.
ReadOptions unverified(uint64_t max_buffered = uint64_t(64) << 20) {
  ReadOptions o;
  o.verify_payload = false;
  o.max_buffered = max_buffered;
  return o;
}

// Reads the sample's ops [from, to).
void read_ops(PayloadReader& p, uint64_t from, uint64_t to) {
  for (uint64_t i = from; i < to; ++i) {
    ASSERT_EQ(p.byte(), uint8_t(Op::IntSmall)) << "op " << i;
    ASSERT_EQ(p.svar(), int64_t(i * 2654435761u) - int64_t(i)) << "op " << i;
  }
}

TEST(PayloadVerification, TheOneReadVerifiesWhenItReachesTheEnd) {
  std::string bytes = make_bytes(200'000);
  auto r = SnapshotReader::open_bytes(bytes, unverified());
  EXPECT_FALSE(r.payload_verified());
  PayloadReader p(r);
  EXPECT_FALSE(p.verified());
  read_ops(p, 0, 200'000);
  EXPECT_EQ(p.byte(), uint8_t(Op::Tuple));
  EXPECT_EQ(p.uvar(), 200'000u);
  EXPECT_TRUE(p.at_end());
  EXPECT_TRUE(p.verified());
  // Opened with verify_payload, the payload is verified before the first op.
  auto v = SnapshotReader::open_bytes(bytes, ReadOptions{});
  EXPECT_TRUE(PayloadReader(v).verified());
}

TEST(PayloadVerification, WaitingKeepsTheOpsNotReadYet) {
  const uint64_t n = 400'000;
  std::string bytes = make_bytes(n);
  auto r = SnapshotReader::open_bytes(bytes, unverified());
  PayloadReader p(r);
  read_ops(p, 0, 1000);
  p.wait_verified();
  EXPECT_TRUE(p.verified());
  read_ops(p, 1000, n);
  EXPECT_EQ(p.byte(), uint8_t(Op::Tuple));
  EXPECT_EQ(p.uvar(), n);
  EXPECT_TRUE(p.at_end());
  EXPECT_GT(p.end().chunk_count, 6u) << "the sample should need more than the read-ahead";
}

TEST(PayloadVerification, PastTheBufferLimitTheRestIsDecompressedAgain) {
  const uint64_t n = 400'000;
  std::string bytes = make_bytes(n);
  for (uint64_t limit : {uint64_t(0), uint64_t(kMaxChunk) * 2}) {
    auto r = SnapshotReader::open_bytes(bytes, unverified(limit));
    PayloadReader p(r);
    read_ops(p, 0, 1000);
    p.wait_verified();  // keeps the read-ahead chunks (and `limit` bytes), drops the rest
    read_ops(p, 1000, n);
    EXPECT_EQ(p.byte(), uint8_t(Op::Tuple));
    EXPECT_EQ(p.uvar(), n);
    EXPECT_TRUE(p.at_end());
    EXPECT_TRUE(p.verified());
  }
}

TEST(PayloadVerification, ADamagedPayloadFailsTheWaitAndTheRead) {
  std::string bytes = make_bytes(200'000);
  size_t preamble_size;
  decode_preamble(bytes, false, preamble_size);
  for (size_t at : {preamble_size + 500, bytes.size() / 2, bytes.size() - 45, bytes.size() - 41}) {
    std::string bad = bytes;
    bad[at] ^= 0x20;
    EXPECT_EQ(code_of([&] {
                auto r = SnapshotReader::open_bytes(bad, unverified());
                PayloadReader p(r);
                p.wait_verified();
              }),
              ErrorCode::CorruptSnapshot)
        << "flip at " << at;
    EXPECT_EQ(code_of([&] {
                auto r = SnapshotReader::open_bytes(bad, unverified());
                PayloadReader p(r);
                while (!p.at_end()) p.byte();
              }),
              ErrorCode::CorruptSnapshot)
        << "flip at " << at;
  }
}

}  // namespace
}  // namespace stasis::format
