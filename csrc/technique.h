/// @file technique.h
/// @brief Pitch, vibrato and tremolo tracked together on one audio stream.
///
/// TechniqueTracker feeds the samples to a PitchTracker and, at each of its
/// frames, the f0 to a VibratoTracker and the level to a TremoloTracker (which
/// restarts at onsets and silences; optionally also when the f0 contour
/// restarts). The level contour is valid for the
/// tremolo while it is above the silence level and the pitch confidence is at
/// least `tremolo_min_confidence` (tonal sound, with a lower bar than the
/// voicing threshold so that the troughs of a deep tremolo stay valid).
///
/// Each modulation can cause a small copy of itself in the other contour: a
/// vibrato moves partials across an instrument's resonances and beats with a
/// room's reflections (a level wobble), and a tremolo shifts the phase of the
/// direct sound against the reverberation (an f0 wobble). When both trackers
/// have a candidate at a frame, each contour is also fitted with a periodic
/// signal at the other's rate (with `harmonics` harmonics), and the level also
/// with a cubic polynomial of the f0 contour (an instantaneous dependence, as
/// through resonances, which needs no rate estimate). A modulation is a
/// by-product of the other when the periodic fit explains at least
/// `explained_high` times what its own sinusoid explains, or when the better
/// fit explains at least `explained_low` times as much with a plausible
/// coupling: a level wobble of at most `am_per_cent` dB per
/// cent of vibrato extent, an f0 wobble of at most `cents_per_db` cents per dB
/// of tremolo depth. When each looks like a by-product of the other, the
/// smaller one relative to the coupling is the by-product. Two couplings are
/// weighed: an instrument's resonances scale with the pitch (depth / extent
/// in cents against pivot, the geometric mean of am_per_cent and
/// 1 / cents_per_db), a room's do not (its modes are a few Hz wide, and a
/// tremolo moves the phase of the direct sound against the reverberation by
/// a rate-bound number of Hz; depth / f0 deviation in Hz against
/// `hz_pivot`). The shapes of the two contours weigh in too: a modulation
/// is played as a near-sinusoid, while a by-product passes through a
/// non-linear coupling and carries harmonics. Each contour's purity is the
/// share its fundamental explains over the share `harmonics` harmonics
/// explain at its rate. The tremolo is the by-product when
///   0.5 log(depth / (pivot extent)) + 0.5 log(depth / (hz_pivot deviation_hz))
///   + purity_weight log(purity_level / purity_f0) <= 0
/// (with hz_pivot = 0 the first term alone counts in full). A by-product is not
/// reported (its tracker's detection is vetoed). The attribution is made when
/// both trackers become candidates and refreshed every 4 frames; the score is
/// noisy from one refresh to the next (a tremolo in a reverberant room whose
/// f0 by-product is about as large as the coupling allows read as vibrato and
/// tremolo in turn every 20-60 ms), so once one side has been taken for the
/// real modulation the other takes over only when the score passes
/// `attribution_margin` (log units) beyond 0 on its side, until the two stop
/// being candidates together.
///
/// A vibrato's by-product can also hide a real tremolo: a wide vibrato
/// through strong resonances wobbles the level more than a shallow tremolo
/// does, so the level's own analysis finds the vibrato's rate (or a multiple)
/// and is vetoed. With `tremolo_under_vibrato`, while a vibrato is on (a
/// candidate not yet on, early in a note, has the attack in the level's
/// history) and the level's own analysis gives no tremolo of its own, the
/// level is analyzed again with the by-product removed (its fit by harmonics
/// of the vibrato rate and a cubic polynomial of the f0 contour, see
/// TremoloTracker::analyze_without()); a tremolo found there at a rate at
/// least `exclusion` (relative) away from those harmonics is decided on that
/// analysis, with the same thresholds. Refreshed every 4 frames, and made
/// again at once after a restart of the level contour.
///
/// The attribution above needs a vibrato candidate. Pitch movement that is
/// no vibrato moves the level through the same resonances: a trill of a
/// whole tone or more (each step restarts the vibrato's contour, and each
/// note sounds at its own level), a pitch wobble faster or slower than the
/// vibrato's rates. With `level_follows_pitch`, while the tremolo is a
/// candidate (refreshed every 4 frames), its level is also fitted with a
/// cubic polynomial of the f0 in cents held through gaps and note changes (a
/// contour that never restarts at them); when that explains at least
/// `explained_low` times what the tremolo's sinusoid explains, with a
/// plausible coupling (a depth of at most `am_per_cent` dB per cent of half
/// the f0's range over the window), and the f0 goes back and forth at about
/// the tremolo's rate (at least 1.5 crossings of its mean per period, outside
/// a band of a quarter of its range: a melody's notes, each once in the
/// window, are fitted note by note by the cubic whatever the level does), the
/// level modulation is the pitch's and is not reported as a tremolo. A tremolo's own f0
/// by-product (a few cents per dB in a room) is far too small a range for
/// that coupling.
///
/// While the vibrato is bridged across a note change (it has no analysis of
/// its own then), a tremolo candidate that harmonics of the bridged rate
/// explain is its by-product, as in the attribution above. And while on,
/// each modulation reports the last rate and size that kept it on: in the
/// `hold_frames` frames before an off the newest analysis has failed already.
///
/// The analysis windows smooth fast modulations a little; with `compensate`
/// the reported extent and depth are divided by the known response of those
/// windows at the detected rate: for the f0 (the refinement window of W
/// samples and the lag T of one period) sinc(rW)·sinc(rT), for the level (a
/// Hann window of L samples) sinc(rL)/(1 - (rL)^2) (1/2 at rL = 1), with r
/// in cycles per sample; a response under 1/2 counts as 1/2 (a gain of at
/// most 2).
///
/// Frame k is decided after stream sample (k + 1) * hop_length.
/// Lifecycle: the constructor validates and allocates; process() and reset()
/// allocate nothing; output is identical under any split of the stream.
#pragma once

#include <cstddef>
#include <cstdint>

#include "pitch.h"
#include "tremolo.h"
#include "vibrato.h"

namespace rtc {

/// Everything tracked at one frame.
struct TechniqueFrame {
  PitchFrame pitch;      ///< f0, confidence, level, voicing
  VibratoFrame vibrato;  ///< vibrato state; extent compensated when enabled
  TremoloFrame tremolo;  ///< tremolo state; depth compensated when enabled
};

/// Parameters of TechniqueTracker other than the sample rate.
struct TechniqueConfig {
  int hop_length = 0;                   ///< samples between frames; 0 = round(5 ms * sample_rate)
  double fmin = 50.0;                   ///< lowest f0, Hz
  double fmax = 2000.0;                 ///< highest f0, Hz
  double threshold = 0.15;              ///< YIN threshold
  double silence_db = -60.0;            ///< silence level, dBFS
  double level_window_s = 0.025;        ///< level window, seconds
  double tremolo_min_confidence = 0.5;  ///< pitch confidence for the level to count as tonal
  bool tremolo_restart_on_pitch_jump = false;  ///< restart the level contour when the f0 contour restarts
  bool compensate = true;               ///< undo the analysis windows' smoothing of extent and depth
  double explained_high = 0.8;          ///< share that makes a by-product on its own
  double explained_low = 0.5;           ///< share that makes a by-product with a plausible coupling
  double am_per_cent = 0.1;             ///< largest level wobble per cent of vibrato, dB / cent
  double cents_per_db = 3.0;            ///< largest f0 wobble per dB of tremolo, cents / dB
  int harmonics = 4;                    ///< harmonics in the by-product fits (1 to 4)
  double purity_weight = 4.0;           ///< weight of the shape evidence when each looks like a by-product of the other
  double hz_pivot = 1.0;                ///< level wobble per Hz of f0 wobble that splits a room's couplings, dB/Hz (0: off)
  double attribution_margin = 0.5;      ///< score beyond 0 that turns a standing attribution over (log units)
  bool tremolo_under_vibrato = true;    ///< look for a tremolo in the level with the vibrato's by-product removed
  double exclusion = 0.1;               ///< relative distance from the vibrato's harmonics that such a tremolo needs
  double under_vibrato_regularity = 0.7;  ///< regularity_on of such a tremolo (of the level less the by-product)
  /// Attribute a level modulation that follows the f0 across note changes (a trill, a pitch wobble outside the
  /// vibrato's rates) to the pitch, not to a tremolo (see the file comment).
  bool level_follows_pitch = true;
  VibratoConfig vibrato;                ///< vibrato detector parameters
  TremoloConfig tremolo;                ///< tremolo detector parameters
};

/// Pitch + vibrato + tremolo on one stream (see file comment).
class TechniqueTracker {
 public:
  /// Validates and allocates.
  /// @param sample_rate input rate in Hz (see PitchTracker)
  /// @param config parameters; each is validated and named on error
  /// @throws std::invalid_argument naming the offending parameter
  explicit TechniqueTracker(double sample_rate, const TechniqueConfig& config = TechniqueConfig());

  /// Upper bound of the frames one process() call with `n_samples` samples can emit.
  std::size_t max_frames(std::size_t n_samples) const noexcept { return pitch_.max_frames(n_samples); }
  /// Consumes `n` samples; writes one frame per completed hop into `out`
  /// (room for max_frames(n)); returns the number written.
  std::size_t process(const float* x, std::size_t n, TechniqueFrame* out) noexcept;
  /// Forgets the stream.
  void reset() noexcept;

  /// The pitch tracker (geometry and counters).
  const PitchTracker& pitch() const noexcept { return pitch_; }
  /// The configuration in use (hop_length resolved).
  const TechniqueConfig& config() const noexcept { return cfg_; }
  /// Frames emitted since construction or reset().
  std::uint64_t frames() const noexcept { return frames_; }

 private:
  void track(const PitchFrame& p, TechniqueFrame& out) noexcept;

  TechniqueConfig cfg_;
  PitchTracker pitch_;
  VibratoTracker vibrato_;
  TremoloTracker tremolo_;
  std::uint64_t frames_ = 0;
  double last_period_ = 0.0;
  // joint attribution, refreshed every kAttributionEvery frames
  static constexpr int kAttributionEvery = 4;
  bool veto_v_ = false, veto_t_ = false;
  int winner_ = 0;  // the standing attribution when each explains the other: +1 tremolo real, -1 vibrato real
  float share_t_ = 0.0f;
  int attribution_age_ = -1;
  ModulationEstimate clean_;  // the level's analysis with the vibrato's by-product removed
  int clean_age_ = -1;
  bool clean_decided_ = false;  // the tremolo is on from clean_ (a bridge at a restart starts from it)
  // the f0 in cents held through gaps and never restarted at note changes (level_follows_pitch)
  ModulationAnalyzer held_f0_;
  bool held_any_ = false;
  double held_last_ = 0.0;
  bool follows_ = false;  // refreshed every kAttributionEvery frames
  float good_v_[2] = {0.0f, 0.0f};  // the vibrato's last rate and extent that kept it on (before compensation)
  float good_t_[2] = {0.0f, 0.0f};  // the tremolo's last rate and depth that kept it on
  int follows_age_ = -1;
  /// Whether the tremolo's level modulation follows the held f0 (see the file comment).
  bool level_follows_pitch() noexcept;
};

}  // namespace rtc
