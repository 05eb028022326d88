// restore/weakref_decoder.cpp — WeakRef (DeadWeakRef is in scalar_decoder.cpp).
// Counterpart: snapshot/weakref_encoder.cpp.
#include "core/error.h"
#include "restore/decoders.h"

namespace stasis::restore {

void decode_weakref(HeapDecoder& d, uint8_t) {
  Ref callback = d.pop();
  Ref referent = d.pop();
  // A callback runs when its referent dies, which may be during the load (the memo releases
  // weak referents last): an object graph holds no weak reference with a callback.
  if (callback.get() != Py_None && !d.program())
    d.corrupt("WeakRef with a callback (loading an object graph calls nothing when a referent dies)");
  PyObject* r = PyWeakref_NewRef(referent.get(), callback.get() == Py_None ? nullptr : callback.get());
  if (!r) d.refused("WeakRef");
  d.push(r);
}

}  // namespace stasis::restore
