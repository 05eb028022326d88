// format/byte_io.h — where container bytes go (ByteSink) and come from (ByteSource): a file or memory.
// Counterparts: SnapshotWriter writes through a ByteSink, SnapshotReader reads from a ByteSource.
// FileSink buffers, and only sync() makes the bytes durable (fsync).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace stasis::format {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* data, size_t size) = 0;
  virtual void flush() {}
};

class StringSink final : public ByteSink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  void write(const void* data, size_t size) override {
    out_.append(static_cast<const char*>(data), size);
  }

 private:
  std::string& out_;
};

// Writes to a file descriptor it owns, through a buffer. Throws Error(Io) on failure.
class FileSink final : public ByteSink {
 public:
  FileSink(int fd, std::string path_for_errors);
  ~FileSink() override;
  void write(const void* data, size_t size) override;
  void flush() override;
  void sync();   // flush, then fsync: the bytes are durable when it returns
  void close();  // flush and close; the destructor closes without flushing errors

 private:
  int fd_;
  std::string path_;
  std::vector<char> buffer_;
  size_t used_ = 0;
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Reads up to `size` bytes at `offset`; returns the count read (short only at the end).
  virtual size_t read_at(uint64_t offset, void* data, size_t size) const = 0;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  size_t read_at(uint64_t offset, void* data, size_t size) const override;

 private:
  std::string_view bytes_;
};

class FileSource final : public ByteSource {
 public:
  // Opens `path` for reading; throws Error(Io) naming the path if it cannot.
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  uint64_t size() const override { return size_; }
  size_t read_at(uint64_t offset, void* data, size_t size) const override;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

}  // namespace stasis::format
