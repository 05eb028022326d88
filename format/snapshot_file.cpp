#include "format/snapshot_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <cerrno>
#include <cstring>
#include <istream>
#include <ostream>

#include "core/error.h"
#include "format/byte_io.h"
#include "format/schema.h"
#include "format/segments.h"
#include "format/signature.h"
#include "format/zstd_stream.h"

namespace fs = boost::filesystem;

namespace stasis::format {
namespace {

// Forwards bytes to the real sink while feeding the HMAC and counting.
class HashingSink final : public ByteSink {
 public:
  HashingSink(ByteSink& inner, Hmac* hmac) : inner_(inner), hmac_(hmac) {}
  void write(const void* data, size_t size) override {
    inner_.write(data, size);
    if (hmac_) hmac_->update(data, size);
    count_ += size;
  }
  uint64_t count() const { return count_; }

 private:
  ByteSink& inner_;
  Hmac* hmac_;
  uint64_t count_ = 0;
};

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems do not allow opening directories
  ::fsync(fd);
  ::close(fd);
}

// Temporary files `<target>.tmp-<pid>-<random>` of writers that were killed before they could
// rename or remove them: removed when that process no longer exists and the file is ours.
void remove_stale_temporaries(const fs::path& target) {
  boost::system::error_code ec;
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::string prefix = target.filename().string() + ".tmp-";
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t dash = name.find('-', prefix.size());
    if (dash == std::string::npos) continue;
    std::string pid_text = name.substr(prefix.size(), dash - prefix.size());
    if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    pid_t pid = pid_t(std::stol(pid_text));
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid()) continue;
    ::unlink(it->path().c_str());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct SnapshotWriter::Impl {
  std::string target;             // empty when writing to memory
  std::string temp;
  std::unique_ptr<FileSink> file;
  std::unique_ptr<StringSink> memory;
  ByteSink* base = nullptr;
  std::unique_ptr<Hmac> hmac;
  std::unique_ptr<HashingSink> hashing;
  std::unique_ptr<ZstdWriteBuf> zbuf;
  std::unique_ptr<std::ostream> stream;
  std::unique_ptr<cereal::PortableBinaryOutputArchive> archive;
  uint64_t records = 0;
  bool committed = false;

  void start(const WriteOptions& options) {
    if (options.key) hmac = std::make_unique<Hmac>(*options.key);
    hashing = std::make_unique<HashingSink>(*base, hmac.get());
    Preamble p = current_preamble(options.payload_kind, options.key ? uint32_t(kFlagSigned) : 0u);
    std::string head = encode_preamble(p);
    hashing->write(head.data(), head.size());
    zbuf = std::make_unique<ZstdWriteBuf>(*hashing, options.level, options.workers);
    stream = std::make_unique<std::ostream>(zbuf.get());
    stream->exceptions(std::ios::badbit | std::ios::failbit);
    archive = std::make_unique<cereal::PortableBinaryOutputArchive>(*stream);
  }

  ~Impl() {
    archive.reset();
    if (!committed && !temp.empty()) {
      file.reset();
      ::unlink(temp.c_str());
    }
  }
};

SnapshotWriter::SnapshotWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SnapshotWriter::SnapshotWriter(SnapshotWriter&&) noexcept = default;
SnapshotWriter::~SnapshotWriter() = default;

SnapshotWriter SnapshotWriter::to_file(const std::string& path, const WriteOptions& options) {
  auto impl = std::make_unique<Impl>();
  fs::path target(path);
  if (fs::is_directory(target))
    throw Error(ErrorCode::Io, "cannot write snapshot " + path + ": it is a directory");
  remove_stale_temporaries(target);
  fs::path temp = target.parent_path() /
                  fs::path(target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                           fs::unique_path("%%%%%%%%").string());
  // 0600: a snapshot holds the program's whole heap, secrets included.
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw Error(ErrorCode::Io, "cannot create " + temp.string() + " (beside snapshot " + path +
                                   "): " + std::strerror(errno));
  impl->target = path;
  impl->temp = temp.string();
  impl->file = std::make_unique<FileSink>(fd, impl->temp);
  impl->base = impl->file.get();
  impl->start(options);
  return SnapshotWriter(std::move(impl));
}

SnapshotWriter SnapshotWriter::to_string(std::string& out, const WriteOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->memory = std::make_unique<StringSink>(out);
  impl->base = impl->memory.get();
  impl->start(options);
  return SnapshotWriter(std::move(impl));
}

cereal::PortableBinaryOutputArchive& SnapshotWriter::archive() { return *impl_->archive; }

uint64_t SnapshotWriter::segments(const void* data, uint64_t n, size_t width) {
  Impl& m = *impl_;
  m.stream->flush();  // cereal writes through to the stream buffer: nothing is held elsewhere
  return m.zbuf->segments(data, n, width);
}
void SnapshotWriter::count_record() { ++impl_->records; }

void SnapshotWriter::commit() {
  Impl& m = *impl_;
  m.archive.reset();
  m.stream->flush();
  m.zbuf->finish();
  Footer footer{m.zbuf->compressed_bytes(), m.zbuf->raw_bytes(), m.records};
  std::string tail = encode_footer(footer);
  m.hashing->write(tail.data(), tail.size());
  if (m.hmac) {
    Digest d = m.hmac->finish();
    m.base->write(d.data(), d.size());
  }
  if (m.file) {
    m.file->sync();
    m.file->close();
    boost::system::error_code ec;
    fs::rename(m.temp, m.target, ec);
    if (ec)
      throw Error(ErrorCode::Io, "cannot move " + m.temp + " to " + m.target + ": " + ec.message());
    fsync_directory(fs::path(m.target).parent_path());
  }
  m.committed = true;
}

// ---------------------------------------------------------------------------------------------
struct SnapshotReader::Impl {
  std::unique_ptr<ByteSource> source;
  Preamble preamble;
  Footer footer;
  uint64_t payload_offset = 0;
  std::unique_ptr<ZstdReadBuf> zbuf;
  std::unique_ptr<std::istream> stream;
  std::unique_ptr<cereal::PortableBinaryInputArchive> archive;
  ReadOptions options;

  static constexpr uint64_t kMaxExpansion = uint64_t(1) << 15;

  void open(const ReadOptions& options) {
    this->options = options;
    const uint64_t size = source->size();
    std::string head(size_t(std::min<uint64_t>(size, 8192)), '\0');
    source->read_at(0, head.data(), head.size());
    size_t preamble_size = 0;
    preamble = decode_preamble(head, head.size() == size, preamble_size);
    check_compatible(preamble);

    const uint64_t trailer = kFooterSize + (preamble.is_signed() ? kSignatureSize : 0);
    if (size < preamble_size + trailer)
      throw Error(ErrorCode::TruncatedSnapshot,
                  "the file ends right after its preamble (" + std::to_string(size) +
                      " bytes): the payload is missing; the snapshot was cut short");
    std::string tail(kFooterSize, '\0');
    const uint64_t footer_at = size - trailer;
    source->read_at(footer_at, tail.data(), tail.size());
    try {
      footer = decode_footer(tail);
    } catch (const Error& e) {
      // No end marker where the file ends: cut short, or followed by bytes that are not its own.
      if (e.code() == ErrorCode::TruncatedSnapshot) report_trailing_bytes(size, preamble_size, trailer);
      throw;
    }
    payload_offset = preamble_size;
    if (footer.compressed_size != footer_at - preamble_size)
      throw Error(ErrorCode::CorruptSnapshot,
                  "footer says the payload has " + std::to_string(footer.compressed_size) +
                      " compressed bytes, the file holds " +
                      std::to_string(footer_at - preamble_size));
    // zstd expands at most ~32768:1 (a 4-byte RLE block of 128 KiB); raw segments are 1:1. A
    // larger raw size cannot be true, and would let a Buffer op reserve memory nothing backs.
    if (footer.raw_size / kMaxExpansion > footer.compressed_size)
      throw Error(ErrorCode::CorruptSnapshot,
                  "footer says the payload decompresses to " + std::to_string(footer.raw_size) +
                      " bytes, more than its " + std::to_string(footer.compressed_size) +
                      " compressed bytes can hold");

    if (options.key) {
      if (!preamble.is_signed())
        throw Error(ErrorCode::BadSignature,
                    "the snapshot is not signed, and a key was given: refusing to load it");
      Hmac hmac(*options.key);
      std::vector<char> buf(1 << 20);
      for (uint64_t at = 0; at < footer_at + kFooterSize;) {
        size_t n = size_t(std::min<uint64_t>(buf.size(), footer_at + kFooterSize - at));
        source->read_at(at, buf.data(), n);
        hmac.update(buf.data(), n);
        at += n;
      }
      uint8_t stored[kSignatureSize];
      source->read_at(footer_at + kFooterSize, stored, kSignatureSize);
      if (!digests_equal(hmac.finish(), stored))
        throw Error(ErrorCode::BadSignature,
                    "the snapshot's signature does not match the key: it was changed after "
                    "signing, or signed with another key");
    }
    if (options.verify_payload) verify();
  }

  // A complete snapshot (footer with its marker and CRC, then the HMAC if signed) that ends
  // before the file does: reported as such rather than as a file cut short.
  void report_trailing_bytes(uint64_t size, size_t preamble_size, uint64_t trailer) {
    const uint64_t window = std::min<uint64_t>(size - preamble_size, uint64_t(1) << 20);
    std::string buf(size_t(window), '\0');
    const uint64_t base = size - window;
    source->read_at(base, buf.data(), buf.size());
    for (size_t at = buf.size(); at >= kFooterSize; --at) {
      size_t footer_pos = at - kFooterSize;
      if (std::memcmp(buf.data() + at - 8, kFooterMagic, 8) != 0) continue;
      uint64_t end = base + at + (trailer - kFooterSize);  // where the snapshot ends
      if (end >= size) continue;
      try {
        Footer f = decode_footer(std::string_view(buf.data() + footer_pos, kFooterSize));
        if (f.compressed_size != base + footer_pos - preamble_size) continue;
      } catch (const Error&) {
        continue;
      }
      throw Error(ErrorCode::CorruptSnapshot,
                  std::to_string(size - end) + " bytes follow the end of the snapshot (at byte " +
                      std::to_string(end) + "): the file holds more than one snapshot wrote");
    }
  }

  // Decompresses the whole payload once: zstd checks every block and the frame checksum.
  void verify() {
    ZstdReadBuf buf(*source, payload_offset, footer.compressed_size, /*check_segments=*/true);
    std::vector<char> sink(1 << 20);
    while (buf.sgetn(sink.data(), std::streamsize(sink.size())) > 0) {
    }
    if (!buf.finished())
      throw Error(ErrorCode::TruncatedSnapshot, "the compressed payload ends early");
    if (buf.raw_bytes_read() != footer.raw_size)
      throw Error(ErrorCode::CorruptSnapshot,
                  "payload decompresses to " + std::to_string(buf.raw_bytes_read()) +
                      " bytes, the footer says " + std::to_string(footer.raw_size));
  }
};

SnapshotReader::SnapshotReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SnapshotReader::SnapshotReader(SnapshotReader&&) noexcept = default;
SnapshotReader::~SnapshotReader() = default;

SnapshotReader SnapshotReader::open_file(const std::string& path, const ReadOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->source = std::make_unique<FileSource>(path);
  impl->open(options);
  return SnapshotReader(std::move(impl));
}

SnapshotReader SnapshotReader::open_bytes(std::string_view bytes, const ReadOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->source = std::make_unique<MemorySource>(bytes);
  impl->open(options);
  return SnapshotReader(std::move(impl));
}

const Preamble& SnapshotReader::preamble() const { return impl_->preamble; }
const Footer& SnapshotReader::footer() const { return impl_->footer; }
const ReadOptions& SnapshotReader::options() const { return impl_->options; }
bool SnapshotReader::payload_verified() const { return impl_->options.verify_payload; }
uint64_t SnapshotReader::file_size() const { return impl_->source->size(); }

cereal::PortableBinaryInputArchive& SnapshotReader::archive() {
  Impl& m = *impl_;
  m.archive.reset();
  m.stream.reset();
  m.zbuf = std::make_unique<ZstdReadBuf>(*m.source, m.payload_offset, m.footer.compressed_size,
                                         m.options.check_raw_segments);
  m.stream = std::make_unique<std::istream>(m.zbuf.get());
  m.stream->exceptions(std::ios::badbit);
  m.archive = std::make_unique<cereal::PortableBinaryInputArchive>(*m.stream);
  return *m.archive;
}

void SnapshotReader::check_segments(uint64_t at, uint64_t n) const {
  const Impl& m = *impl_;
  format::check_segment_headers(*m.source, m.payload_offset, m.footer.compressed_size, at, n);
}

void SnapshotReader::read_segments(uint64_t at, void* dst, uint64_t n) const {
  const Impl& m = *impl_;
  format::read_segments(*m.source, m.payload_offset, m.footer.compressed_size, at, dst, n);
}

void SnapshotReader::expect_end() {
  Impl& m = *impl_;
  if (m.stream->peek() != std::char_traits<char>::eof() || !m.zbuf->finished())
    throw Error(ErrorCode::CorruptSnapshot,
                "payload has bytes after its end record (at payload byte " +
                    std::to_string(m.zbuf->raw_bytes_read()) + ")");
  if (m.zbuf->raw_bytes_read() != m.footer.raw_size)
    throw Error(ErrorCode::CorruptSnapshot,
                "payload decompresses to " + std::to_string(m.zbuf->raw_bytes_read()) +
                    " bytes, the footer says " + std::to_string(m.footer.raw_size));
}

Preamble read_preamble_only(const std::string& path) {
  FileSource source(path);
  std::string head(size_t(std::min<uint64_t>(source.size(), 8192)), '\0');
  source.read_at(0, head.data(), head.size());
  size_t preamble_size = 0;
  return decode_preamble(head, head.size() == source.size(), preamble_size);
}

}  // namespace stasis::format
