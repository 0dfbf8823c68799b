/// @file cuda_frontend.h
/// @brief Batched streaming log-mel frontend on a CUDA device (S streams at once).
///
/// Declarations only: host code includes this header without nvcc; the
/// implementation (cuda_frontend.cu) is compiled when nvcc is present
/// (RTCLASSIFY_WITH_CUDA). The per-frame math is the CPU frontend's
/// (frame_math.h, launched by launch_mel_frames() of mel_cuda.h) and the
/// tables are built on the host by the same SpectralTables, so both paths use
/// identical tables. The pending-sample bookkeeping is BatchStreamPlan
/// (batch_stream.h), which the CPU tests also run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "batch_stream.h"
#include "frontend.h"

namespace rtc {
namespace cuda {

/// Streaming STFT -> power -> mel -> log frontend for S streams on one GPU.
///
/// Every push() gives each of the S streams the same number n of new samples
/// (equal block length per call; n may change from call to call). Stream s
/// then yields exactly the frames a CPU StreamingMelFrontend fed the same
/// samples would yield (frame i covers samples [i*hop, i*hop + n_fft)), up to
/// the rounding of the device's math (the GPU contracts multiply-adds).
///
/// State on the device: for each stream, the samples it still needs (fewer
/// than n_fft, the same count for every stream) and a count of NaN/Inf
/// samples replaced by 0. Tables are uploaded once, at construction.
///
/// Allocation: the constructor allocates every device buffer for blocks of up
/// to `max_block` samples. push() allocates nothing, except when a block is
/// longer than every block before it and than max_block: then the work and
/// staging buffers grow to the new length (device allocation, and a
/// synchronization of the given stream), and stay that large.
///
/// Ordering: all work of a push is issued on the CUDA stream it is given; a
/// push on a different stream than the previous one first waits (on the
/// device) for the previous push. Not thread-safe: one caller at a time.
class CudaMelFrontend {
 public:
  /// Validates the configuration, picks the device and uploads the tables.
  ///
  /// @param streams   number of streams S, 1..65535
  /// @param cfg       frontend parameters (validated like the CPU frontend's)
  /// @param max_block longest block (samples per stream) pushed without a
  ///                  device allocation, >= 1
  /// @param device    CUDA device index; -1: the device current at construction
  /// @throws std::invalid_argument naming the bad parameter
  /// @throws std::runtime_error "no CUDA device ..." when no GPU is visible,
  ///         or naming the CUDA call that failed
  CudaMelFrontend(int streams, MelConfig cfg, size_t max_block = 4096, int device = -1);
  /// Releases the device buffers (after the device finished using them).
  ~CudaMelFrontend();
  CudaMelFrontend(const CudaMelFrontend&) = delete;
  CudaMelFrontend& operator=(const CudaMelFrontend&) = delete;

  /// Frames per stream a push of n more samples per stream will write.
  size_t frames_for(size_t n) const noexcept;

  /// Pushes n new samples for each stream and computes the frames they complete.
  ///
  /// @param x          samples of stream s at x + s * row_stride, n per stream;
  ///                   host memory (copied to the device through a staging
  ///                   buffer; pageable memory is copied before this returns)
  ///                   or device memory of this frontend's device
  /// @param n          samples per stream (0: nothing happens)
  /// @param row_stride distance in floats between the rows of x, >= n
  /// @param x_on_device whether x is device memory
  /// @param out        device memory for S * frames_for(n) * n_mels floats:
  ///                   frame f of stream s at out + (s * frames + f) * n_mels
  ///                   (may be null when frames_for(n) is 0)
  /// @param out_frames frames per stream `out` has room for
  /// @param stream     cudaStream_t as void* (nullptr: the legacy default stream)
  /// @return frames written per stream (frames_for(n))
  /// @throws std::invalid_argument for a null pointer, row_stride < n or
  ///         out_frames < frames_for(n) (nothing is consumed)
  /// @throws std::runtime_error naming the CUDA call that failed (call
  ///         reset() before pushing again)
  size_t push(const float* x, size_t n, size_t row_stride, bool x_on_device, float* out,
              size_t out_frames, void* stream);

  /// Forgets the pending samples and zeroes the counters (issued on `stream`).
  void reset(void* stream = nullptr);

  /// The validated configuration.
  const MelConfig& config() const noexcept;
  /// Number of streams S.
  int streams() const noexcept;
  /// CUDA device index the frontend runs on.
  int device() const noexcept;
  /// Longest block pushed without allocation (grows with longer blocks).
  size_t max_block() const noexcept;
  /// Samples each stream keeps for its next frames (< n_fft).
  size_t pending() const noexcept;
  /// Frames emitted per stream since construction or reset().
  uint64_t frames_emitted() const noexcept;
  /// Samples consumed per stream since construction or reset().
  uint64_t samples_consumed() const noexcept;
  /// Pushes whose input was host memory (copied to the device) since construction or reset().
  uint64_t host_uploads() const noexcept;
  /// NaN/Inf samples replaced by 0, per stream, since construction or reset().
  /// Waits for the last push to finish (not for the real-time path).
  std::vector<uint64_t> nonfinite_replaced() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Whether a CUDA device is visible; when not, *reason (if given) says why
/// (the CUDA runtime's message, e.g. no device or no driver).
bool device_available(const char** reason) noexcept;

}  // namespace cuda
}  // namespace rtc
