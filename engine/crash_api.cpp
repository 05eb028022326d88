#include "engine/crash_api.h"

#include "engine/errors.h"
#include "snapshot/crash_capture.h"

namespace stasis::engine {

PyObject* crash_frame_record(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject* frame;
    int offset, keep, depth;
    if (!PyArg_ParseTuple(args, "O!iii:crash_frame_record", &PyFrame_Type, &frame, &offset, &keep, &depth))
      throw Error::python();
    return snapshot::crash_frame_record(reinterpret_cast<PyFrameObject*>(frame), offset, keep, depth);
  });
}

}  // namespace stasis::engine
