// updater/update_errors.h — the updater's names for its error codes, which live in core/error.h
// with every other code (python/stasis/errors.py has the matching classes).
#pragma once

#include "core/error.h"

namespace stasis::updater {

constexpr ErrorCode kUpdateError = ErrorCode::UpdateFailed;       // UpdateError
constexpr ErrorCode kNotQuiescent = ErrorCode::NotQuiescent;      // NotQuiescentError
constexpr ErrorCode kUpdateRefused = ErrorCode::UpdateRefused;    // UpdateRefusedError
constexpr ErrorCode kControlChannel = ErrorCode::ControlChannel;  // ControlChannelError

}  // namespace stasis::updater
