// restore/replay.h — rebuilds a captured stack (snapshot/capture.h records) by replay: the base
// code runs again under a trace function, and at the first 'line' event of each frame the
// frame's locals are written, its structural stack values pushed, and execution jumps to the
// record's offset — whose statement makes the call that creates the next frame.
#pragma once

#include <Python.h>
#include <frameobject.h>

namespace stasis::restore {

// True when `frame` runs the code `record` describes: the same code object, or (for code that
// was re-imported, such as a library module's) a code object with the same name, file, first line
// and bytecode. Throws IncompatibleSnapshot when name, file and line match but the bytecode does
// not: the code changed since the snapshot was taken.
bool frame_matches(PyFrameObject* frame, PyObject* record);

// Writes the record's locals into `frame`, pushes its stack values and jumps to its offset. Only
// valid inside a 'line' trace event of `frame` on its own thread. Throws Error on a bad record.
void restore_frame(PyFrameObject* frame, PyObject* record);

}  // namespace stasis::restore
