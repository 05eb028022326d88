#include "engine/crash_api.h"

#include "engine/errors.h"
#include "snapshot/crash_capture.h"

namespace stasis::engine {

PyObject* crash_frame_record(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject* frame;
    int offset, keep, depth, is_base;
    if (!PyArg_ParseTuple(args, "O!iiip:crash_frame_record", &PyFrame_Type, &frame, &offset, &keep, &depth,
                          &is_base))
      throw Error::python();
    return snapshot::crash_frame_record(reinterpret_cast<PyFrameObject*>(frame), offset, keep, depth, is_base);
  });
}

}  // namespace stasis::engine
