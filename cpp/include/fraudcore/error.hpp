// Errors raised by the fraudcore core.
//
// Contract: every check on caller input uses FRAUDCORE_CHECK, which throws
// std::invalid_argument (mapped to Python's ValueError). A model file that is
// truncated, corrupted or from a newer format throws FormatError (mapped to
// fraudcore.ModelFormatError, a ValueError). Anything else escaping the core
// is a bug.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace fraudcore {

/// A serialized model could not be read: wrong magic bytes, truncated,
/// checksum mismatch, unknown format version or an inconsistent structure.
class FormatError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace fraudcore

/// Throw std::invalid_argument with a streamed message when `cond` is false.
/// Usage: FRAUDCORE_CHECK(n > 0, "n_estimators must be positive, got " << n);
#define FRAUDCORE_CHECK(cond, msg)                   \
  do {                                               \
    if (!(cond)) {                                   \
      std::ostringstream fraudcore_check_stream_;    \
      fraudcore_check_stream_ << msg;                \
      throw std::invalid_argument(                   \
          fraudcore_check_stream_.str());            \
    }                                                \
  } while (0)
