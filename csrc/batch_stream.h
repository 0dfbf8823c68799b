/// @file batch_stream.h
/// @brief Bookkeeping of a batched streaming frontend, shared by the CUDA
/// frontend (csrc/cuda/cuda_frontend.cu) and its CPU tests.
///
/// S streams receive the same number of new samples per push. Each stream owns
/// one row of a work buffer: the samples it still needs (the "pending"
/// samples, fewer than n_fft) followed by the new block. A push writes the new
/// block after the pending samples, computes every complete frame of the row
/// (frame f starts at f * hop), and keeps the samples from frames * hop on as
/// the next pending samples (copied to the start of a second row buffer; the
/// two buffers swap). This is the same frame sequence as the CPU frontend
/// (frame i covers samples [i*hop, i*hop + n_fft) of the stream), so any block
/// split gives the same frames.
///
/// Plain host C++ apart from finite_or_zero(), which is `__host__ __device__`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "frame_math.h"

namespace rtc {

/// Returns v when it is finite, 0 otherwise (NaN and +-Inf), and sets *replaced.
///
/// A bit test of the exponent, so host and device agree without relying on
/// either side's isfinite().
RTC_HD inline float finite_or_zero(float v, bool* replaced) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  const bool bad = (bits & 0x7f800000u) == 0x7f800000u;
  *replaced = bad;
  return bad ? 0.0f : v;
}

/// What one push of n samples per stream does to the rows of the work buffer.
struct BatchStep {
  size_t write_offset = 0;   ///< where the new block starts in each row (the pending count before)
  size_t frames = 0;         ///< complete frames computed by this push
  size_t tail_offset = 0;    ///< first sample kept for the next push (frames * hop)
  size_t pending_after = 0;  ///< samples kept per stream after this push (< n_fft)
};

/// Pending-sample bookkeeping of a batched streaming frontend (identical for
/// every stream, since all streams receive the same number of samples).
class BatchStreamPlan {
 public:
  /// @param n_fft frame length (validated by the caller)
  /// @param hop   frame advance, 1..n_fft (validated by the caller)
  BatchStreamPlan(int n_fft, int hop) noexcept
      : n_fft_(static_cast<size_t>(n_fft)), hop_(static_cast<size_t>(hop)) {}

  /// Samples a row must hold for blocks of up to max_block samples:
  /// the pending samples (at most n_fft - 1) plus the block.
  static size_t row_capacity(int n_fft, size_t max_block) noexcept {
    return static_cast<size_t>(n_fft) - 1 + max_block;
  }

  /// Frames a push of n more samples per stream completes.
  size_t frames_for(size_t n) const noexcept {
    const size_t total = pending_ + n;
    return total < n_fft_ ? 0 : (total - n_fft_) / hop_ + 1;
  }

  /// The step a push of n samples per stream takes (does not change the state).
  BatchStep plan(size_t n) const noexcept {
    BatchStep s;
    s.write_offset = pending_;
    s.frames = frames_for(n);
    s.tail_offset = s.frames * hop_;
    s.pending_after = pending_ + n - s.tail_offset;
    return s;
  }

  /// Applies a planned step (after its work was issued).
  void commit(const BatchStep& s) noexcept { pending_ = s.pending_after; }

  /// Samples each stream keeps between pushes (0 after construction or reset()).
  size_t pending() const noexcept { return pending_; }

  /// Forgets the pending samples.
  void reset() noexcept { pending_ = 0; }

  /// Frame length.
  size_t n_fft() const noexcept { return n_fft_; }
  /// Frame advance.
  size_t hop() const noexcept { return hop_; }

 private:
  size_t n_fft_;
  size_t hop_;
  size_t pending_ = 0;
};

}  // namespace rtc
