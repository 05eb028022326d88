#include "format/payload.h"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <cstdio>

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
  ahead_ = std::make_unique<ReadAhead>();
  ahead_->max_buffered = file.options().max_buffered;
  cereal::PortableBinaryInputArchive* first = &ar;
  ahead_->worker = std::thread([this, first] { ahead_->run(first, file_); });
}

PayloadReader::~PayloadReader() {
  {
    std::lock_guard<std::mutex> lock(ahead_->mutex);
    ahead_->stop = true;
    ahead_->cv.notify_all();
  }
  ahead_->worker.join();
}

void PayloadReader::wait_for_verification(bool keep) {
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

bool PayloadReader::next_chunk() {
  if (ended_) return false;
  consumed_ += chunk_.size();
  pos_ = 0;
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

const char* op_name(uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::None: return "None";
    case Op::True: return "True";
    case Op::False: return "False";
    case Op::IntSmall: return "IntSmall";
    case Op::IntBig: return "IntBig";
    case Op::Float: return "Float";
    case Op::Str: return "Str";
    case Op::Bytes: return "Bytes";
    case Op::Memo: return "Memo";
    case Op::Ref: return "Ref";
    case Op::EmptyList: return "EmptyList";
    case Op::Appends: return "Appends";
    case Op::EmptyDict: return "EmptyDict";
    case Op::SetItems: return "SetItems";
    case Op::Tuple: return "Tuple";
    case Op::Pop: return "Pop";
    case Op::Ellipsis: return "Ellipsis";
    case Op::NotImplemented: return "NotImplemented";
    case Op::Complex: return "Complex";
    case Op::ByteArray: return "ByteArray";
    case Op::EmptySet: return "EmptySet";
    case Op::AddItems: return "AddItems";
    case Op::FrozenSet: return "FrozenSet";
    case Op::SetLayout: return "SetLayout";
    case Op::Floats: return "Floats";
    case Op::Global: return "Global";
    case Op::Module: return "Module";
    case Op::Reduce: return "Reduce";
    case Op::NewObj: return "NewObj";
    case Op::Build: return "Build";
    case Op::ListItems: return "ListItems";
    case Op::DictItems: return "DictItems";
    case Op::Cell: return "Cell";
    case Op::CellSet: return "CellSet";
    case Op::Code: return "Code";
    case Op::Function: return "Function";
    case Op::FunctionState: return "FunctionState";
    case Op::Class: return "Class";
    case Op::ClassState: return "ClassState";
    case Op::Generator: return "Generator";
    case Op::GeneratorFrame: return "GeneratorFrame";
    case Op::WeakRef: return "WeakRef";
    case Op::DeadWeakRef: return "DeadWeakRef";
    case Op::Registered: return "Registered";
    case Op::ExceptionState: return "ExceptionState";
    case Op::ShapeValues: return "ShapeValues";
    case Op::ShapeDict: return "ShapeDict";
  }
  return nullptr;
}

OpSummary scan_ops(PayloadReader& r) {
  OpSummary s;
  uint64_t depth = 0;
  auto need = [&](uint64_t n, uint8_t op, uint64_t at) {
    if (depth < n)
      throw Error(ErrorCode::CorruptSnapshot, std::string("op ") + op_name(op) + " at op byte " +
                                                  std::to_string(at) + " needs " +
                                                  std::to_string(n) + " values, the stack has " +
                                                  std::to_string(depth));
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
    ++s.counts[op];
    switch (static_cast<Op>(op)) {
      case Op::None: case Op::True: case Op::False: case Op::EmptyList: case Op::EmptyDict:
        ++depth;
        break;
      case Op::IntSmall: r.svar(); ++depth; break;
      case Op::Float: r.view(8); ++depth; break;
      case Op::IntBig: case Op::Str: case Op::Bytes: {
        uint64_t n = r.uvar();
        r.view(n);
        s.string_bytes += n;
        ++depth;
        break;
      }
      case Op::Memo: need(1, op, at); ++s.memo_count; break;
      case Op::Ref: memo_id(op, at); ++depth; break;
      case Op::Appends: case Op::AddItems: case Op::ListItems: {
        uint64_t k = r.uvar();
        need(k + 1, op, at);
        depth -= k;
        break;
      }
      case Op::SetItems: case Op::DictItems: {
        uint64_t k = r.uvar();
        if (k > (uint64_t(1) << 62)) need(UINT64_MAX, op, at);
        need(2 * k + 1, op, at);
        depth -= 2 * k;
        break;
      }
      case Op::Tuple: case Op::FrozenSet: { uint64_t n = r.uvar(); need(n, op, at); depth = depth - n + 1; break; }
      case Op::Pop: { uint64_t n = r.uvar(); need(n, op, at); depth -= n; break; }
      // Ops with a fixed stack effect: values needed, values left in their place.
      case Op::Ellipsis: case Op::NotImplemented: case Op::EmptySet: case Op::Cell:
      case Op::DeadWeakRef:
        ++depth;
        break;
      case Op::Complex: r.view(16); ++depth; break;
      case Op::ByteArray: {
        uint64_t n = r.uvar();
        r.view(n);
        s.string_bytes += n;
        ++depth;
        break;
      }
      case Op::Floats: {
        uint64_t n = r.uvar();
        if (n > (uint64_t(1) << 32)) need(UINT64_MAX, op, at);
        need(1, op, at);
        r.view(n * 8);
        break;
      }
      case Op::ShapeDict: {  // a new dict from k values
        memo_id(op, at);
        uint64_t k = r.uvar();
        need(k, op, at);
        depth = depth - k + 1;
        break;
      }
      case Op::ShapeValues: {  // k values into the dict below them
        memo_id(op, at);
        uint64_t k = r.uvar();
        need(k + 1, op, at);
        depth -= k;
        break;
      }
      case Op::SetLayout: {
        need(1, op, at);
        r.uvar();  // mask
        r.uvar();  // finger
        for (int part = 0; part < 2; ++part) {
          uint64_t n = r.uvar();
          if (n > (uint64_t(1) << 40)) throw Error(ErrorCode::CorruptSnapshot, "SetLayout count too large");
          for (uint64_t i = 0; i < n; ++i) r.uvar();
        }
        break;
      }
      case Op::Module: case Op::Code: case Op::Generator: need(1, op, at); break;
      case Op::Global: case Op::Reduce: case Op::NewObj: case Op::Build: case Op::CellSet:
      case Op::ClassState: case Op::WeakRef: case Op::Registered:
        need(2, op, at);
        depth -= 1;
        break;
      case Op::Class: need(4, op, at); depth -= 3; break;
      case Op::ExceptionState: need(4, op, at); depth -= 3; break;
      case Op::Function: need(5, op, at); depth -= 4; break;
      case Op::GeneratorFrame: need(6, op, at); depth -= 5; break;
      case Op::FunctionState: need(7, op, at); depth -= 6; break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", op);
        throw Error(ErrorCode::CorruptSnapshot,
                    std::string("unknown op ") + hex + " at op byte " + std::to_string(at));
      }
    }
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
