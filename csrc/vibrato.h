/// @file vibrato.h
/// @brief Streaming vibrato detector on an f0 contour.
///
/// Input: one f0 value per frame (Hz; 0, negative or non-finite = unvoiced).
/// The contour is converted to cents (re 440 Hz) and analyzed by a
/// ModulationAnalyzer: a quadratic trend (the melody) plus a sinusoid is
/// fitted over the newest `window_periods` periods of each candidate rate.
/// The contour restarts (nothing before it is used) at a note change (a jump
/// of more than `jump_cents` from the last value, or two steps the same way
/// through one value between the notes that together exceed it, that lasts
/// more than `max_glitch` frames; shorter excursions are f0 glitches and hold
/// the last value) and after an unvoiced gap longer than `max_gap` frames; shorter gaps
/// hold the last value.
///
/// Vibrato turns on when the regularity (fraction of the detrended variance
/// explained by the sinusoid) reaches `regularity_on`, the extent (half
/// peak-to-peak, cents) reaches `extent_on` and the peak-to-peak extent is at
/// least `trend_ratio` times the pitch change of the fitted trend over the
/// window, all for `hold_frames` consecutive frames. The last rule keeps a
/// legato melody off: notes joined by short slides are a staircase, and what
/// the quadratic trend leaves of it repeats at the note rate, but the trend
/// moves by about a note per period, a vibrato's centre hardly at all. It
/// turns off when one of them falls below its `_off` threshold (the trend
/// rule's is `trend_ratio_off`), or when the extent fitted over only the
/// newest `release_periods` periods falls below `extent_off` (so that the end
/// of a vibrato is seen without waiting for the whole window), for
/// `hold_frames` frames; at a restart of the contour, at once after a gap,
/// and after a note change once the bridge across it fails (see
/// modulation_tracker.h).
///
/// The analysis runs every other frame (and at once after a restart); the
/// hysteresis runs every frame on the newest analysis.
///
/// Each frame is handled in two steps, update() (contour and analysis) then
/// decide() (hysteresis), so that a caller can veto a detection in between
/// (TechniqueTracker does when the f0 wobble is a by-product of a tremolo);
/// push() does both.
///
/// Lifecycle: the constructor validates and allocates; update(), decide(),
/// push(), process(), explained_by() and reset() allocate nothing. Output
/// depends only on the contour.
#pragma once

#include <cstddef>

#include "modulation_tracker.h"

namespace rtc {

/// Vibrato state and estimates of one frame (`restarted`: a note change or a
/// gap; `suppressed`: a detection vetoed by the caller).
struct VibratoFrame : ModulationFrame {
  float extent = 0.0f;  ///< half peak-to-peak f0 deviation of the newest analysis, cents
};

/// Parameters of VibratoTracker (defaults are the shipped tuning).
struct VibratoConfig : ModulationConfig {
  /// The shipped tuning: rates 3 to 10 Hz, regularity_on 0.6, a window of 2.5 periods.
  VibratoConfig() noexcept : ModulationConfig(3.0, 10.0, 0.6, 2.5) {}

  double extent_on = 8.0;    ///< extent to turn on, cents (a random pitch wander of a few cents is no vibrato)
  double extent_off = 5.6;   ///< extent under which it turns off, cents
  double jump_cents = 80.0;  ///< f0 step that counts as a note change, cents
  double trend_ratio = 0.6;  ///< minimum peak-to-peak extent / trend pitch change over the window, to turn on
  double trend_ratio_off = 0.3;  ///< that ratio under which it turns off
  int max_gap = 4;           ///< unvoiced frames bridged by holding the last value
  int max_glitch = 4;        ///< frames an f0 jump may last and still count as a glitch
  static constexpr int kMaxGlitch = 8;  ///< largest accepted max_glitch
};

/// Streaming vibrato detector (see file comment).
class VibratoTracker : public ModulationTracker {
 public:
  /// Validates and allocates.
  /// @param frame_rate f0 frames per second, 20 to 2000
  /// @param config thresholds; each is validated and named on error
  /// @throws std::invalid_argument naming the offending parameter
  explicit VibratoTracker(double frame_rate, const VibratoConfig& config = VibratoConfig());

  /// Consumes one f0 value (Hz; <= 0 or non-finite = unvoiced) and returns the frame's state.
  VibratoFrame push(float f0_hz) noexcept;
  /// Consumes `n` f0 values and writes `n` frames into `out`.
  void process(const float* f0_hz, std::size_t n, VibratoFrame* out) noexcept;

  /// First step of a frame: updates the contour and analyzes it. The
  /// returned frame's `on` is still the previous state.
  VibratoFrame update(float f0_hz) noexcept;
  /// Second step: applies the hysteresis to the newest analysis; `suppress`
  /// vetoes a detection at this frame. Returns the new state.
  bool decide(bool suppress) noexcept;
  /// Whether the newest analysis would keep or turn the vibrato on
  /// (regularity and extent above the off thresholds).
  bool candidate() const noexcept;
  /// Forgets the contour and turns off.
  void reset() noexcept;

  /// The configuration in use.
  const VibratoConfig& config() const noexcept { return cfg_; }
  /// Newest contour value in cents re 440 Hz (0 before the first voiced frame).
  double last_cents() const noexcept { return last_cents_; }
  /// Extent to report after decide(), cents (see
  /// ModulationTracker::reported_amplitude()).
  double reported_extent() const noexcept { return reported_amplitude(); }

 private:
  VibratoConfig cfg_;
  int gap_ = 0;
  bool have_last_ = false;
  double last_cents_ = 0.0;
  double glitch_[VibratoConfig::kMaxGlitch] = {};
  int pending_n_ = 0;
  bool have_prev_ = false;    // prev_cents_ holds the accepted value before last_cents_
  double prev_cents_ = 0.0;
  double before_rate_ = 0.0;  // the analysis when a pending jump began (a bridge's start)
  double before_amp_ = 0.0;
};

}  // namespace rtc
