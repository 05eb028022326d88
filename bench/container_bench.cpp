// bench/container_bench.cpp — throughput of the snapshot container (format/) alone: a 100 MB op
// payload written to a file (compressed, checksummed, fsynced, renamed) and read back (validated,
// decompressed, streamed through PayloadReader). Two payloads: one shaped like real snapshots
// (compressible) and one of random bytes (incompressible). Medians of 5; MB = 10^6 bytes.
#include <Python.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "format/payload.h"
#include "format/snapshot_file.h"

using namespace stasis::format;
using Clock = std::chrono::steady_clock;

static std::vector<uint8_t> make_payload(size_t size, bool compressible) {
  std::vector<uint8_t> data(size);
  std::mt19937_64 rng(7);
  if (!compressible) {
    for (auto& b : data) b = uint8_t(rng());
    return data;
  }
  // Like a heap of small records: op bytes, varint ids, short strings with shared prefixes.
  size_t i = 0;
  uint64_t n = 0;
  while (i + 32 < size) {
    int len = std::snprintf(reinterpret_cast<char*>(&data[i]), 32, "\x07\x0aitem%06llu\x04",
                            static_cast<unsigned long long>(n++));
    i += size_t(len);
    uint64_t v = rng() % 100000;
    while (v >= 0x80) { data[i++] = uint8_t(v | 0x80); v >>= 7; }
    data[i++] = uint8_t(v);
  }
  return data;
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  size_t size = argc > 1 ? std::stoull(argv[1]) : 100'000'000;
  int level = argc > 2 ? std::stoi(argv[2]) : 3;
  auto dir = boost::filesystem::temp_directory_path() / boost::filesystem::unique_path("stasis-bench-%%%%");
  boost::filesystem::create_directories(dir);
  std::string path = (dir / "bench.snap").string();
  std::printf("container throughput, payload %.0f MB, zstd level %d, median of 5 (MB/s of raw payload)\n",
              size / 1e6, level);
  std::printf("%-14s %10s %12s %12s %12s\n", "payload", "ratio", "write MB/s", "read MB/s", "file MB");
  for (bool compressible : {true, false}) {
    std::vector<uint8_t> data = make_payload(size, compressible);
    std::vector<double> writes, reads;
    uint64_t file_size = 0;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = Clock::now();
      {
        WriteOptions o;
        o.level = level;
        auto w = SnapshotWriter::to_file(path, o);
        PayloadWriter p(w, PayloadHeader{"objects", 1});
        p.raw(data.data(), data.size());
        p.finish();
        w.commit();
      }
      auto t1 = Clock::now();
      uint64_t checksum = 0;
      {
        auto r = SnapshotReader::open_file(path, ReadOptions{});  // validates: full decompress pass
        file_size = r.file_size();
        PayloadReader p(r);
        while (!p.at_end()) checksum += p.byte();
      }
      auto t2 = Clock::now();
      if (checksum == 42) std::printf(" ");
      writes.push_back(size / 1e6 / std::chrono::duration<double>(t1 - t0).count());
      reads.push_back(size / 1e6 / std::chrono::duration<double>(t2 - t1).count());
    }
    std::printf("%-14s %9.1fx %12.0f %12.0f %12.1f\n", compressible ? "compressible" : "random",
                double(size) / double(file_size), median(writes), median(reads), file_size / 1e6);
  }
  boost::filesystem::remove_all(dir);
  return 0;
}
