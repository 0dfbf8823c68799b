#include "sample_ring.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rtc {

static_assert(std::atomic<float>::is_always_lock_free, "SampleRing needs lock-free atomic floats");

namespace {

// Copies n samples into the ring's slots (relaxed atomic stores: a racing pop may read them).
inline void store_samples(std::atomic<float>* dst, const float* src, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) dst[i].store(src[i], std::memory_order_relaxed);
}

// Copies n samples out of the ring's slots (relaxed atomic loads: the producer may overwrite them).
inline void load_samples(float* dst, const std::atomic<float>* src, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) dst[i] = src[i].load(std::memory_order_relaxed);
}

}  // namespace

SampleRing::SampleRing(size_t capacity) {
  if (capacity < 1 || capacity > (size_t(1) << 30))
    throw std::invalid_argument("capacity: must be from 1 to 2^30 samples (got " +
                                std::to_string(capacity) + ")");
  size_t c = 1;
  while (c < capacity) c <<= 1;
  capacity_ = c;
  mask_ = c - 1;
  data_.reset(new std::atomic<float>[c]);
  for (size_t i = 0; i < c; ++i) data_[i].store(0.0f, std::memory_order_relaxed);
}

size_t SampleRing::push(const float* data, size_t n) noexcept {
  if (n == 0) return 0;
  size_t lost = 0;
  if (n > capacity_) {  // only the newest capacity_ samples of the block can survive
    lost = n - capacity_;
    data += lost;
    n = capacity_;
    skipped_.fetch_add(lost, std::memory_order_relaxed);
  }
  const uint64_t head = head_.load(std::memory_order_relaxed);
  uint64_t tail = tail_.load(std::memory_order_acquire);
  // Make room by moving the tail past the oldest samples (racing with pop()).
  while (head + n - tail > capacity_) {
    const uint64_t want = head + n - capacity_;
    if (tail_.compare_exchange_weak(tail, want, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      lost += static_cast<size_t>(want - tail);
      break;
    }
  }
  const size_t pos = static_cast<size_t>(head & mask_);
  const size_t first = std::min(n, capacity_ - pos);
  store_samples(data_.get() + pos, data, first);
  if (first < n) store_samples(data_.get(), data + first, n - first);
  head_.store(head + n, std::memory_order_release);
  if (lost) dropped_.fetch_add(lost, std::memory_order_relaxed);
  return lost;
}

size_t SampleRing::pop(float* out, size_t n) noexcept {
  for (;;) {
    uint64_t tail = tail_.load(std::memory_order_acquire);
    const uint64_t head = head_.load(std::memory_order_acquire);
    // head - tail exceeds the capacity when the producer overran the ring between the two loads
    // (the tail read is stale): never read more than the ring holds (that read would run past the
    // end of the buffer); the compare-and-swap below then fails and the pop starts over.
    const size_t k = static_cast<size_t>(std::min<uint64_t>(std::min<uint64_t>(n, head - tail), capacity_));
    if (k == 0) return 0;
    const size_t pos = static_cast<size_t>(tail & mask_);
    const size_t first = std::min(k, capacity_ - pos);
    load_samples(out, data_.get() + pos, first);
    if (first < k) load_samples(out + first, data_.get(), k - first);
    // Commit only if the producer did not move the tail (overwrite) meanwhile.
    if (tail_.compare_exchange_strong(tail, tail + k, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return k;
  }
}

size_t SampleRing::available() const noexcept {
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  const uint64_t head = head_.load(std::memory_order_acquire);
  // more than the capacity only with a stale tail (the producer overran the ring between the loads)
  return head > tail ? static_cast<size_t>(std::min<uint64_t>(head - tail, capacity_)) : 0;
}

void SampleRing::reset() noexcept {
  head_.store(0, std::memory_order_relaxed);
  tail_.store(0, std::memory_order_relaxed);
  dropped_.store(0, std::memory_order_relaxed);
  skipped_.store(0, std::memory_order_relaxed);
}

}  // namespace rtc
