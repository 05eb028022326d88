// format/snapshot_file.h — the snapshot container: preamble | zstd(cereal payload) | footer | [HMAC].
// SnapshotWriter writes it atomically (temporary file beside the target, fsync, rename, fsync of the
// directory); SnapshotReader validates structure and signature when it opens, and every compressed
// byte and checksum either then (verify_payload) or during the one decompression that decoding
// does: PayloadReader then reports when the payload is verified (load/loads wait for that before
// any op with effects; format/payload.h).
#pragma once

#include <cereal/archives/portable_binary.hpp>
#include <memory>
#include <optional>
#include <string>

#include "format/preamble.h"

namespace stasis::format {

struct WriteOptions {
  std::string payload_kind = "objects";
  std::optional<std::string> key;  // sign with HMAC-SHA256 when set
  int level = 3;                   // zstd level
  int workers = 1;                 // zstd worker threads (compress while the walker runs)
};

class SnapshotWriter {
 public:
  // Writes to a temporary file beside `path`; commit() moves it into place.
  static SnapshotWriter to_file(const std::string& path, const WriteOptions& options);
  // Writes into `out` (for stasis.dumps).
  static SnapshotWriter to_string(std::string& out, const WriteOptions& options);
  SnapshotWriter(SnapshotWriter&&) noexcept;
  ~SnapshotWriter();  // without commit(): the temporary file is removed, the target untouched

  cereal::PortableBinaryOutputArchive& archive();
  void count_record();  // callers count the records they write (footer.record_count)
  // Writes data[0, n), items of `width` bytes, as buffer segments after the zstd frame written so
  // far (ZstdWriteBuf::segments). Returns their payload offset, for the Buffer op.
  uint64_t segments(const void* data, uint64_t n, size_t width);
  // Ends the payload, writes footer and signature, makes the file durable and renames it.
  void commit();

 private:
  struct Impl;
  explicit SnapshotWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct ReadOptions {
  std::optional<std::string> key;  // require a valid signature when set
  // Decompress everything once to check it when opening. load/loads pass false: PayloadReader's
  // single decompression checks the same (zstd blocks, frame checksum, raw size) as it reads.
  bool verify_payload = true;
  // Without verify_payload: the most decompressed bytes PayloadReader holds while the decoder waits
  // for the verification (an op with effects before the end); beyond it, it verifies the rest
  // without keeping it and decompresses that part again once verified.
  uint64_t max_buffered = uint64_t(64) << 20;
  // With verify_payload: PayloadReader reads the chunks on the decoding thread as it needs them,
  // without its background read-ahead thread (the fuzzers: a thread per small input costs more
  // than it saves, most of all on a loaded machine).
  bool read_ahead = true;
  // Check the XXH64 of every raw segment the decompression steps over, read or not by an op
  // (stasis inspect, which reads none itself, and so vouches for the whole file).
  bool check_raw_segments = false;
};

struct PayloadStats {
  uint64_t records = 0;
  uint64_t chunks = 0;
  uint64_t op_bytes = 0;
};

class SnapshotReader {
 public:
  // Opens and validates; throws the SnapshotError kinds (see core/error.h).
  static SnapshotReader open_file(const std::string& path, const ReadOptions& options);
  static SnapshotReader open_bytes(std::string_view bytes, const ReadOptions& options);
  SnapshotReader(SnapshotReader&&) noexcept;
  ~SnapshotReader();

  const Preamble& preamble() const;
  const Footer& footer() const;
  uint64_t file_size() const;
  const ReadOptions& options() const;
  // True when open() verified the whole payload (ReadOptions::verify_payload).
  bool payload_verified() const;
  // A fresh archive positioned at the first payload record.
  cereal::PortableBinaryInputArchive& archive();
  // Checks the headers of the segments of n bytes at payload offset `at`; reads (and checks) them
  // into dst (format/segments.h).
  void check_segments(uint64_t at, uint64_t n) const;
  void read_segments(uint64_t at, void* dst, uint64_t n) const;
  // Called by the decoder at the end: the archive was read to the end exactly, the zstd frame
  // ended (its checksum verified) and the raw size matches the footer.
  void expect_end();

 private:
  struct Impl;
  explicit SnapshotReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads just the preamble (for inspect on files that fail later checks).
Preamble read_preamble_only(const std::string& path);

}  // namespace stasis::format
