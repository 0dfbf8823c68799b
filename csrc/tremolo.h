/// @file tremolo.h
/// @brief Streaming tremolo detector on a level contour.
///
/// Input: one level value per frame in dB (for example the Hann-weighted
/// mean-square level of PitchTracker), a validity flag (the frame belongs to a
/// sounding, tonal note) and a restart flag (a note change seen elsewhere, for
/// example by the vibrato tracker). A ModulationAnalyzer fits a quadratic
/// trend (attacks' tails and decays) plus a sinusoid over the newest
/// `window_periods` periods of each candidate rate. The contour restarts at
/// an invalid frame, at a given restart, and at an onset: a rise of more than
/// `onset_db` within `onset_frames` frames (faster than any tremolo in range).
///
/// Tremolo turns on when the regularity reaches `regularity_on`, the depth
/// (peak-to-peak, dB) reaches `depth_on` and the depth is at least
/// `trend_ratio` times the level change of the fitted trend over the window
/// (a release or a fast decay is a large trend with a small wobble), for
/// `hold_frames` consecutive frames, and the rate has moved by at most
/// `rate_stability` (relative) over the last `stability_periods` periods (a
/// tremolo keeps its rate; the wobble a room and a player's jitter and
/// shimmer leave in a steady note drifts). It turns off when the regularity or the
/// depth falls below its `_off` threshold, when the depth fitted over only the
/// newest `release_periods` periods falls below `depth_off`, or when the trend
/// rule fails, for `hold_frames` frames; at a restart, at once after more
/// than 30 ms of invalid frames, and after an onset or a given restart once
/// the bridge across it fails (see modulation_tracker.h).
///
/// Vibrato makes the level wobble too: partials move across an instrument's
/// resonances, and in a room the direct sound beats with reflections of
/// earlier pitches. That wobble repeats with the vibrato's period. push()
/// takes the caller's vibrato state: while a vibrato of rate rv is on, the
/// level is also fitted with a trend plus a periodic signal of fundamental rv
/// and `vibrato_harmonics` harmonics (over at least three vibrato periods);
/// when that fit explains at least `vibrato_explained` times the variance the
/// tremolo's sinusoid explains, the modulation is attributed to the vibrato.
/// (A tremolo at the vibrato's own rate or a multiple of it is therefore not
/// reported while the vibrato lasts.) TechniqueTracker uses update(),
/// explained_by() and decide() to make that call jointly with the vibrato.
///
/// The analysis runs every other frame (and at once after a restart); the
/// hysteresis runs every frame on the newest analysis.
///
/// Lifecycle: the constructor validates and allocates; update(), decide(),
/// decide_with(), analyze_without(), push(), explained_by() and reset()
/// allocate nothing. Output depends only on
/// the inputs.
#pragma once

#include <vector>

#include "modulation_tracker.h"

namespace rtc {

/// Tremolo state and estimates of one frame (`suppressed`: a detection
/// attributed to the vibrato).
struct TremoloFrame : ModulationFrame {
  float depth = 0.0f;          ///< peak-to-peak level modulation of the newest analysis, dB
  float vibrato_share = 0.0f;  ///< explained_by(vibrato rate) when it was evaluated, else 0
};

/// Parameters of TremoloTracker (defaults are the shipped tuning).
struct TremoloConfig : ModulationConfig {
  /// The shipped tuning: rates 2 to 15 Hz, regularity_on 0.7, a window of 3 periods.
  TremoloConfig() noexcept : ModulationConfig(2.0, 15.0, 0.7, 3.0) {}

  double depth_on = 1.0;           ///< depth to turn on, dB peak-to-peak
  double depth_off = 0.5;          ///< depth under which it turns off, dB
  double trend_ratio = 0.25;       ///< minimum depth / trend level change over the window
  double onset_db = 8.0;           ///< level rise that counts as an onset, dB
  int onset_frames = 2;            ///< frames over which the rise is measured
  double vibrato_explained = 0.8;  ///< attribution share (vibrato-periodic fit / tremolo fit)
  int vibrato_harmonics = 4;       ///< harmonics of the vibrato rate in the attribution fit (1 to 4)
  double rate_stability = 0.05;    ///< largest relative rate change over stability_periods to turn on (0: off)
  double stability_periods = 0.75; ///< span of that check, periods of the current rate
  /// The reported depth is fitted on the frames where the first fit's sinusoid
  /// is above crest_floor times its amplitude (ModulationAnalyzer::set_crest_floor();
  /// -0.5 leaves out the third of each period around the trough, which noise and
  /// reverberation fill in or a room's reflections deepen); -1: the whole window.
  double crest_floor = -0.5;
};

/// Streaming tremolo detector (see file comment).
class TremoloTracker : public ModulationTracker {
 public:
  /// Validates and allocates.
  /// @param frame_rate level frames per second, 40 to 2000 (above 4 * rate_max)
  /// @param config thresholds; each is validated and named on error
  /// @throws std::invalid_argument naming the offending parameter
  explicit TremoloTracker(double frame_rate, const TremoloConfig& config = TremoloConfig());

  /// Consumes one frame and decides.
  /// @param level_db level in dB (non-finite counts as invalid)
  /// @param valid the frame belongs to a sounding note
  /// @param restart a note change was seen at this frame
  /// @param vibrato_on a vibrato is reported at this frame
  /// @param vibrato_rate its rate in Hz
  TremoloFrame push(float level_db, bool valid, bool restart = false, bool vibrato_on = false,
                    float vibrato_rate = 0.0f) noexcept;

  /// First step of a frame: updates the contour and analyzes it (the
  /// returned frame's `on` is still the previous state).
  /// `from_rate` / `from_amplitude` (when from_rate > 0): what a bridge
  /// starts from at a restart (the analysis the caller decided the state
  /// from, when not the newest: TechniqueTracker's level less a vibrato's
  /// by-product).
  TremoloFrame update(float level_db, bool valid, bool restart, double from_rate = 0.0,
                      double from_amplitude = 0.0) noexcept;
  /// Second step: applies the hysteresis; `suppress` vetoes a detection.
  bool decide(bool suppress) noexcept;
  /// Whether the newest analysis would keep or turn the tremolo on.
  bool candidate() const noexcept;
  /// Analysis of the level contour with a vibrato's by-product removed: the
  /// contour less its fit by `harmonics` harmonics of `vibrato_rate` and a
  /// cubic polynomial of the f0 contour `f0` (see
  /// ModulationAnalyzer::residual()), analyzed like the contour itself. A
  /// rate within `exclusion` (relative) of one of those harmonics makes the
  /// estimate invalid (what is left there is the fit's leakage).
  ModulationEstimate analyze_without(double vibrato_rate, int harmonics, const ModulationAnalyzer& f0,
                                     double exclusion) noexcept;
  /// Second step on a given estimate (for example analyze_without()'s)
  /// instead of the newest analysis, without the release check.
  /// `regularity_on` replaces the configured one.
  bool decide_with(const ModulationEstimate& e, double regularity_on) noexcept;
  /// Forgets the contour and turns off.
  void reset() noexcept;

  /// The configuration in use.
  const TremoloConfig& config() const noexcept { return cfg_; }
  /// Depth to report after decide(), dB peak-to-peak (see
  /// ModulationTracker::reported_amplitude()).
  double reported_depth() const noexcept { return 2.0 * reported_amplitude(); }

 private:
  void conditions(const ModulationEstimate& e, bool suppress, double regularity_on, bool& cond_on,
                  bool& cond_off) const noexcept;

  bool rate_stable() const noexcept;

  TremoloConfig cfg_;
  ModulationAnalyzer clean_;   // analyzer of analyze_without()'s residual
  std::vector<double> resid_;  // that residual
  std::vector<float> rates_;   // rate of the newest analysis at each recent frame (0: none), a ring
  std::size_t n_rates_ = 0;    // frames written to rates_
  int invalid_run_ = 0;        // invalid frames in a row (up to the bridged span)
  static constexpr double kBridgedInvalidS = 0.03;  // invalid frames a bridge crosses, seconds
};

}  // namespace rtc
