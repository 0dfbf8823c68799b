/// @file denormals.h
/// @brief Flush-to-zero and denormals-are-zero for the span of a processing call.
///
/// A signal decaying into the denormal range (a release or a reverb tail down to
/// 1e-38, a filter's state in silence) makes each floating-point operation on it
/// many times slower on most x86 cores: measured 1.3-2x for the whole float
/// resampler on an AMD EPYC, and far more per operation on many Intel cores, a
/// cost an audio thread must never meet. A DenormalsOff sets FTZ and DAZ in the
/// SSE control register (MXCSR) for its scope and gives the caller's mode back
/// when it ends: denormal inputs and results read and write as zero, every
/// normal value is untouched (results differ only where values under about
/// 1.2e-38 in float, 2.2e-308 in double, would have been). Without SSE it does
/// nothing.
#pragma once

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#define RTC_HAVE_MXCSR 1
#endif

namespace rtc {

/// FTZ and DAZ while it lives; the previous mode after (see the file comment).
class DenormalsOff {
 public:
#ifdef RTC_HAVE_MXCSR
  DenormalsOff() noexcept : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~DenormalsOff() { _mm_setcsr(saved_); }
#else
  DenormalsOff() noexcept = default;
#endif
  DenormalsOff(const DenormalsOff&) = delete;
  DenormalsOff& operator=(const DenormalsOff&) = delete;

#ifdef RTC_HAVE_MXCSR
 private:
  static constexpr unsigned kFlushToZero = 0x8000;
  static constexpr unsigned kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

}  // namespace rtc
