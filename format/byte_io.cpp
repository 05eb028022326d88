#include "format/byte_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace stasis::format {
namespace {
constexpr size_t kFileBuffer = 1 << 20;

Error io_error(const std::string& what, const std::string& path) {
  return Error(ErrorCode::Io, what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

FileSink::FileSink(int fd, std::string path_for_errors)
    : fd_(fd), path_(std::move(path_for_errors)), buffer_(kFileBuffer) {}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSink::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  if (used_ + size > buffer_.size()) {
    flush();
    if (size >= buffer_.size()) {  // large writes bypass the buffer
      while (size > 0) {
        ssize_t n = ::write(fd_, p, size);
        if (n < 0) {
          if (errno == EINTR) continue;
          throw io_error("cannot write", path_);
        }
        p += n;
        size -= static_cast<size_t>(n);
      }
      return;
    }
  }
  std::memcpy(buffer_.data() + used_, p, size);
  used_ += size;
}

void FileSink::flush() {
  size_t done = 0;
  while (done < used_) {
    ssize_t n = ::write(fd_, buffer_.data() + done, used_ - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error("cannot write", path_);
    }
    done += static_cast<size_t>(n);
  }
  used_ = 0;
}

void FileSink::sync() {
  flush();
  if (::fsync(fd_) != 0) throw io_error("cannot fsync", path_);
}

void FileSink::close() {
  flush();
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw io_error("cannot close", path_);
}

size_t MemorySource::read_at(uint64_t offset, void* data, size_t size) const {
  if (offset >= bytes_.size()) return 0;
  size_t n = std::min<uint64_t>(size, bytes_.size() - offset);
  std::memcpy(data, bytes_.data() + offset, n);
  return n;
}

FileSource::FileSource(const std::string& path) : path_(path) {
  if (path.find('\0') != std::string::npos)
    throw Error(ErrorCode::Io, "cannot open a path with a NUL byte");
  // O_NONBLOCK: opening a FIFO without a writer would wait forever; only regular files are read.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw io_error("cannot open", path);
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw io_error("cannot stat", path);
  if (S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    throw io_error("cannot read", path);
  }
  if (!S_ISREG(st.st_mode))
    throw Error(ErrorCode::Io, "cannot read " + path + ": it is not a regular file (a FIFO, socket or device); "
                               "a snapshot is read only from a file");
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
  size_ = static_cast<uint64_t>(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

size_t FileSource::read_at(uint64_t offset, void* data, size_t size) const {
  size_t done = 0;
  char* p = static_cast<char*>(data);
  while (done < size) {
    ssize_t n = ::pread(fd_, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error("cannot read", path_);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace stasis::format
