// restore/replay.h — rebuilds a captured stack (snapshot/capture.h records) by replay: the base
// code runs again under a trace function, and at the first 'line' event of each frame the
// frame's locals are written, its structural stack values pushed, and execution jumps to the
// record's offset — whose statement makes the call that creates the next frame.
#pragma once

#include <Python.h>
#include <frameobject.h>

#include "core/ref.h"

namespace stasis::restore {

// What one thread's replay needs. All borrowed for the call.
struct ReplayRequest {
  PyObject* frames;       // list of frame records, bottom first; each item is set to None once
                          // its frame is rebuilt, so the records keep nothing alive afterwards
  PyObject* then;         // then(innermost frame) once that frame is rebuilt, or None
  PyObject* before;       // before(), once, when the first record's frame is entered, or None
  PyObject* caller_code;  // the code that calls the first record's frame (a thread's bootstrap), or None
  PyObject* on_error;     // on_error(status, message): a frame cannot be rebuilt. The driver ends
                          // the resume there (nothing of the program ran yet); should it return,
                          // the error is raised in the program as SystemError.
};

// Installs the replay trace on the calling thread: the frames of the records are rebuilt as the
// thread's code calls them (the caller then runs the thread's bootstrap).
void start_replay(const ReplayRequest& request);

// Runs `code` in `globals` under the replay trace and returns its result (empty Ref: a Python
// exception is set). Throws Internal when the code ended before every frame was rebuilt.
Ref replay_code(PyObject* code, PyObject* globals, const ReplayRequest& request);

// True when `frame` runs the code `record` describes: the same code object, or (for code that
// was re-imported, such as a library module's) a code object with the same name, file, first line
// and bytecode. Throws IncompatibleSnapshot when name, file and line match but the bytecode does
// not: the code changed since the snapshot was taken.
bool frame_matches(PyFrameObject* frame, PyObject* record);

// Writes the record's locals into `frame`, pushes its stack values and jumps to its offset. Only
// valid inside a 'line' trace event of `frame` on its own thread. Throws Error on a bad record.
void restore_frame(PyFrameObject* frame, PyObject* record);

}  // namespace stasis::restore
