/// @file pitch.h
/// @brief Streaming fundamental-frequency tracker of the YIN family.
///
/// The tracker consumes float32 mono samples in blocks of any size and emits
/// one PitchFrame every `hop_length` samples. Each frame is computed in two
/// stages:
///  1. a coarse YIN search (difference function, cumulative mean normalized
///     difference, absolute threshold, first dip) on a low-passed copy of the
///     input decimated to about 11 to 22 kHz, over lags fmin..fmax, with an
///     integration window of one period of fmin. It runs about every 10 ms
///     (every frame when the hop is 10 ms or longer); frames in between keep
///     its voicing decision and confidence and refine around the previous
///     frame's period;
///  2. a refinement at the full input rate: the normalized cross-correlation
///     of a shorter window (two periods, at least 12.5 ms) with its copy one
///     period later is evaluated at the lags around the coarse period (within
///     2 decimated samples plus 2 %, and within 0.75 to 1.5 times the coarse
///     period, so never at the next multiple of a short period; every other
///     lag first for periods of 160 samples or more, then every lag within
///     the coarse resolution when the coarse search found the sound periodic
///     but none of those lags is),
///     and its maximum is located by parabolic interpolation (Lanczos
///     interpolation for periods under 48 samples). When the coarse search
///     found the sound periodic, its cumulative mean normalized difference is
///     read between the lags (interpolated) at the fractions 1/4, 1/3 and 1/2
///     of the period, and the shortest under the threshold is taken and
///     refined instead (YIN's first dip): the coarse search reads whole lags,
///     which miss the narrow dip of a bright tone at a low sample rate and
///     stop at a multiple of its period. When that shortest fraction lies
///     above fmax, the frame is unvoiced (a tone above the range would
///     otherwise read an octave or more down), and so is one whose coarse
///     copy holds under a tenth of the input's energy (a tone above the low
///     pass's band, which YIN, deaf to level, reads through its alias), and
///     one whose refined period lies outside fmin..fmax with 3 % to spare. The
///     short window keeps fast pitch modulation (vibrato) from being smoothed
///     away, and the normalization keeps level changes (tremolo, decays) from
///     biasing it.
/// The voicing confidence is 1 minus the normalized difference at the chosen
/// lag (the aperiodicity). Frame k is decided after stream sample
/// (k + 1) * hop_length; all its analysis windows end at that sample.
///
/// Lifecycle (aubio style): the constructor validates and allocates; process()
/// and reset() allocate nothing. Output depends only on the stream, never on
/// how it is split into blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "counter.h"

namespace rtc {

/// One pitch estimate, decided at the end of a hop.
struct PitchFrame {
  float f0_hz = 0.0f;       ///< fundamental frequency in Hz; 0 when unvoiced
  float confidence = 0.0f;  ///< 1 - aperiodicity at the chosen lag, in [0, 1]
  float level_db = -120.0f; ///< Hann-weighted mean-square level of the last level window, dBFS (>= -120), of the input high-passed at 20 Hz
  float period = 0.0f;      ///< period in input samples at the chosen lag (also set when unvoiced; 0 in silence)
  bool voiced = false;      ///< periodic enough (aperiodicity below the threshold), above the silence level, f0 in range
};

/// Streaming YIN pitch tracker (decimated coarse search + full-rate refinement).
class PitchTracker {
 public:
  /// Validates and allocates.
  /// @param sample_rate input rate in Hz, 4000 to 384000, and above 4 * fmax
  /// @param hop_length samples between frames, 1 to sample_rate / 10 (<= 100 ms)
  /// @param fmin lowest f0 searched in Hz, >= 20 and < fmax
  /// @param fmax highest f0 searched in Hz, <= sample_rate / 4
  /// @param threshold absolute YIN threshold on the normalized difference, in (0, 1)
  /// @param silence_db level (dBFS) under which a frame is unvoiced, in [-120, 0]
  /// @param level_window_s length of the Hann window of the level estimate, 2 ms to 200 ms
  /// @throws std::invalid_argument naming the offending parameter
  PitchTracker(double sample_rate, int hop_length, double fmin = 50.0, double fmax = 2000.0,
               double threshold = 0.15, double silence_db = -60.0, double level_window_s = 0.025);

  /// Upper bound of the frames one process() call with `n_samples` samples can emit.
  std::size_t max_frames(std::size_t n_samples) const noexcept;

  /// Consumes `n` samples and writes one frame per completed hop into `out`.
  /// Non-finite samples are replaced by 0 and counted (nonfinite_count()).
  /// @param x input samples (may be null when n == 0)
  /// @param n number of samples
  /// @param out room for at least max_frames(n) frames
  /// @return the number of frames written
  std::size_t process(const float* x, std::size_t n, PitchFrame* out) noexcept;

  /// Forgets the stream: history, counters and the hop phase.
  void reset() noexcept;

  /// Input sample rate in Hz.
  double sample_rate() const noexcept { return sr_; }
  /// Samples between frames.
  int hop_length() const noexcept { return hop_; }
  /// Frames per second (sample_rate / hop_length).
  double frame_rate() const noexcept { return sr_ / hop_; }
  /// Lowest f0 searched, Hz.
  double fmin() const noexcept { return fmin_; }
  /// Highest f0 searched, Hz.
  double fmax() const noexcept { return fmax_; }
  /// YIN threshold.
  double threshold() const noexcept { return threshold_; }
  /// Silence level in dBFS.
  double silence_db() const noexcept { return silence_db_; }
  /// Decimation factor of the coarse search (1 when the input rate is already low).
  int decimation() const noexcept { return dec_; }
  /// Length of the level window in samples.
  int level_window() const noexcept { return level_len_; }
  /// Samples consumed since construction or reset().
  std::uint64_t samples() const noexcept { return total_; }
  /// Non-finite input samples replaced by 0 since construction or reset().
  std::uint64_t nonfinite_count() const noexcept { return nonfinite_.get(); }

 private:
  void analyze(PitchFrame& f) noexcept;
  float fir_output() const noexcept;
  double refine(double coarse_period_full, bool periodic) noexcept;
  double diff_at(int tau) const noexcept;
  double cmnd_between(double tau) noexcept;
  // The lowest cmnd_between over tau +- steps sub-lag steps (kSubStep coarse samples apart); `at` gets its lag.
  double lowest_between(double tau, int steps, double& at) noexcept;
  const float* recent(std::size_t len) const noexcept;
  const float* recent_dec(std::size_t len) const noexcept;
  // whether a period (input samples) is within fmin..fmax, with 3% to spare
  bool in_range(double period) const noexcept;

  double sr_;
  int hop_;
  double fmin_, fmax_, threshold_, silence_db_;
  int dec_;             // decimation factor
  double sr_int_;       // coarse (decimated) rate
  // full-rate history: a ring of ring_len_ samples written twice (at i and
  // i + ring_len_), so the newest ring_len_ samples are always contiguous
  std::vector<float> ring_;
  std::size_t ring_len_;
  std::size_t ring_pos_ = 0;
  // decimated history, same layout
  std::vector<float> dring_;
  std::size_t dring_len_;
  std::size_t dring_pos_ = 0;
  std::uint64_t dcount_ = 0;
  // anti-alias FIR (empty when dec_ == 1)
  std::vector<float> fir_;
  // level window, over the input high-passed at kLevelHighpassHz (a ring of level_len_ samples, same layout)
  int level_len_;
  std::vector<double> level_win_;
  double level_win_sum_;
  std::vector<float> lring_;
  std::size_t lring_pos_ = 0;
  double hp_b0_ = 1.0, hp_b1_ = 0.0, hp_b2_ = 0.0, hp_a1_ = 0.0, hp_a2_ = 0.0;  // 2nd-order Butterworth high-pass
  double hp_z1_ = 0.0, hp_z2_ = 0.0;                                          // its state (transposed direct form II)
  // coarse YIN
  int tau_min_c_, tau_max_c_, win_c_;
  int span_c_;                 // decimated samples of the coarse span
  std::vector<double> dc_;     // difference function
  std::vector<double> cmnd_;   // normalized difference
  int dc_known_ = 0;           // dc_ holds this frame's values up to this lag
  // refinement
  int win_f_max_, win_f_min_, tau_max_f_;
  std::size_t span_f_;         // full-rate samples the refinement may read
  const float* xf_ = nullptr;  // start of the refinement span (valid during analyze())
  int win_f_ = 0;              // refinement window of the current frame
  double e0_f_ = 0.0;          // energy of that window
  std::vector<double> dref_;   // refinement difference values around the period
  // coarse search cache (the coarse search runs every coarse_every_ frames)
  int coarse_every_ = 1;
  int coarse_age_ = 0;
  bool coarse_valid_ = false;
  bool coarse_voiced_ = false;
  double coarse_ap_ = 1.0;
  double last_period_ = 0.0;
  // counters
  std::uint64_t total_ = 0;
  Counter nonfinite_;  // read by other threads (counter.h)
  int hop_phase_ = 0;
};

}  // namespace rtc
