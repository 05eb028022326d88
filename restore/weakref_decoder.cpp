// restore/weakref_decoder.cpp — WeakRef (DeadWeakRef is in scalar_decoder.cpp).
// Counterpart: snapshot/weakref_encoder.cpp.
#include "core/error.h"
#include "restore/decoders.h"

namespace stasis::restore {

void decode_weakref(HeapDecoder& d, uint8_t) {
  Ref callback = d.pop();
  Ref referent = d.pop();
  PyObject* r = PyWeakref_NewRef(referent.get(), callback.get() == Py_None ? nullptr : callback.get());
  if (!r) d.refused("WeakRef");
  d.push(r);
}

}  // namespace stasis::restore
