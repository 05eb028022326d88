#include "format/payload.h"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <cstdio>

#include "format/byte_planes.h"
#include "format/segments.h"

#include <zstd.h>

namespace stasis::format {

PayloadWriter::PayloadWriter(SnapshotWriter& file, const PayloadHeader& header)
    : file_(file), buf_(kMaxChunk) {
  file_.archive()(RecordTag::Header, header);
  file_.count_record();
}

void PayloadWriter::raw(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    if (used_ == kMaxChunk) flush_chunk();
    size_t k = std::min(size, kMaxChunk - used_);
    std::memcpy(buf_.data() + used_, p, k);
    used_ += k;
    p += k;
    size -= k;
  }
}

void PayloadWriter::flush_chunk() {
  if (used_ == 0) return;
  auto& ar = file_.archive();
  ar(RecordTag::OpChunk);
  save_op_chunk(ar, buf_.data(), used_);
  file_.count_record();
  end_.op_bytes += used_;
  ++end_.chunk_count;
  op_bytes_progress().fetch_add(used_, std::memory_order_relaxed);
  used_ = 0;
}

void PayloadWriter::finish() {
  flush_chunk();
  file_.archive()(RecordTag::End, end_);
  file_.count_record();
}

// The background reader: decodes OpChunk records (zstd decompression included) up to
// kReadAhead chunks ahead of the decoder, then the end record and the end-of-stream checks, which
// verify the payload when the SnapshotReader did not. While the decoder waits for that
// (wait_verified) it reads ahead without the bound, up to max_buffered bytes; past them it goes on
// checking without keeping chunks, and notes the first one dropped (resume_at): once verified, a
// second pass (a fresh archive) skips the chunks decoded already and reads the rest.
// Errors are handed over and rethrown, in order, by next_chunk() on the decoding thread.
struct PayloadReader::ReadAhead {
  static constexpr size_t kReadAhead = 4;
  static constexpr size_t kSpares = kReadAhead + 2;
  static constexpr uint64_t kNone = UINT64_MAX;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::vector<uint8_t>> ready;
  std::vector<std::vector<uint8_t>> spare;
  uint64_t buffered = 0;       // bytes in `ready`
  uint64_t max_buffered = 0;   // the most `ready` may hold beyond kReadAhead chunks while waiting
  bool done = false;           // the pass ended: end record checked, or an error
  bool verified = false;       // ... with every check passed
  bool waiting = false;        // the decoder waits for the end: read ahead without the bound
  bool keep = true;            // ... keeping chunks (false: it only wants the verdict)
  uint64_t resume_at = kNone;  // the first chunk (by record index) dropped while waiting
  uint64_t skip = 0;           // chunks this pass skips (a second pass: decoded already)
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  PayloadEnd end;
  std::thread worker;

  // ar: the archive, positioned after the header; nullptr for a second pass (a fresh archive).
  void run(cereal::PortableBinaryInputArchive* ar, SnapshotReader& file) {
    uint64_t chunks = 0, bytes = 0;
    try {
      if (!ar) {
        ar = &file.archive();
        RecordTag tag{};
        PayloadHeader header;
        (*ar)(tag);
        if (tag != RecordTag::Header)
          throw Error(ErrorCode::CorruptSnapshot, "the payload changed while it was read");
        (*ar)(header);
      }
      std::vector<uint8_t> buf;
      for (;;) {
        if (stop.load(std::memory_order_relaxed)) return;
        RecordTag tag{};
        (*ar)(tag);
        if (tag == RecordTag::OpChunk) {
          if (buf.capacity() == 0) {
            std::lock_guard<std::mutex> lock(mutex);
            if (!spare.empty()) {
              buf = std::move(spare.back());
              spare.pop_back();
            }
          }
          load_op_chunk(*ar, buf);
          uint64_t index = chunks++;
          bytes += buf.size();
          if (buf.empty() || index < skip) continue;
          std::unique_lock<std::mutex> lock(mutex);
          if (resume_at != kNone) continue;  // only checking now
          cv.wait(lock, [&] { return ready.size() < kReadAhead || waiting || stop; });
          if (stop) return;
          if (ready.size() >= kReadAhead && (!keep || buffered + buf.size() > max_buffered)) {
            resume_at = index;
            continue;
          }
          buffered += buf.size();
          ready.push_back(std::move(buf));
          buf = std::vector<uint8_t>();
          cv.notify_all();
          continue;
        }
        if (tag == RecordTag::End) {
          PayloadEnd e;
          (*ar)(e);
          if (e.chunk_count != chunks || e.op_bytes != bytes)
            throw Error(ErrorCode::CorruptSnapshot,
                        "end record counts " + std::to_string(e.chunk_count) + " chunks / " +
                            std::to_string(e.op_bytes) + " op bytes, the payload has " +
                            std::to_string(chunks) + " / " + std::to_string(bytes));
          file.expect_end();
          std::lock_guard<std::mutex> lock(mutex);
          end = e;
          done = verified = true;
          cv.notify_all();
          return;
        }
        throw Error(ErrorCode::CorruptSnapshot, "unknown payload record tag " +
                                                    std::to_string(int(tag)) + " after op byte " +
                                                    std::to_string(bytes));
      }
    } catch (const cereal::Exception& e) {
      fail(std::make_exception_ptr(Error(ErrorCode::CorruptSnapshot,
                                         std::string("cannot read payload record after op byte ") +
                                             std::to_string(bytes) + ": " + e.what())));
    } catch (...) {
      fail(std::current_exception());
    }
  }
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex);
    error = e;
    done = true;
    cv.notify_all();
  }
};

PayloadReader::PayloadReader(SnapshotReader& file) : file_(file) {
  cereal::PortableBinaryInputArchive& ar = file.archive();  // the worker's, after the header
  RecordTag tag{};
  try {
    ar(tag);
    if (tag != RecordTag::Header)
      throw Error(ErrorCode::CorruptSnapshot,
                  "payload does not start with a header record (tag " +
                      std::to_string(int(tag)) + ")");
    ar(header_);
  } catch (const cereal::Exception& e) {
    throw Error(ErrorCode::CorruptSnapshot, std::string("cannot read the payload header: ") + e.what());
  }
  verified_ = file.payload_verified();
  if (!file.options().read_ahead && verified_) {
    here_ = &ar;
    return;
  }
  ahead_ = std::make_unique<ReadAhead>();
  ahead_->max_buffered = file.options().max_buffered;
  cereal::PortableBinaryInputArchive* first = &ar;
  ahead_->worker = std::thread([this, first] { ahead_->run(first, file_); });
}

PayloadReader::~PayloadReader() {
  if (!ahead_) return;
  {
    std::lock_guard<std::mutex> lock(ahead_->mutex);
    ahead_->stop = true;
    ahead_->cv.notify_all();
  }
  ahead_->worker.join();
}

void PayloadReader::wait_for_verification(bool keep) {
  if (!ahead_) return;  // read here only when verified already
  ReadAhead& a = *ahead_;
  std::unique_lock<std::mutex> lock(a.mutex);
  a.waiting = true;
  a.keep = keep;
  a.cv.notify_all();
  a.cv.wait(lock, [&] { return a.done; });
  a.waiting = false;
  if (a.error) std::rethrow_exception(a.error);
  verified_ = a.verified;
}

bool PayloadReader::next_chunk_here() {
  try {
    for (;;) {
      RecordTag tag{};
      (*here_)(tag);
      if (tag == RecordTag::OpChunk) {
        load_op_chunk(*here_, chunk_);
        ++here_chunks_;
        here_bytes_ += chunk_.size();
        if (chunk_.empty()) continue;
        return true;
      }
      if (tag == RecordTag::End) {
        PayloadEnd e;
        (*here_)(e);
        if (e.chunk_count != here_chunks_ || e.op_bytes != here_bytes_)
          throw Error(ErrorCode::CorruptSnapshot, "end record counts " + std::to_string(e.chunk_count) +
                                                      " chunks / " + std::to_string(e.op_bytes) +
                                                      " op bytes, the payload has " + std::to_string(here_chunks_) +
                                                      " / " + std::to_string(here_bytes_));
        file_.expect_end();
        chunk_.clear();
        end_ = e;
        ended_ = true;
        return false;
      }
      throw Error(ErrorCode::CorruptSnapshot, "unknown payload record tag " + std::to_string(int(tag)) +
                                                  " after op byte " + std::to_string(here_bytes_));
    }
  } catch (const cereal::Exception& e) {
    throw Error(ErrorCode::CorruptSnapshot,
                std::string("cannot read payload record after op byte ") + std::to_string(here_bytes_) + ": " + e.what());
  }
}

bool PayloadReader::next_chunk() {
  if (ended_) return false;
  consumed_ += chunk_.size();
  op_bytes_progress().fetch_add(chunk_.size(), std::memory_order_relaxed);
  pos_ = 0;
  if (here_) return next_chunk_here();
  ReadAhead& a = *ahead_;
  std::unique_lock<std::mutex> lock(a.mutex);
  for (;;) {
    a.cv.wait(lock, [&] { return !a.ready.empty() || a.done; });
    if (!a.ready.empty()) {
      if (a.spare.size() < ReadAhead::kSpares) a.spare.push_back(std::move(chunk_));
      chunk_ = std::move(a.ready.front());
      a.ready.pop_front();
      a.buffered -= chunk_.size();
      a.cv.notify_all();
      return true;
    }
    chunk_.clear();
    if (a.error) std::rethrow_exception(a.error);
    if (a.resume_at == ReadAhead::kNone) break;
    // Verified, with chunks dropped while waiting: a second pass reads them (and what follows).
    a.skip = a.resume_at;
    a.resume_at = ReadAhead::kNone;
    a.done = false;
    lock.unlock();
    a.worker.join();
    a.worker = std::thread([this] { ahead_->run(nullptr, file_); });
    lock.lock();
  }
  verified_ = true;
  end_ = a.end;
  ended_ = true;
  return false;
}

Error PayloadReader::past_end() const {
  return Error(ErrorCode::CorruptSnapshot,
               "op stream ends in the middle of an op (at op byte " + std::to_string(offset()) + ")");
}

void PayloadReader::raw(void* out, size_t size) {
  auto* p = static_cast<uint8_t*>(out);
  while (size > 0) {
    if (pos_ == chunk_.size() && !next_chunk()) throw past_end();
    size_t k = std::min(size, chunk_.size() - pos_);
    std::memcpy(p, chunk_.data() + pos_, k);
    pos_ += k;
    p += k;
    size -= k;
  }
}

std::string_view PayloadReader::view_across(size_t size) {
  if (pos_ == chunk_.size() && size > 0 && !next_chunk()) throw past_end();
  if (chunk_.size() - pos_ >= size) {
    std::string_view v(reinterpret_cast<const char*>(chunk_.data() + pos_), size);
    pos_ += size;
    return v;
  }
  // Spans chunks: copy chunk by chunk, so memory grows only with bytes that really exist (a
  // corrupt length must not allocate before the data runs out).
  scratch_.clear();
  while (size > 0) {
    if (pos_ == chunk_.size() && !next_chunk()) throw past_end();
    size_t k = std::min(size, chunk_.size() - pos_);
    scratch_.append(reinterpret_cast<const char*>(chunk_.data() + pos_), k);
    pos_ += k;
    size -= k;
  }
  return scratch_;
}

std::atomic<uint64_t>& op_bytes_progress() {
  static std::atomic<uint64_t> bytes{0};
  return bytes;
}

const char* op_name(uint8_t op) { return op_info(op).name; }

uint64_t PayloadReader::raw_size() const { return file_.footer().raw_size; }
uint64_t PayloadReader::stored_size() const { return file_.footer().compressed_size; }

void check_buffer_header(uint64_t flags, uint64_t width, uint64_t n, uint64_t at, uint64_t raw_size,
                         uint64_t stored_size) {
  if (flags > 3 || (width != 1 && width != 2 && width != 4 && width != 8) || n % width != 0 ||
      n > kMaxBufferBytes || ((flags & kBufferOutOfLine) && width != 1))
    throw Error(ErrorCode::CorruptSnapshot,
                "Buffer op at op byte " + std::to_string(at) + " has flags " + std::to_string(flags) +
                    ", element width " + std::to_string(width) + " and " + std::to_string(n) +
                    " bytes: flags must be 0 to 3, the width 1, 2, 4 or 8 (1 out of line) and divide the size");
  const bool out_of_line = flags & kBufferOutOfLine;
  const uint64_t bound = out_of_line ? (stored_size / kMinSegmentStored) * kSegmentBytes : raw_size;
  if (n > bound)
    throw Error(ErrorCode::CorruptSnapshot, "Buffer op at op byte " + std::to_string(at) + " claims " +
                                                std::to_string(n) + " bytes, more than the whole payload (" +
                                                std::to_string(out_of_line ? stored_size : bound) +
                                                (out_of_line ? " stored bytes can hold in segments" : " bytes") + ")");
}

OpSummary scan_ops(PayloadReader& r) {
  OpSummary s;
  uint64_t depth = 0;
  // Values an op at `at` needs; `count` values plus `extra` below them, without overflowing.
  auto need = [&](uint64_t count, uint64_t per, uint64_t extra, uint8_t op, uint64_t at) {
    bool ok = count <= (UINT64_MAX - extra) / per && depth >= count * per + extra;
    if (!ok) {
      std::string n = count <= (UINT64_MAX - extra) / per ? std::to_string(count * per + extra)
                                                           : std::to_string(count) + " x " + std::to_string(per);
      throw Error(ErrorCode::CorruptSnapshot, std::string("op ") + op_name(op) + " at op byte " +
                                                  std::to_string(at) + " needs " + n +
                                                  " values, the stack has " + std::to_string(depth));
    }
  };
  // Reads a memo id operand: it must name an id defined earlier in the stream.
  auto memo_id = [&](uint8_t op, uint64_t at) {
    uint64_t id = r.uvar();
    if (id >= s.memo_count)
      throw Error(ErrorCode::CorruptSnapshot, std::string(op_name(op)) + " of memo id " +
                                                  std::to_string(id) + " at op byte " +
                                                  std::to_string(at) + " before it was defined");
  };
  while (!r.at_end()) {
    uint64_t at = r.offset();
    uint8_t op = r.byte();
    const OpInfo& info = op_info(op);
    if (!info.name) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", op);
      throw Error(ErrorCode::CorruptSnapshot,
                  std::string("unknown op ") + hex + " at op byte " + std::to_string(at));
    }
    ++s.counts[op];
    uint64_t k = 0;
    switch (info.operand) {
      case Operand::None: break;
      case Operand::Svar: r.svar(); break;
      case Operand::Bytes: k = r.uvar(); r.view(k); s.string_bytes += k; break;
      case Operand::Fixed8: r.view(8); break;
      case Operand::Fixed16: r.view(16); break;
      case Operand::Count: k = r.uvar(); break;
      case Operand::MemoId: memo_id(op, at); break;
      case Operand::MemoCount: memo_id(op, at); k = r.uvar(); break;
      case Operand::Floats:
        k = r.uvar();
        if (k > (uint64_t(1) << 32))
          throw Error(ErrorCode::CorruptSnapshot, "Floats at op byte " + std::to_string(at) + " claims " +
                                                      std::to_string(k) + " values");
        r.view(k * 8);
        break;
      case Operand::Buffer: {
        uint64_t flags = r.uvar(), width = r.uvar(), n = r.uvar();
        check_buffer_header(flags, width, n, at, r.raw_size(), r.stored_size());
        if (flags & kBufferOutOfLine) {  // its bytes are in raw segments, read by the decoder
          r.uvar();
          s.string_bytes += n;
          break;
        }
        for (uint64_t left = n; left > 0;) {  // block by block, as the decoder reads them
          uint64_t b = std::min<uint64_t>(left, kPlaneBlockElements * width);
          r.view(size_t(b));
          left -= b;
        }
        s.string_bytes += n;
        break;
      }
      case Operand::Layout:
        r.uvar();  // mask
        r.uvar();  // finger
        for (int part = 0; part < 2; ++part) {
          uint64_t n = r.uvar();
          if (n > (uint64_t(1) << 40))
            throw Error(ErrorCode::CorruptSnapshot, "SetLayout at op byte " + std::to_string(at) + " claims " +
                                                        std::to_string(n) + " slots");
          for (uint64_t i = 0; i < n; ++i) r.uvar();
        }
        break;
    }
    switch (info.effect) {
      case Effect::Fixed: need(info.needs, 1, 0, op, at); depth = depth - info.needs + info.leaves; break;
      case Effect::Items: need(k, 1, 1, op, at); depth -= k; break;
      case Effect::Pairs: need(k, 2, 1, op, at); depth -= 2 * k; break;
      case Effect::Collect: need(k, 1, 0, op, at); depth = depth - k + 1; break;
      case Effect::Drop: need(k, 1, 0, op, at); depth -= k; break;
    }
    if (op == static_cast<uint8_t>(Op::Memo)) ++s.memo_count;
    if (depth > kMaxStack)
      throw Error(ErrorCode::CorruptSnapshot, std::string("op ") + op_name(op) + " at op byte " +
                                                  std::to_string(at) + " leaves more than " +
                                                  std::to_string(kMaxStack) + " values on the stack");
    s.max_stack = std::max(s.max_stack, depth);
  }
  if (depth != r.header().root_count)
    throw Error(ErrorCode::CorruptSnapshot, "op stream leaves " + std::to_string(depth) +
                                                " values, the header says " +
                                                std::to_string(r.header().root_count) + " roots");
  if (s.memo_count != r.end().memo_count)
    throw Error(ErrorCode::CorruptSnapshot, "memo count mismatch: ops define " +
                                                std::to_string(s.memo_count) + ", the end record says " +
                                                std::to_string(r.end().memo_count));
  s.op_bytes = r.end().op_bytes;
  return s;
}

}  // namespace stasis::format
