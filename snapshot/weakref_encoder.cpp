// snapshot/weakref_encoder.cpp — weakref.ref: the referent (written like any object; it dies after
// loading unless something else in the graph keeps it) and the callback; a dead reference is
// restored dead. Counterpart: restore/weakref_decoder.cpp.
#include "snapshot/encoders.h"

namespace stasis::snapshot {

void encode_weakref(HeapEncoder& e, PyObject* obj) {
  PyObject* referent = PyWeakref_GET_OBJECT(obj);  // borrowed; Py_None when dead
  if (referent == Py_None) {
    e.out().op(format::Op::DeadWeakRef);
    e.memoize_leaf(obj);
    return;
  }
  PyObject* callback = reinterpret_cast<PyWeakReference*>(obj)->wr_callback;
  // Loading an object graph calls nothing when a referent dies (restore/weakref_decoder.cpp):
  // refused here, so that every snapshot written can be loaded. A program's snapshot keeps it.
  if (callback && !e.writes_program())
    e.unsupported(obj, "a weak reference with a callback (loading an object graph runs no callback)");
  Plan plan(obj);
  plan.save(referent, "()").save(callback ? callback : Py_None, ".__callback__").atomic(format::Op::WeakRef, 2);
  e.run(std::move(plan));
}

}  // namespace stasis::snapshot
