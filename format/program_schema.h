// format/program_schema.h — the program payload's own records (FORMAT.md "Program payloads"),
// next to the heap schema (schema.h). A suspended program is one object graph whose root is a
// dict; its records are dicts whose keys are the field names below, so both sides read fields by
// name and loading them calls no class. Capture (snapshot/capture.cpp) writes frame records,
// replay (restore/replay.cpp) reads them; python/stasis/program/layout.py writes the root, thread
// and metadata records and checks its typed view against these lists (exported by _engine).
// Any change to a list bumps kProgramLayout; tests/format/test_program_layout.py checks that
// FORMAT.md names exactly these fields.
#pragma once

namespace stasis::format::program {

// Version of the program payload's layout (the root dict's "layout" field). A reader accepts
// exactly its own layout: IncompatibleSnapshotError otherwise.
inline constexpr int kProgramLayout = 7;

// A frame record, one per frame of a thread's stack, bottom (base) first:
//   code    the code object the frame runs
//   row     the resume-table row id a caller is suspended in (None for the innermost frame)
//   offset  byte offset replay jumps to
//   locals  {name: value} of bound fast locals (cells as cell objects; free variables omitted)
//   stack   tuple of the value-stack entries replay pushes before jumping (structural values)
#define STASIS_FRAME_FIELDS(X) X(code) X(row) X(offset) X(locals) X(stack)

// A thread record: its old ident and name, whether it is the main thread, its frame records, and
// (other threads) its threading.Thread object.
#define STASIS_THREAD_FIELDS(X) X(ident) X(name) X(main) X(frames) X(thread)

// The root record of a program payload.
#define STASIS_PROGRAM_FIELDS(X)                                                                  \
  X(layout) X(target) X(argv) X(path) X(cwd) X(roots) X(rewrite) X(no_rewrite) X(handlers)     \
  X(modules)                                                                                    \
  X(base_code) X(threads) X(checkpoint) X(random) X(library) X(recursion_limit) X(signals)      \
  X(atexit) X(generation) X(suspension) X(sources) X(patches) X(crash) X(pending_writes)

// The payload header's `meta` JSON object: what resume sets up before any object is built, and
// which program the snapshot is of (`stasis run --resume-if-present` compares it unloaded).
#define STASIS_META_FIELDS(X) \
  X(modules) X(sys_path) X(roots) X(rewrite) X(no_rewrite) X(threads) X(handler_modules) X(program)

namespace field {
#define STASIS_FIELD_NAME(name) inline constexpr const char* name = #name;
STASIS_FRAME_FIELDS(STASIS_FIELD_NAME)
#undef STASIS_FIELD_NAME
}  // namespace field

}  // namespace stasis::format::program
