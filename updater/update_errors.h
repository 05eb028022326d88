// updater/update_errors.h — the error codes of the updater. They continue core/error.h's ErrorCode
// (same numbering space, same "never renumber" rule) and match stasis/updater/errors.py, which
// registers the Python classes for them; they belong in core/error.h once its owner appends them.
#pragma once

#include "core/error.h"

namespace stasis::updater {

constexpr ErrorCode kUpdateError = static_cast<ErrorCode>(100);     // UpdateError
constexpr ErrorCode kNotQuiescent = static_cast<ErrorCode>(101);    // NotQuiescentError
constexpr ErrorCode kUpdateRefused = static_cast<ErrorCode>(102);   // UpdateRefusedError
constexpr ErrorCode kControlChannel = static_cast<ErrorCode>(103);  // ControlChannelError

}  // namespace stasis::updater
