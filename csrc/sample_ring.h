/// @file sample_ring.h
/// @brief Lock-free single-producer single-consumer float32 ring buffer.
///
/// The producer (an audio callback) never blocks and never allocates: when a
/// push does not fit, the oldest unread samples are dropped and counted. The
/// consumer (a worker thread) pops what is there. Head and tail are 64-bit
/// sample counters (they never wrap in practice); the tail is advanced with a
/// compare-and-swap by the consumer (after a read) and by the producer (when it
/// drops old samples), so a read that raced with an overwrite is detected and
/// retried.
///
/// Threads: push() from one thread, pop() from one other thread, concurrently;
/// available(), pushed(), dropped() and capacity() from any thread at any time
/// (each a snapshot; pushed() and dropped() never decrease as seen from one
/// thread). reset() only while no other thread uses the ring.
///
/// The samples are stored as relaxed atomics: a pop that races with an overrun
/// reads slots the producer is overwriting (and then discards its copy, since
/// the tail moved), which with plain float stores would be a data race, i.e.
/// undefined behaviour (found by ThreadSanitizer, csrc/tests/tsan_sample_ring.cpp).
/// On the usual targets a relaxed float load or store is a plain move.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace rtc {

/// Single-producer single-consumer ring of float32 samples.
class SampleRing {
 public:
  /// Allocates the ring. `capacity` is rounded up to a power of two.
  /// @throws std::invalid_argument naming `capacity` when it is < 1 or > 2^30.
  explicit SampleRing(size_t capacity);

  /// Producer: appends n samples. Never blocks. When they do not fit, the
  /// oldest unread samples are dropped (counted in dropped()); when n exceeds
  /// the capacity, only the last capacity() samples of the block are kept.
  /// @return the number of samples dropped by this call.
  size_t push(const float* data, size_t n) noexcept;

  /// Consumer: copies up to n of the oldest unread samples into out.
  /// @return the number of samples copied.
  size_t pop(float* out, size_t n) noexcept;

  /// Number of unread samples (a snapshot, at most capacity()).
  size_t available() const noexcept;
  /// Capacity in samples (a power of two).
  size_t capacity() const noexcept { return capacity_; }
  /// Total samples dropped by overflow since construction or reset().
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Total samples pushed since construction or reset(), those of a block longer than the
  /// capacity that never entered the ring included (they are counted in dropped() too).
  uint64_t pushed() const noexcept {
    return head_.load(std::memory_order_relaxed) + skipped_.load(std::memory_order_relaxed);
  }
  /// Empties the ring and zeroes the counters. Only call while neither side runs.
  void reset() noexcept;

 private:
  size_t capacity_;
  size_t mask_;
  std::unique_ptr<std::atomic<float>[]> data_;
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> skipped_{0};  // samples of over-long blocks never stored (producer only)
};

}  // namespace rtc
