/// @file lanes.h
/// @brief Float reductions in eight independent lanes with a fixed summation
/// order: deterministic (the same result whatever the compiler vectorizes)
/// and vectorizable.
#pragma once

namespace rtc {

/// Sum of eight lane accumulators, in double, in a fixed pairwise order.
inline double lane_sum(const float (&acc)[8]) noexcept {
  return ((static_cast<double>(acc[0]) + acc[4]) + (static_cast<double>(acc[1]) + acc[5])) +
         ((static_cast<double>(acc[2]) + acc[6]) + (static_cast<double>(acc[3]) + acc[7]));
}

/// Dot product of the float vectors a and b of length n, in eight lanes.
inline double dot8(const float* a, const float* b, int n) noexcept {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[j + k] * b[j + k];
  for (int k = 0; j < n; ++j, ++k) acc[k] += a[j] * b[j];
  return lane_sum(acc);
}

}  // namespace rtc
