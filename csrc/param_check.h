/// @file param_check.h
/// @brief Parameter checks shared by the constructors of the native trackers.
///
/// Each check throws std::invalid_argument with the message
/// "<name>: <what must hold> (got <value>)", so that the error names the
/// offending parameter. Checks run only at construction (they build strings).
#pragma once

#include <stdexcept>
#include <string>

namespace rtc {

/// Throws std::invalid_argument("<name>: <what>").
[[noreturn]] inline void invalid_parameter(const std::string& name, const std::string& what) {
  throw std::invalid_argument(name + ": " + what);
}

/// Requires `value` > 0 ("must be > 0 <unit>"; `unit` may be empty).
inline void require_positive(const char* name, double value, const std::string& unit = std::string()) {
  if (!(value > 0.0))
    invalid_parameter(name, "must be > 0" + (unit.empty() ? unit : " " + unit) + " (got " + std::to_string(value) + ")");
}

/// Requires `lo` <= `value` <= `hi` ("must be in [lo, hi] <unit>"; `unit` may be empty).
inline void require_in_range(const char* name, int value, int lo, int hi, const std::string& unit = std::string()) {
  if (value < lo || value > hi)
    invalid_parameter(name, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" +
                                (unit.empty() ? unit : " " + unit) + " (got " + std::to_string(value) + ")");
}

}  // namespace rtc
