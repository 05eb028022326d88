// restore/replay.h — rebuilds a captured stack (snapshot/capture.h records) by replay: the base
// code runs again under a trace function, and at the first 'line' event of each frame the
// frame's locals are written, its structural stack values pushed, and execution jumps to the
// record's offset — whose statement makes the call that creates the next frame.
#pragma once

#include <Python.h>
#include <frameobject.h>

namespace stasis::restore {

// True when `frame` is the frame `record` describes (same code object).
bool frame_matches(PyFrameObject* frame, PyObject* record);

// Writes the record's locals into `frame`, pushes its stack values and jumps to its offset. Only
// valid inside a 'line' trace event of `frame` on its own thread. Throws Error on a bad record.
void restore_frame(PyFrameObject* frame, PyObject* record);

}  // namespace stasis::restore
