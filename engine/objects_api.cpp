// engine/objects_api.cpp — stasis.dump/dumps/load/loads and inspect: object graphs in the container.
#include "engine/objects_api.h"

#include <sys/mman.h>

#include <algorithm>
#include <string>
#include <thread>

#include "core/cpython_internals.h"
#include "engine/describe_api.h"
#include "engine/errors.h"
#include "engine/progress.h"
#include "format/payload.h"
#include "format/snapshot_file.h"
#include "restore/heap_decoder.h"
#include "snapshot/heap_encoder.h"

namespace stasis::engine {
namespace {

std::optional<std::string> key_from(PyObject* key) {
  if (key == nullptr || key == Py_None) return std::nullopt;
  char* data;
  Py_ssize_t size;
  if (PyBytes_AsStringAndSize(key, &data, &size) < 0) throw Error::python();
  return std::string(data, size_t(size));
}

// The handlers of stasis.register: {type: (key, save)} for dumping, {key: load} for loading.
PyObject* g_savers = nullptr;
PyObject* g_loaders = nullptr;
PyObject* g_finder = nullptr;  // set_handler_finder's (restore::LoadHandlers::finder)

// While a snapshot is loaded, pymalloc's arenas (1 MiB blocks that hold all small objects) are
// carved from 2 MiB-aligned regions marked MADV_HUGEPAGE: the kernel then maps a new arena with
// one fault per 2 MiB instead of one per 4 KiB page, which was a third of the time of loading
// millions of small objects. Arenas are freed with munmap, as CPython's own allocator does, so
// arenas from either allocator may be freed by the other. Restored when loading ends.
class HugeArenas {
 public:
  HugeArenas() {
    PyObject_GetArenaAllocator(&saved_);
    PyObjectArenaAllocator mine{this, &HugeArenas::alloc, &HugeArenas::free};
    PyObject_SetArenaAllocator(&mine);
  }
  ~HugeArenas() {
    PyObject_SetArenaAllocator(&saved_);
    if (next_ < end_) munmap(next_, size_t(end_ - next_));  // the unused tail of the region
  }
  HugeArenas(const HugeArenas&) = delete;
  HugeArenas& operator=(const HugeArenas&) = delete;

 private:
  static constexpr size_t kHuge = size_t(2) << 20;
  static constexpr size_t kRegion = 16 * kHuge;

  static void* alloc(void* ctx, size_t size) {
    auto* self = static_cast<HugeArenas*>(ctx);
    if (size > kHuge) return self->saved_.alloc(self->saved_.ctx, size);
    if (size_t(self->end_ - self->next_) < size && !self->map_region())
      return self->saved_.alloc(self->saved_.ctx, size);
    void* p = self->next_;
    self->next_ += size;
    return p;
  }
  static void free(void*, void* ptr, size_t size) { munmap(ptr, size); }

  bool map_region() {
    if (next_ < end_) munmap(next_, size_t(end_ - next_));
    next_ = end_ = nullptr;
    void* raw = mmap(nullptr, kRegion + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return false;
    auto* base = static_cast<char*>(raw);
    char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(kHuge - 1));
    if (aligned > base) munmap(base, size_t(aligned - base));
    char* stop = aligned + kRegion;
    if (base + kRegion + kHuge > stop) munmap(stop, size_t(base + kRegion + kHuge - stop));
    madvise(aligned, kRegion, MADV_HUGEPAGE);  // a hint: without THP it changes nothing
    next_ = aligned;
    end_ = stop;
    return true;
  }

  PyObjectArenaAllocator saved_{};
  char* next_ = nullptr;
  char* end_ = nullptr;
};

void write_objects(format::SnapshotWriter& file, PyObject* obj, const std::string& kind,
                   uint64_t hash_seed = 0, std::vector<std::string> modules = {},
                   std::string meta = "") {
  format::PayloadWriter payload(file, format::PayloadHeader{kind, 1, hash_seed, std::move(meta)});
  snapshot::HeapEncoder encoder(payload, snapshot::SaveHandlers{g_savers});
  encoder.set_by_value_modules(std::move(modules));
  encoder.encode(obj);
  payload.finish();
}

// Payload kinds: "objects" (stasis.dump) and "program" (a suspended program, python/stasis/program/).
std::string kind_of(const char* kind) {
  std::string k = kind ? kind : "objects";
  if (k != "objects" && k != "program")
    throw Error(ErrorCode::Internal, "unknown payload kind '" + k + "'");
  return k;
}

Ref read_objects(format::SnapshotReader& file, const std::string& kind) {
  if (file.preamble().payload_kind != kind)
    throw Error(ErrorCode::IncompatibleSnapshot,
                "this snapshot holds a '" + file.preamble().payload_kind + "' payload, not '" +
                    kind + "'; " +
                    (kind == "objects" ? "resume it with `stasis resume`"
                                       : "load it with stasis.load()"));
  // One pass: the decoder checks every op as it runs it (stack depths, memo ids, types, lengths;
  // the loads fuzzer holds it to that), and the zstd frame checksum and the end record are checked
  // when the stream ends (before, if an op with effects waits for them); on any failure everything
  // built so far is dropped. A separate validation pass (scan_ops, kept for `stasis inspect`)
  // would decompress the payload once more.
  format::PayloadReader payload(file);
  // Decoding allocates only reachable objects: a cyclic GC pass could free nothing, and with
  // millions of new containers it would run hundreds of times. Paused for the decode.
  struct GcPause {
    int was = PyGC_Disable();
    ~GcPause() {
      if (was) PyGC_Enable();
    }
  } pause;
  HugeArenas arenas;
  // A suspended program may run its own code while it is rebuilt (resuming runs it anyway); an
  // object graph is built without running any code that came from the snapshot (FORMAT.md).
  restore::Trust trust = kind == "program" ? restore::Trust::Program : restore::Trust::Objects;
  return restore::HeapDecoder(payload, restore::LoadHandlers{g_loaders, g_finder}, trust).decode();
}

format::WriteOptions write_options(PyObject* key, int level, const std::string& kind) {
  format::WriteOptions o;
  o.payload_kind = kind;
  o.key = key_from(key);
  o.level = level;
  // zstd compresses on worker threads while the walker runs; with one worker, compression of
  // poorly compressible data (1e6 distinct strings) is the bottleneck. Output bytes do not depend
  // on the number of workers.
  o.workers = int(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  return o;
}

std::string path_of(PyObject* path) {
  Ref fs = Ref::steal(PyOS_FSPath(path));
  if (!fs) throw Error::python();
  Ref bytes;
  if (PyUnicode_Check(fs.get())) {
    bytes = Ref::steal(PyUnicode_EncodeFSDefault(fs.get()));
    if (!bytes) throw Error::python();
  } else {
    bytes = fs;
  }
  std::string out(PyBytes_AsString(bytes.get()), size_t(PyBytes_Size(bytes.get())));
  if (out.find('\0') != std::string::npos) {  // as open() does: never cut the path at the NUL
    PyErr_SetString(PyExc_ValueError, "embedded null byte");
    throw Error::python();
  }
  return out;
}

// A list of str (or None) as names: the program's own modules.
std::vector<std::string> strings_of(PyObject* list) {
  std::vector<std::string> out;
  if (list == Py_None) return out;
  Ref seq = Ref::steal(PySequence_Fast(list, "modules must be a list of str"));
  if (!seq) throw Error::python();
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    const char* s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq.get(), i));
    if (!s) throw Error::python();
    out.emplace_back(s);
  }
  return out;
}

void set_item(PyObject* dict, const char* key, Ref value) {
  if (!value || PyDict_SetItemString(dict, key, value.get()) < 0) throw Error::python();
}
Ref str_of(const std::string& s) {
  return Ref::steal(PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace"));
}
Ref int_of(uint64_t v) { return Ref::steal(PyLong_FromUnsignedLongLong(v)); }

}  // namespace

PyObject* register_handler(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *type, *key, *save, *load;
    if (!PyArg_ParseTuple(args, "O!UOO:register", &PyType_Type, &type, &key, &save, &load))
      throw Error::python();
    if (!PyCallable_Check(save) || !PyCallable_Check(load)) {
      PyErr_SetString(PyExc_TypeError, "register: save and load must be callable");
      throw Error::python();
    }
    if (!g_savers) {
      g_savers = PyDict_New();
      g_loaders = PyDict_New();
      if (!g_savers || !g_loaders) throw Error::python();
    }
    Ref entry = Ref::steal(PyTuple_Pack(2, key, save));
    if (!entry || PyDict_SetItem(g_savers, type, entry.get()) < 0 ||
        PyDict_SetItem(g_loaders, key, load) < 0)
      throw Error::python();
    return Ref::borrow(Py_None);
  });
}

PyObject* set_handler_finder(PyObject*, PyObject* finder) {
  return guarded([&]() -> Ref {
    if (!PyCallable_Check(finder)) {
      PyErr_SetString(PyExc_TypeError, "set_handler_finder: the finder must be callable");
      throw Error::python();
    }
    Py_INCREF(finder);
    Py_XSETREF(g_finder, finder);
    return Ref::borrow(Py_None);
  });
}

PyObject* dumps(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* names[] = {"obj", "key", "level", "kind", nullptr};
    PyObject *obj, *key = Py_None;
    int level = 3;
    const char* kind = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Ois:dumps", const_cast<char**>(names), &obj,
                                     &key, &level, &kind))
      throw Error::python();
    std::string out;
    auto file = format::SnapshotWriter::to_string(out, write_options(key, level, kind_of(kind)));
    write_objects(file, obj, kind_of(kind));
    file.commit();
    return Ref::steal(PyBytes_FromStringAndSize(out.data(), Py_ssize_t(out.size())));
  });
}

PyObject* dump(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* names[] = {"obj", "path", "key", "level", "kind", "hash_seed", "by_value",
                                  "meta", "progress", "progress_delay", "before_commit", nullptr};
    PyObject *obj, *path, *key = Py_None, *by_value = Py_None, *before_commit = Py_None;
    int level = 3;
    const char* kind = nullptr;
    const char* meta = "";
    unsigned long long hash_seed = 0;
    const char* progress = nullptr;
    double progress_delay = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$OisKOszdO:dump", const_cast<char**>(names), &obj,
                                     &path, &key, &level, &kind, &hash_seed, &by_value, &meta,
                                     &progress, &progress_delay, &before_commit))
      throw Error::python();
    auto file = format::SnapshotWriter::to_file(path_of(path), write_options(key, level, kind_of(kind)));
    {
      // `progress`: a label ("writing job.snap") for a progress line on stderr after
      // progress_delay seconds (the caller asks only when stderr is a terminal).
      ProgressMeter meter(progress ? progress : "", 0, progress_delay);
      write_objects(file, obj, kind_of(kind), hash_seed, strings_of(by_value), meta);
      // `before_commit`: called once the file is written, before it takes the path's name; if it
      // raises, the file is removed and the path keeps what it held (a capture gone stale).
      if (before_commit != Py_None && !Ref::steal(PyObject_CallNoArgs(before_commit))) throw Error::python();
      file.commit();
      meter.done();
    }
    return Ref::borrow(Py_None);
  });
}

PyObject* loads(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* names[] = {"data", "key", "kind", "progress", "progress_delay", nullptr};
    Py_buffer data;
    PyObject* key = Py_None;
    const char* kind = nullptr;
    const char* progress = nullptr;
    double progress_delay = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|$Oszd:loads", const_cast<char**>(names), &data,
                                     &key, &kind, &progress, &progress_delay))
      throw Error::python();
    struct Release {
      Py_buffer* b;
      ~Release() { PyBuffer_Release(b); }
    } release{&data};
    format::ReadOptions options;
    options.key = key_from(key);
    // One decompression, which is also the check of every compressed byte (zstd blocks, frame
    // checksum, raw size): the decoder builds plain values meanwhile, and any op with effects
    // (imports, calls, handlers) waits until the payload is verified (format/payload.h); if the
    // check fails, what was built is dropped. The op grammar is checked by the decoder.
    options.verify_payload = false;
    auto file = format::SnapshotReader::open_bytes(
        std::string_view(static_cast<const char*>(data.buf), size_t(data.len)), options);
    // `progress`: a label ("reading job.snap") for a progress line on stderr (as dump's).
    ProgressMeter meter(progress ? progress : "", file.footer().raw_size, progress_delay);
    Ref loaded = read_objects(file, kind_of(kind));
    meter.done();
    return loaded;
  });
}

PyObject* load(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* names[] = {"path", "key", "kind", nullptr};
    PyObject *path, *key = Py_None;
    const char* kind = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Os:load", const_cast<char**>(names), &path,
                                     &key, &kind))
      throw Error::python();
    format::ReadOptions options;
    options.key = key_from(key);
    // One decompression, which is also the check of every compressed byte (zstd blocks, frame
    // checksum, raw size): the decoder builds plain values meanwhile, and any op with effects
    // (imports, calls, handlers) waits until the payload is verified (format/payload.h); if the
    // check fails, what was built is dropped. The op grammar is checked by the decoder.
    options.verify_payload = false;
    auto file = format::SnapshotReader::open_file(path_of(path), options);
    return read_objects(file, kind_of(kind));
  });
}

PyObject* payload_header(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* names[] = {"path", "key", "verify", nullptr};
    PyObject *path, *key = Py_None;
    int verify = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Op:payload_header", const_cast<char**>(names),
                                     &path, &key, &verify))
      throw Error::python();
    format::ReadOptions options;
    options.key = key_from(key);
    options.verify_payload = verify != 0;  // without: structure, CRCs, signature; not the payload
    // `path` may be the snapshot's bytes, read once by the caller (stasis resume).
    Py_buffer data{};
    bool bytes = PyBytes_Check(path);
    if (bytes && PyObject_GetBuffer(path, &data, PyBUF_SIMPLE) < 0) throw Error::python();
    struct Release {
      Py_buffer* b;
      bool on;
      ~Release() {
        if (on) PyBuffer_Release(b);
      }
    } release{&data, bytes};
    auto file = bytes ? format::SnapshotReader::open_bytes(
                            std::string_view(static_cast<const char*>(data.buf), size_t(data.len)), options)
                      : format::SnapshotReader::open_file(path_of(path), options);
    format::PayloadReader reader(file);
    const auto& h = reader.header();
    Ref info = Ref::steal(PyDict_New());
    if (!info) throw Error::python();
    set_item(info.get(), "kind", str_of(h.kind));
    set_item(info.get(), "root_count", int_of(h.root_count));
    set_item(info.get(), "hash_seed", int_of(h.hash_seed));
    set_item(info.get(), "meta", str_of(h.meta));
    return info;
  });
}

PyObject* inspect(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* names[] = {"path", "key", "describe", nullptr};
    PyObject *path, *key = Py_None;
    int describe = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Op:inspect", const_cast<char**>(names),
                                     &path, &key, &describe))
      throw Error::python();
    format::ReadOptions options;
    options.key = key_from(key);
    // Describing reads every op byte to the end, which is the check of the whole payload (zstd
    // blocks, frame checksum, raw size, end record): no separate decompression first.
    options.verify_payload = !describe;
    options.check_raw_segments = describe != 0;  // the describer reads no raw segment itself
    auto file = format::SnapshotReader::open_file(path_of(path), options);
    const auto& p = file.preamble();
    const auto& f = file.footer();
    Ref info = Ref::steal(PyDict_New());
    if (!info) throw Error::python();
    set_item(info.get(), "format_version", int_of(p.format_version));
    set_item(info.get(), "engine_version", str_of(p.engine_version));
    set_item(info.get(), "python_version", str_of(p.python_version));
    set_item(info.get(), "implementation", str_of(p.implementation));
    set_item(info.get(), "created_unix", Ref::steal(PyLong_FromLongLong(p.created_unix)));
    set_item(info.get(), "host", str_of(p.host));
    set_item(info.get(), "flags", int_of(p.flags));
    set_item(info.get(), "signature",
             str_of(!p.is_signed() ? "unsigned" : options.key ? "verified" : "signed, not verified (no key given)"));
    set_item(info.get(), "payload_kind", str_of(p.payload_kind));
    set_item(info.get(), "file_size", int_of(file.file_size()));
    set_item(info.get(), "compressed_size", int_of(f.compressed_size));
    set_item(info.get(), "raw_size", int_of(f.raw_size));
    set_item(info.get(), "record_count", int_of(f.record_count));
    format::PayloadReader reader(file);
    // With `describe`, the same one pass also describes every object (format/describe.h): the
    // "view" that `stasis inspect` reads a program's threads, frames and heap from.
    // Only a program is described: an object graph's summary is all `stasis inspect` shows of it.
    format::OpSummary s;
    try {
      if (describe && p.payload_kind == "program") {
        format::Description d = format::describe_ops(reader, f.raw_size);
        s = d.summary;
        set_item(info.get(), "view", make_view(std::move(d)));
      } else {
        s = format::scan_ops(reader);
      }
    } catch (const Error&) {
      reader.rethrow_payload_error();  // a damaged payload explains garbage ops better
      throw;
    }
    Ref ops = Ref::steal(PyDict_New());
    if (!ops) throw Error::python();
    for (int op = 0; op < 256; ++op)
      if (s.counts[op]) set_item(ops.get(), format::op_name(uint8_t(op)), int_of(s.counts[op]));
    set_item(info.get(), "ops", ops);
    set_item(info.get(), "hash_seed", int_of(reader.header().hash_seed));
    set_item(info.get(), "op_bytes", int_of(s.op_bytes));
    set_item(info.get(), "objects", int_of(reader.end().object_count));
    set_item(info.get(), "memo_count", int_of(s.memo_count));
    set_item(info.get(), "max_stack", int_of(s.max_stack));
    set_item(info.get(), "string_bytes", int_of(s.string_bytes));
    set_item(info.get(), "chunks", int_of(reader.end().chunk_count));
    return info;
  });
}

PyObject* text_reader_state(PyObject*, PyObject* f) {
  return guarded([&]() -> Ref {
    internals::TextIOView view;
    if (!internals::text_io_view(f, &view)) {
      PyErr_Format(PyExc_TypeError, "a %s is not an io.TextIOWrapper of the layout Stasis knows (CPython 3.11)",
                   Py_TYPE(f)->tp_name);
      throw Error::python();
    }
    Ref pending;
    if (view.decoded_chars) {
      pending = Ref::steal(PyUnicode_Substring(view.decoded_chars, view.decoded_chars_used,
                                               PyUnicode_GET_LENGTH(view.decoded_chars)));
    } else {
      pending = Ref::steal(PyUnicode_FromStringAndSize("", 0));
    }
    if (!pending) throw Error::python();
    // The `newline` argument the file was opened with: None (universal, translated), "" (universal,
    // untranslated) or the line ending it splits at.
    Ref newline = Ref::borrow(Py_None);
    if (!view.readuniversal || !view.readtranslate) {
      newline = view.readuniversal || !view.readnl ? Ref::steal(PyUnicode_FromString("")) : Ref::borrow(view.readnl);
      if (!view.readuniversal && !view.readnl) newline = Ref::steal(PyUnicode_FromString("\n"));
      if (!newline) throw Error::python();
    }
    return Ref::steal(Py_BuildValue("(OOOO)", view.decoder ? view.decoder : Py_None, pending.get(),
                                    view.telling ? Py_True : Py_False, newline.get()));
  });
}

}  // namespace stasis::engine
