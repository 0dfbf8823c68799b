/// @file counter.h
/// @brief A count that one thread raises while any thread may read it.
///
/// The engine reads a frontend's or tracker's counters (frames, samples, NaN/Inf replaced) from the
/// caller's thread while the worker pushes samples with the GIL released: a plain integer would be a
/// data race. A relaxed atomic costs what a plain integer does on the writer's side (a load and a
/// store; one writer, so no read-modify-write), and a reader sees some value the count has had.
#pragma once

#include <atomic>
#include <cstdint>

namespace rtc {

/// Single-writer counter, readable from any thread.
class Counter {
 public:
  /// Raises the count by n (the writing thread only).
  void add(std::uint64_t n) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  /// Sets the count to 0 (the writing thread only).
  void reset() noexcept { v_.store(0, std::memory_order_relaxed); }
  /// The count (any thread).
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

}  // namespace rtc
