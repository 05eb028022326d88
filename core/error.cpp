#include "core/error.h"

namespace stasis {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::PythonError: return "PythonError";
    case ErrorCode::Internal: return "Internal";
    case ErrorCode::NotASnapshot: return "NotASnapshot";
    case ErrorCode::TruncatedSnapshot: return "TruncatedSnapshot";
    case ErrorCode::CorruptSnapshot: return "CorruptSnapshot";
    case ErrorCode::IncompatibleSnapshot: return "IncompatibleSnapshot";
    case ErrorCode::BadSignature: return "BadSignature";
    case ErrorCode::UnsupportedObject: return "UnsupportedObject";
    case ErrorCode::NotAvailable: return "NotAvailable";
    case ErrorCode::Io: return "Io";
    case ErrorCode::NotSuspendable: return "NotSuspendable";
    case ErrorCode::UpdateFailed: return "UpdateFailed";
    case ErrorCode::NotQuiescent: return "NotQuiescent";
    case ErrorCode::UpdateRefused: return "UpdateRefused";
    case ErrorCode::ControlChannel: return "ControlChannel";
    case ErrorCode::SuspensionMissed: return "SuspensionMissed";
    case ErrorCode::Takeover: return "Takeover";
  }
  return "Unknown";
}

const char* Error::what() const noexcept {
  if (formatted_.empty()) {
    formatted_ = message_;
    if (!context_.empty()) {
      formatted_ += " (while ";
      for (size_t i = 0; i < context_.size(); ++i) {
        if (i) formatted_ += "; while ";
        formatted_ += context_[i];
      }
      formatted_ += ")";
    }
  }
  return formatted_.c_str();
}

}  // namespace stasis
