/// @file modulation.h
/// @brief Streaming estimate of a periodic modulation of a control contour.
///
/// Shared by the vibrato tracker (f0 contour in cents) and the tremolo tracker
/// (level contour in dB). The analyzer keeps the contour since the last
/// restart() (a note change, a gap, an onset). analyze() fits, for each
/// candidate rate f on a grid, the model
///
///     y(t) = p0 + p1 u + p2 u^2 + a cos(2 pi f t) + b sin(2 pi f t)
///
/// by least squares over the newest `window_periods` periods of f (u is time
/// scaled to [-1, 1] over the window, so the quadratic absorbs the melody or
/// a decay), and scores it by the fraction of the detrended variance that the
/// sinusoid explains (the regularity, in [0, 1]). The scan over the grid
/// reads every k-th frame (k = floor(frame_rate / (6 rate_max)), at least 1:
/// the contour is oversampled); the best grid rate is refined by parabolic
/// interpolation of the score and fitted again exactly on every frame.
/// There is no estimate before the contour since the last restart covers the
/// window of the fastest candidate in [rate_min, rate_max]. From then on,
/// while the best candidate is the slowest one whose whole window is there,
/// the slower candidates whose window the contour covers for at least 80 %
/// are fitted over the whole contour, one after the other while the score
/// rises. While the best candidate's slower neighbour cannot be analyzed, the
/// maximum is not bracketed (a modulation that started with the contour would
/// read as the slowest rate analyzed so far): the estimate says so
/// (ModulationEstimate::bracketed), and the trackers do not turn on from it.
///
/// Lifecycle: the constructor validates and allocates every table; push(),
/// restart() and analyze() allocate nothing. Results depend only on the
/// contour, so they are identical under any split of the stream.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rtc {

/// Result of one analysis.
struct ModulationEstimate {
  bool valid = false;       ///< at least one candidate window was available
  double rate = 0.0;        ///< modulation rate in Hz
  double amplitude = 0.0;   ///< half peak-to-peak amplitude of the sinusoid, in contour units
  double regularity = 0.0;  ///< fraction of the detrended variance explained by the sinusoid, [0, 1]
  double trend_range = 0.0; ///< max - min of the fitted quadratic trend over the window, contour units
  int window = 0;           ///< frames in the final fit
  /// Half peak-to-peak amplitude fitted away from the troughs (see
  /// ModulationAnalyzer::set_crest_floor()); equals `amplitude` when that is off.
  double crest = 0.0;
  /// The best candidate's slower neighbour was analyzed too (always, once the
  /// contour covers the longest window). False while it cannot be (the contour
  /// covers less than 80 % of its window): the maximum may lie at a slower
  /// rate, and the rate and amplitude are those of the slowest candidate
  /// analyzed so far.
  bool bracketed = true;
};

/// Whether `rate` lies within `tolerance` (relative) of one of the first
/// `harmonics` multiples of `fundamental` (Hz).
inline bool near_harmonic(double rate, double fundamental, int harmonics, double tolerance) noexcept {
  for (int k = 1; k <= harmonics; ++k)
    if (std::fabs(rate - k * fundamental) < tolerance * k * fundamental) return true;
  return false;
}

/// Lowest rate_min a modulation analyzer takes, Hz.
inline constexpr double kMinModulationRate = 0.5;

/// Most values the candidate fits' table may hold (4 per scanned frame of each candidate window): every
/// analysis step scans all of them, and a finer or longer grid is not real time (the defaults need a few
/// thousand; at this limit the scan costs about a fifth of real time at 2000 frames/s).
inline constexpr std::size_t kMaxScanValues = std::size_t{1} << 20;

/// Least-squares sinusoid-plus-trend analyzer over a sliding window (see file comment).
class ModulationAnalyzer {
 public:
  /// Validates and allocates.
  /// @param frame_rate contour frames per second, 10 to 2000
  /// @param rate_min lowest modulation rate in Hz, >= kMinModulationRate
  /// @param rate_max highest modulation rate in Hz, > rate_min and < frame_rate / 4
  /// @param window_periods analysis window in periods of the candidate rate, 1 to 8
  /// @param rate_step spacing of the candidate grid in Hz, 0.01 to (rate_max - rate_min) / 2, and coarse
  ///        enough that the candidate fits need at most kMaxScanValues values
  /// @throws std::invalid_argument naming the offending parameter
  ModulationAnalyzer(double frame_rate, double rate_min, double rate_max, double window_periods = 2.0,
                     double rate_step = 0.25);

  /// Appends one contour value (finite).
  void push(double value) noexcept;
  /// Starts a new segment: the contour before this call is no longer used.
  void restart() noexcept;
  /// Frames pushed since the last restart (saturates at the history length).
  std::size_t run() const noexcept { return run_; }
  /// Frames needed before the fastest candidate can be analyzed.
  std::size_t min_run() const noexcept { return static_cast<std::size_t>(cand_len_.back()); }
  /// Most recent value pushed, `age` frames ago (0 = newest); requires age < run().
  double value(std::size_t age) const noexcept;

  /// Analyzes the newest frames (see file comment).
  ModulationEstimate analyze() noexcept;
  /// Fits the model at one rate over the newest `window` frames (clamped to run()).
  ModulationEstimate fit(double rate, int window) noexcept;
  /// Fraction of the detrended variance of the newest `window` frames (clamped
  /// to run()) explained by a periodic signal of fundamental `rate` Hz with
  /// `harmonics` harmonics (1 to kMaxHarmonics), in [0, 1]; 0 when the fit is
  /// not possible (too few frames).
  double harmonic_fit(double rate, int harmonics, int window) noexcept;
  /// Fraction of the detrended variance of the newest `window` frames (clamped
  /// to both runs) explained by a cubic polynomial of another contour over the
  /// same frames (an instantaneous dependence, such as the level of a tone
  /// whose partials move across fixed resonances as its f0 moves), in [0, 1];
  /// 0 when the fit is not possible. Both analyzers must receive one value per
  /// frame in step.
  double contour_fit(const ModulationAnalyzer& other, int window) noexcept;
  /// The newest `window` frames (clamped to run() and to other->run()) less
  /// their least-squares fit by `harmonics` harmonics of `rate` Hz (none when
  /// rate <= 0) and, when `other` is given, a cubic polynomial of that contour
  /// (fed in step), fitted together with a quadratic trend that is kept in the
  /// result: the contour with a known modulation's by-product removed.
  /// Writes the frames oldest first to `out` (room for `window` values) and
  /// returns how many; 0 when the fit is not possible (too few frames).
  int residual(double rate, int harmonics, const ModulationAnalyzer* other, int window, double* out) noexcept;
  /// Frames of the longest candidate window (the history an analysis needs).
  int longest_window() const noexcept { return *std::max_element(cand_len_.begin(), cand_len_.end()); }
  /// Largest `harmonics` accepted by harmonic_fit().
  static constexpr int kMaxHarmonics = 4;

  /// Contour frame rate in Hz.
  double frame_rate() const noexcept { return fs_; }
  /// Lowest modulation rate reported, Hz.
  double rate_min() const noexcept { return rate_min_; }
  /// Highest modulation rate reported, Hz.
  double rate_max() const noexcept { return rate_max_; }
  /// Window length in periods.
  double window_periods() const noexcept { return periods_; }
  /// Window length in frames for a rate in Hz.
  int window_for(double rate) const noexcept;
  /// From now on every fit (fit(), and analyze()'s final fit) also fits the
  /// sinusoid again on the frames where the first fit's sinusoid, as a
  /// fraction of its amplitude, lies above `floor` (in [-1, 1); -1: off, crest
  /// = amplitude), with the same trend terms, and reports that amplitude as
  /// ModulationEstimate::crest. A level contour's troughs are where additive
  /// noise and reverberation fill it in and where a room's reflections can
  /// cancel the direct sound; its crests are the direct sound's. The first
  /// fit's amplitude, regularity and trend are unchanged (detection does not
  /// depend on it). When fewer than 8 frames or a singular fit remain, crest =
  /// amplitude.
  /// @throws std::invalid_argument naming crest_floor
  void set_crest_floor(double floor);

 private:
  void linearize(std::size_t n) noexcept;

  double fs_, rate_min_, rate_max_, periods_, step_;
  double crest_floor_ = -1.0;
  int n_cand_;
  std::vector<double> cand_rate_;
  std::vector<int> cand_len_;          // window of each candidate, frames
  std::vector<int> cand_n_;            // frames of that window read by the scan
  int stride_ = 1;                     // the scan reads every stride_-th frame
  std::vector<std::size_t> cand_off_;  // offset of each candidate's basis in basis_
  std::vector<float> basis_;           // per candidate: u, u^2, cos, sin (4 * len)
  std::vector<double> ginv_;           // per candidate: 5x5 inverse normal matrix
  std::vector<double> pinv_;           // per candidate: 3x3 inverse of the trend-only normal matrix
  std::vector<double> score_;          // per candidate score of the last analysis
  std::vector<double> hist_;           // ring of contour values
  std::size_t hist_mask_;
  std::uint64_t count_ = 0;
  std::size_t run_ = 0;
  std::vector<double> lin_;            // chronological copy of the newest frames
  std::vector<float> linf_;            // the same in float, for the candidate scan
  std::vector<float> trend_;           // 1, u, u^2 over the contour, for the candidates fitted over it
};

}  // namespace rtc
