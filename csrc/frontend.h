/// @file frontend.h
/// @brief Streaming log-mel frontend: samples in, frames out, any block split.
///
/// Frame i covers stream samples [i*hop, i*hop + n_fft) (no centering, so no
/// frame waits for future samples). push() of a block of any length emits the
/// frames that block completed; any split of a stream gives bit-for-bit the
/// same frames as a single push. Construction validates and allocates; push()
/// and reset() allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "counter.h"
#include "spectral.h"

namespace rtc {

/// Largest n_mels a MelConfig accepts.
inline constexpr int kMaxMels = 4096;

/// Parameters of a MelFrontend (validated by StreamingMelFrontend's constructor).
struct MelConfig {
  double sample_rate = 16000.0;  ///< input sample rate in Hz
  int n_fft = 512;               ///< frame length, power of two in [256, 4096]
  int hop_length = 256;          ///< frame advance in samples, 1..n_fft
  int win_length = 0;            ///< window length, 1..n_fft (0: n_fft)
  int n_mels = 128;              ///< number of mel bands, 1..kMaxMels
  double fmin = 0.0;             ///< lowest band edge in Hz
  double fmax = -1.0;            ///< highest band edge in Hz (< 0: sample_rate / 2)
  std::string window = "hann";   ///< window name (hann, hamming, blackman, rect)
  std::string mel_scale = "htk"; ///< "htk" or "slaney"
  std::string norm = "";         ///< "" (none) or "slaney"
  double power = 2.0;            ///< magnitude exponent, > 0
  std::string log = "db";        ///< "db", "ln" or "" (none)
  double amin = 1e-10;           ///< floor of the dB scale / offset of ln, > 0
};

/// Validates a configuration in place (fills defaults for win_length and fmax).
/// @throws std::invalid_argument naming the bad parameter.
void validate(MelConfig& cfg);

/// Streaming STFT -> power -> mel -> log frontend.
class StreamingMelFrontend {
 public:
  /// Validates the configuration and allocates every buffer.
  /// @throws std::invalid_argument naming the bad parameter.
  explicit StreamingMelFrontend(MelConfig cfg);

  /// Number of frames a push of n more samples will emit.
  size_t frames_for(size_t n) const noexcept;

  /// Pushes float32 samples and writes the frames they complete (row-major,
  /// n_mels each) into out. NaN/Inf samples are replaced by 0 and counted.
  /// When max_frames < frames_for(n) nothing is consumed and 0 is returned.
  /// @return the number of frames written (frames_for(n)).
  size_t push(const float* x, size_t n, float* out, size_t max_frames) noexcept;
  /// Same for float64 samples (each converted to float32 first).
  size_t push(const double* x, size_t n, float* out, size_t max_frames) noexcept;
  /// Same for int16 samples (scaled by 1/32768 to [-1, 1)).
  size_t push(const int16_t* x, size_t n, float* out, size_t max_frames) noexcept;

  /// Forgets buffered samples and zeroes the counters.
  void reset() noexcept;

  /// The validated configuration.
  const MelConfig& config() const noexcept { return cfg_; }
  /// Frames emitted since construction or reset().
  uint64_t frames_emitted() const noexcept { return frames_emitted_.get(); }
  /// Samples consumed since construction or reset().
  uint64_t samples_consumed() const noexcept { return samples_.get(); }
  /// NaN/Inf samples replaced by 0 since construction or reset().
  uint64_t nonfinite_replaced() const noexcept { return nonfinite_.get(); }
  /// Dense mel filterbank (n_mels x n_fft/2+1).
  const std::vector<float>& filterbank() const noexcept { return tables_.dense_filterbank(); }
  /// Table view shared with the CUDA kernels.
  const FrameTables<double>& tables() const noexcept { return tables_.view(); }

 private:
  template <typename In>
  size_t push_impl(const In* x, size_t n, float* out, size_t max_frames) noexcept;
  void emit(float* out) noexcept;

  MelConfig cfg_;
  SpectralTables tables_;
  std::vector<float> buf_;     // pending samples (n_fft)
  size_t fill_ = 0;            // samples in buf_
  std::vector<double> re_, im_, pow_;
  Counter frames_emitted_, samples_, nonfinite_;  // read by other threads (counter.h)
};

}  // namespace rtc
