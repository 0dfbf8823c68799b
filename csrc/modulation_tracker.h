/// @file modulation_tracker.h
/// @brief What the vibrato and tremolo trackers share.
///
/// Both trackers feed one contour value per frame to a ModulationAnalyzer
/// (VibratoTracker: the f0 in cents; TremoloTracker: the level in dB) and
/// decide the same way: the analysis runs every other frame (and at once after
/// a restart); a modulation turns on when its regularity and size reach the
/// `_on` thresholds on an analysis whose best rate is bracketed
/// (ModulationEstimate::bracketed) for `hold_frames` consecutive frames, and
/// off when either falls below its `_off` threshold, or when the size fitted
/// over only the newest `release_periods` periods falls below the size's
/// `_off` threshold, for `hold_frames` frames; and at once when the contour
/// restarts (which also drops the analysis of the contour before it). The size
/// is a multiple of the fitted amplitude (the vibrato's extent is the
/// amplitude, the tremolo's depth twice it).
///
/// A restart at a note change or an onset (not at a gap or a silence; the
/// tremolo bridges invalid frames for at most 30 ms, the noise of an attack)
/// while the modulation is on starts a bridge instead: it stays on at the rate and
/// size it had, and from 1.25 periods after the restart the contour since the
/// restart is fitted at that rate every frame. A fit that keeps the regularity
/// and the size at their `_off` thresholds confirms it (the rate and size
/// reported stay those it had); one that does not, for `hold_frames` frames, turns it off; a
/// bridge unconfirmed for `bridge_periods` periods ends off. The bridge ends
/// (and the usual rules take over, still on) once the contour covers the
/// analysis window of the bridged rate and its own analysis is valid and
/// bracketed. A singer's vibrato over a legato line and a tremolo
/// pedal over plucked notes go on through the notes instead of turning off at
/// each of them and on again 1.5-3.5 periods later.
///
/// Lifecycle: the constructor allocates (the analyzer); nothing else does.
#pragma once

#include <algorithm>

#include "modulation.h"

namespace rtc {

/// State and estimates of one frame that both trackers report.
struct ModulationFrame {
  bool on = false;          ///< modulation detected (with hysteresis)
  float rate = 0.0f;        ///< modulation rate of the newest analysis, Hz (0 when none)
  float regularity = 0.0f;  ///< fraction of the detrended contour variance explained by a sinusoid, [0, 1]
  bool restarted = false;   ///< the contour restarted at this frame
  bool suppressed = false;  ///< a detection was vetoed at this frame (attributed to another modulation)
};

/// Parameters that both trackers take (each tracker's config sets its own
/// defaults for the rate range, regularity_on and window_periods).
struct ModulationConfig {
  double rate_min;               ///< lowest rate, Hz
  double rate_max;               ///< highest rate, Hz
  double regularity_on;          ///< regularity to turn on
  double regularity_off = 0.35;  ///< regularity under which it turns off
  int hold_frames = 3;           ///< frames a switching condition must persist
  double window_periods;         ///< analysis window, periods of the candidate rate
  double release_periods = 1.5;  ///< window of the release check, periods of the current rate
  double rate_step = 0.25;       ///< candidate grid spacing, Hz
  /// Periods a modulation that was on stays on across a note change or an
  /// onset without being confirmed on the new contour (a bridge; 0: off at once
  /// at every restart). See the file comment.
  double bridge_periods = 3.0;

 protected:
  /// Sets the defaults that differ between the trackers.
  ModulationConfig(double rate_min_hz, double rate_max_hz, double regularity_on_share, double periods) noexcept
      : rate_min(rate_min_hz), rate_max(rate_max_hz), regularity_on(regularity_on_share), window_periods(periods) {}
};

/// Checks, in this order, the frame rate (in [min_frame_rate, 2000] Hz), the
/// thresholds of the size (`size`_on > 0, `size`_off in (0, `size`_on], in
/// `unit`) and the regularities of `config`.
/// @throws std::invalid_argument naming the offending parameter
void check_modulation_thresholds(double frame_rate, int min_frame_rate, const char* size, double size_on,
                                 double size_off, const char* unit, const ModulationConfig& config);
/// Checks hold_frames (in [1, 1000]).
/// @throws std::invalid_argument naming hold_frames
void check_hold_frames(const ModulationConfig& config);
/// Checks release_periods (in [1, window_periods]).
/// @throws std::invalid_argument naming release_periods
void check_release_periods(const ModulationConfig& config);

/// Analyzer, newest analysis and hysteresis shared by VibratoTracker and
/// TremoloTracker (see file comment); each adds its contour and thresholds.
class ModulationTracker {
 public:
  /// Contour frame rate, Hz.
  double frame_rate() const noexcept { return fs_; }
  /// Newest analysis.
  const ModulationEstimate& estimate() const noexcept { return est_; }
  /// A bridge is running (see the file comment).
  bool bridging() const noexcept { return bridge_rate_ > 0.0; }
  /// The contour analyzer (for cross-contour fits).
  ModulationAnalyzer& analyzer() noexcept { return an_; }
  /// Share of the newest analysis explained by a periodic signal at `rate`
  /// Hz (with harmonics): the fraction of the detrended contour variance such
  /// a signal explains over at least three of its periods, divided by the
  /// regularity of the newest analysis. 0 when there is no analysis.
  double explained_by(double rate, int harmonics) noexcept;
  /// Share of the newest analysis explained by a cubic polynomial of another
  /// contour fed in step (see ModulationAnalyzer::contour_fit()), over the
  /// newest analysis window: that fit's fraction divided by the regularity.
  double explained_by_contour(const ModulationAnalyzer& other) noexcept;

 protected:
  /// Allocates the analyzer.
  /// @param frame_rate contour frames per second
  /// @param config parameters, already checked by the tracker
  /// @throws std::invalid_argument naming a parameter the analyzer rejects
  ModulationTracker(double frame_rate, const ModulationConfig& config);

  /// Forgets the contour and the analysis and turns off.
  void clear() noexcept;
  /// Ends the contour update of a frame: turns off (or, when `bridgeable`,
  /// bridges: see the file comment) and drops the analysis when the contour
  /// `restarted`, analyzes when due (every other frame, and at every frame
  /// while there is no valid analysis, so at once after a restart) and fills
  /// the common fields of `out` (`on` is still the previous state).
  /// `from_rate` / `from_amplitude` (when from_rate > 0): the rate and
  /// amplitude a bridge starts from, instead of the newest analysis (which
  /// may already hold frames of the new note).
  void refresh(bool restarted, ModulationFrame& out, bool bridgeable = false, double from_rate = 0.0,
               double from_amplitude = 0.0) noexcept;
  /// The bridge's decision for this frame (see the file comment): true when a
  /// bridge decided the state (read on_), false when the usual rules apply.
  /// @param vetoed the caller vetoes the modulation at this frame (ends a bridge, off)
  /// @param size_scale size per unit of fitted amplitude
  /// @param size_off size under which the modulation turns off
  bool bridged(bool vetoed, double size_scale, double size_off, const ModulationConfig& config) noexcept;
  /// Ends a running bridge off (the sound it bridged stopped, a veto, a failed or expired bridge).
  void drop_bridge() noexcept {
    if (bridge_rate_ > 0.0) on_ = false;
    bridge_rate_ = 0.0;
    pending_ = 0;
  }

  /// Applies the release check and the hysteresis to the newest analysis.
  /// @param cond_on the analysis meets the tracker's on conditions
  /// @param cond_off the analysis meets one of the tracker's off conditions
  /// @param size_scale size per unit of fitted amplitude
  /// @param size_off size under which the modulation turns off
  /// @param config regularity_off, release_periods and hold_frames
  /// @return the new state
  /// @param release_check apply the release check (false: the conditions
  ///        come from an estimate other than the newest analysis)
  bool settle(bool cond_on, bool cond_off, double size_scale, double size_off,
              const ModulationConfig& config, bool release_check = true) noexcept;
  /// Amplitude to report after settle(): the larger of the whole window's
  /// and, while on or turning on, the newest `release_periods` periods' (at
  /// the onset of a modulation the window still holds the plain part before it),
  /// each fitted away from the troughs when the analyzer has a crest floor;
  /// while a bridge runs, the bridge's.
  double reported_amplitude() const noexcept {
    if (bridging()) return bridge_amp_;
    return recent_.valid ? std::max(est_.crest, recent_.crest) : est_.crest;
  }

  double fs_;                ///< contour frame rate, Hz
  ModulationAnalyzer an_;    ///< the contour since the last restart
  ModulationEstimate est_;   ///< newest analysis
  ModulationEstimate recent_;  ///< fit over the newest release_periods periods (settle())
  int skip_ = 0;             ///< frames since the last analysis
  bool on_ = false;          ///< current state
  int pending_ = 0;          ///< frames the switching condition has held
  double bridge_periods_;    ///< ModulationConfig::bridge_periods
  double bridge_rate_ = 0.0; ///< rate of the running bridge, Hz (0: none)
  double bridge_amp_ = 0.0;  ///< amplitude it reports (the one before the restart)
  int bridge_age_ = 0;       ///< frames since the bridge began or was last confirmed
};

}  // namespace rtc
