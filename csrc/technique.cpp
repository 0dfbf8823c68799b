#include "technique.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "denormals.h"
#include "param_check.h"

namespace rtc {

namespace {

constexpr double kPi = 3.14159265358979323846;

int default_hop(double sample_rate) { return std::max(1, static_cast<int>(std::lround(0.005 * sample_rate))); }

// The hop against the frame rates the vibrato and tremolo trackers take
// (40 to 2000 Hz, above 4 * rate_max), named hop_length: those trackers would
// name their frame_rate or rate_max, which the caller never set. When the
// hop is the default, a rate_max above it is the parameter at fault (the
// trackers' own error names it).
void check_hop(double sample_rate, const TechniqueConfig& c) {
  if (!(sample_rate >= 4000.0 && sample_rate <= 384000.0) || c.hop_length < 1) return;  // PitchTracker names these
  const double fr = sample_rate / c.hop_length;
  const std::string at = " samples at sample_rate " + std::to_string(sample_rate) + " Hz";
  const std::string got = " (got " + std::to_string(c.hop_length) + ")";
  if (!(fr >= 40.0 && fr <= 2000.0)) {
    const auto lo = static_cast<long long>(std::ceil(sample_rate / 2000.0));
    const auto hi = static_cast<long long>(std::floor(sample_rate / 40.0));
    invalid_parameter("hop_length", "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" + at +
                                        " (a frame rate of 40 to 2000 Hz)" + got);
  }
  if (c.hop_length == default_hop(sample_rate)) return;
  const struct {
    const char* name;
    const ModulationConfig& m;
  } trackers[] = {{"vibrato", c.vibrato}, {"tremolo", c.tremolo}};
  for (const auto& t : trackers) {
    if (!(t.m.rate_max > t.m.rate_min) || t.m.rate_max < fr / 4.0) continue;
    // the largest hop strictly under sample_rate / (4 rate_max)
    const auto most = static_cast<long long>(std::ceil(sample_rate / (4.0 * t.m.rate_max))) - 1;
    invalid_parameter("hop_length", "must be at most " + std::to_string(most) + at +
                                        ": the frame rate (sample_rate / hop_length) must exceed 4 * " + t.name +
                                        ".rate_max = " + std::to_string(4.0 * t.m.rate_max) + " Hz" + got);
  }
}

// A sub-tracker built with its errors named as TechniqueTracker's keyword
// arguments give them ("vibrato.rate_max").
template <class Tracker, class Config>
Tracker sub_tracker(const char* prefix, double frame_rate, const Config& c) {
  try {
    return Tracker(frame_rate, c);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(prefix) + "." + e.what());
  }
}

TechniqueConfig resolved(double sample_rate, TechniqueConfig c) {
  if (c.hop_length == 0 && sample_rate > 0.0 && std::isfinite(sample_rate)) c.hop_length = default_hop(sample_rate);
  check_hop(sample_rate, c);
  if (!(c.tremolo_min_confidence >= 0.0 && c.tremolo_min_confidence <= 1.0))
    invalid_parameter("tremolo_min_confidence",
                      "must be in [0, 1] (got " + std::to_string(c.tremolo_min_confidence) + ")");
  require_positive("explained_high", c.explained_high);
  if (!(c.explained_low > 0.0 && c.explained_low <= c.explained_high))
    invalid_parameter("explained_low", "must be in (0, explained_high] (got " + std::to_string(c.explained_low) + ")");
  require_positive("am_per_cent", c.am_per_cent, "dB/cent");
  require_positive("cents_per_db", c.cents_per_db, "cents/dB");
  require_in_range("harmonics", c.harmonics, 1, ModulationAnalyzer::kMaxHarmonics);
  if (!(c.purity_weight >= 0.0 && c.purity_weight <= 100.0))
    invalid_parameter("purity_weight", "must be in [0, 100] (got " + std::to_string(c.purity_weight) + ")");
  if (!(c.attribution_margin >= 0.0 && c.attribution_margin <= 10.0))
    invalid_parameter("attribution_margin", "must be in [0, 10] (got " + std::to_string(c.attribution_margin) + ")");
  if (!(c.hz_pivot >= 0.0 && c.hz_pivot <= 100.0))
    invalid_parameter("hz_pivot", "must be in [0, 100] dB/Hz (got " + std::to_string(c.hz_pivot) + ")");
  if (!(c.exclusion >= 0.0 && c.exclusion <= 0.3))
    invalid_parameter("exclusion", "must be in [0, 0.3] (got " + std::to_string(c.exclusion) + ")");
  if (!(c.under_vibrato_regularity > c.tremolo.regularity_off && c.under_vibrato_regularity <= 1.0))
    invalid_parameter("under_vibrato_regularity", "must be in (tremolo regularity_off, 1] (got " +
                                                      std::to_string(c.under_vibrato_regularity) + ")");
  return c;
}

// Share of a contour's periodic fit at its own rate that the fundamental
// alone explains (1: a sinusoid; lower: harmonics, as after a non-linear coupling).
double purity(ModulationTracker& m, int harmonics) noexcept {
  const double rate = m.estimate().rate;
  const double all = m.explained_by(rate, harmonics);
  if (!(all > 0.0)) return 1.0;
  return std::clamp(m.explained_by(rate, 1) / all, 1e-3, 1.0);
}

double sinc(double x) { return std::fabs(x) < 1e-9 ? 1.0 : std::sin(kPi * x) / (kPi * x); }

// Amplitude response of a Hann window of L samples to a modulation of x
// cycles per window (x = rate * L / sample_rate, >= 0): sinc(x) / (1 - x^2).
// Written as sinc(1 - x) / (x (1 + x)) from x = 0.5 on (the same function,
// since sin(pi x) = sin(pi (1 - x))), which has no 0 / 0 at x = 1, where
// the response is 1/2.
double hann_response(double x) {
  return x < 0.5 ? sinc(x) / (1.0 - x * x) : sinc(1.0 - x) / (x * (1.0 + x));
}

// What a size read through a window of response h is divided by: h, but not
// under 1/2 (a gain of at most 2: a window that keeps less than half of the
// modulation reads mostly noise). Continuous in h.
double bounded_response(double h) { return std::max(h, 0.5); }

// The values of an on modulation: when this frame's pass (`good`; a bridge's always do) they are kept in
// `last`, otherwise the last ones that did replace them (none yet: left as they are). Off: forgotten.
void hold_good(bool on, bool bridging, bool good, float& rate, float& size, float (&last)[2]) noexcept {
  if (!on) {
    last[0] = last[1] = 0.0f;
  } else if (good || bridging) {
    last[0] = rate;
    last[1] = size;
  } else if (last[0] > 0.0f) {
    rate = last[0];
    size = last[1];
  }
}

}  // namespace

TechniqueTracker::TechniqueTracker(double sample_rate, const TechniqueConfig& config)
    : cfg_(resolved(sample_rate, config)),
      pitch_(sample_rate, cfg_.hop_length, cfg_.fmin, cfg_.fmax, cfg_.threshold, cfg_.silence_db,
             cfg_.level_window_s),
      vibrato_(sub_tracker<VibratoTracker>("vibrato", pitch_.frame_rate(), cfg_.vibrato)),
      tremolo_(sub_tracker<TremoloTracker>("tremolo", pitch_.frame_rate(), cfg_.tremolo)),
      // the tremolo's geometry: its history covers every tremolo window (only push() and contour_fit() are used)
      held_f0_(pitch_.frame_rate(), cfg_.tremolo.rate_min, cfg_.tremolo.rate_max, cfg_.tremolo.window_periods,
               cfg_.tremolo.rate_step) {}

bool TechniqueTracker::level_follows_pitch() noexcept {
  const ModulationEstimate& te = tremolo_.estimate();
  const int n = std::min<int>(te.window, static_cast<int>(held_f0_.run()));
  if (!te.valid || n < 8) return false;
  double lo = held_f0_.value(0), hi = lo, sum = 0.0;
  for (int age = 0; age < n; ++age) {
    const double c = held_f0_.value(static_cast<std::size_t>(age));
    lo = std::min(lo, c);
    hi = std::max(hi, c);
    sum += c;
  }
  const double depth = 2.0 * te.amplitude;
  if (!(depth <= cfg_.am_per_cent * 0.5 * (hi - lo))) return false;  // too little pitch movement for this depth
  // The pitch goes back and forth at about the level's rate (a trill, a wobble: about two crossings of its mean
  // a period). A melody's notes, each once in the window, are fitted note by note by the cubic whatever the level
  // does within them, and cross their mean once or twice in the window.
  const double mean = sum / n, band = 0.25 * (hi - lo);
  int side = 0, crossings = 0;
  for (int age = 0; age < n; ++age) {
    const double c = held_f0_.value(static_cast<std::size_t>(age)) - mean;
    const int s = c > band ? 1 : (c < -band ? -1 : 0);
    if (s != 0 && side != 0 && s != side) ++crossings;
    if (s != 0) side = s;
  }
  const double periods = n * te.rate / pitch_.frame_rate();
  if (crossings < 1.5 * periods) return false;
  return tremolo_.explained_by_contour(held_f0_) >= cfg_.explained_low;
}

void TechniqueTracker::reset() noexcept {
  pitch_.reset();
  vibrato_.reset();
  tremolo_.reset();
  frames_ = 0;
  last_period_ = 0.0;
  veto_v_ = veto_t_ = false;
  winner_ = 0;
  share_t_ = 0.0f;
  attribution_age_ = -1;
  clean_ = ModulationEstimate();
  clean_age_ = -1;
  held_f0_.restart();
  clean_decided_ = false;
  held_any_ = false;
  held_last_ = 0.0;
  follows_ = false;
  follows_age_ = -1;
  good_v_[0] = good_v_[1] = good_t_[0] = good_t_[1] = 0.0f;
}

void TechniqueTracker::track(const PitchFrame& p, TechniqueFrame& out) noexcept {
  out.pitch = p;
  if (p.voiced) last_period_ = p.period;
  const double sr = pitch_.sample_rate();
  VibratoFrame v = vibrato_.update(p.voiced ? p.f0_hz : 0.0f);
  const bool valid = p.level_db >= cfg_.silence_db && p.confidence >= cfg_.tremolo_min_confidence;
  // (a tremolo decided on the level less the vibrato's by-product is bridged from that analysis)
  TremoloFrame t = tremolo_.update(p.level_db, valid, cfg_.tremolo_restart_on_pitch_jump && v.restarted,
                                   clean_decided_ ? clean_.rate : 0.0, clean_decided_ ? clean_.crest : 0.0);
  if (p.voiced) {
    held_last_ = 1200.0 * std::log2(static_cast<double>(p.f0_hz) / 440.0);
    held_any_ = true;
  }
  if (held_any_) held_f0_.push(held_last_);

  // Joint attribution of by-products (see the file comment), evaluated when
  // both trackers become candidates and then every kAttributionEvery frames.
  const bool both = vibrato_.candidate() && tremolo_.candidate();
  if (!both && vibrato_.bridging() && tremolo_.candidate()) {
    // A vibrato bridged across a note change has no analysis of its own: the level's wobble at its rate is
    // its by-product when the bridged rate's harmonics explain it (as the attribution's periodic fit).
    if (attribution_age_ < 0 || ++attribution_age_ >= kAttributionEvery) {
      attribution_age_ = 0;
      const double share = tremolo_.explained_by(v.rate, cfg_.harmonics);
      share_t_ = static_cast<float>(share);
      veto_t_ = share >= cfg_.explained_high ||
                (share >= cfg_.explained_low && 2.0 * tremolo_.estimate().amplitude <= cfg_.am_per_cent * v.extent);
      veto_v_ = false;
    }
  } else if (!both) {
    veto_v_ = veto_t_ = false;
    winner_ = 0;
    share_t_ = 0.0f;
    attribution_age_ = -1;
  } else if (attribution_age_ < 0 || ++attribution_age_ >= kAttributionEvery) {
    attribution_age_ = 0;
    bool veto_v = false, veto_t = false;
    const ModulationEstimate& ve = vibrato_.estimate();
    const ModulationEstimate& te = tremolo_.estimate();
    const double extent = ve.amplitude;
    const double depth = 2.0 * te.amplitude;
    // The level: periodic at the vibrato rate (a room's beating), or an
    // instantaneous function of the f0 (resonances; such a dependence reads
    // both ways, so it only counts with a plausible coupling). The f0:
    // periodic at the tremolo rate (a room's phase shifts).
    const double share_t = tremolo_.explained_by(ve.rate, cfg_.harmonics);
    const double share_tc = tremolo_.explained_by_contour(vibrato_.analyzer());
    const double share_v = vibrato_.explained_by(te.rate, cfg_.harmonics);
    share_t_ = static_cast<float>(std::max(share_t, share_tc));
    const bool t_by_v = share_t >= cfg_.explained_high ||
                        (std::max(share_t, share_tc) >= cfg_.explained_low && depth <= cfg_.am_per_cent * extent);
    const bool v_by_t = share_v >= cfg_.explained_high || (share_v >= cfg_.explained_low && extent <= cfg_.cents_per_db * depth);
    // With an attribution standing, a side that still explains the other at the low share keeps it in the
    // weighing (at one rate each contour's periodicity explains the other's: noise on one share alone flipped
    // a vibrato off and on every 20-60 ms)
    const bool weigh = (t_by_v && v_by_t) ||
                       (winner_ != 0 && (t_by_v || v_by_t) && std::max(share_t, share_tc) >= cfg_.explained_low &&
                        share_v >= cfg_.explained_low);
    if (weigh) {
      const double pivot = std::sqrt(cfg_.am_per_cent / cfg_.cents_per_db);  // dB per cent
      double score = std::log(std::max(depth, 1e-9) / std::max(pivot * extent, 1e-9));
      if (cfg_.hz_pivot > 0.0 && last_period_ > 0.0) {
        const double deviation_hz = sr / last_period_ * (std::exp2(extent / 1200.0) - 1.0);
        score = 0.5 * score + 0.5 * std::log(std::max(depth, 1e-9) / std::max(cfg_.hz_pivot * deviation_hz, 1e-9));
      }
      if (cfg_.purity_weight > 0.0)
        score += cfg_.purity_weight * std::log(purity(tremolo_, cfg_.harmonics) / purity(vibrato_, cfg_.harmonics));
      // the standing attribution holds within the margin (see the file comment)
      const double cut = winner_ > 0 ? -cfg_.attribution_margin : winner_ < 0 ? cfg_.attribution_margin : 0.0;
      if (score <= cut) veto_t = true;
      else veto_v = true;
    } else {
      veto_t = t_by_v;
      veto_v = v_by_t;
    }
    if (veto_t != veto_v) winner_ = veto_v ? 1 : -1;  // (the weighing always takes one side)
    veto_v_ = veto_v;
    veto_t_ = veto_t;
  }
  const bool veto_v = veto_v_, veto_t = veto_t_;
  t.vibrato_share = share_t_;
  v.on = vibrato_.decide(veto_v);
  v.suppressed = veto_v;
  if (vibrato_.estimate().valid || vibrato_.bridging()) v.extent = static_cast<float>(vibrato_.reported_extent());
  // A tremolo hidden under the vibrato's by-product (see the file comment).
  // (Only under a vibrato that is itself real: when the f0 wobble is the
  // tremolo's by-product, a tremolo at the vibrato's rate is the real one.)
  const bool real_vibrato = vibrato_.candidate() && !veto_v;
  const bool own = tremolo_.candidate() && !veto_t &&
                   !(real_vibrato && near_harmonic(tremolo_.estimate().rate, vibrato_.estimate().rate,
                                                   cfg_.harmonics, cfg_.exclusion));
  // An analysis of the level with the vibrato's by-product removed belongs to
  // the contour it was made on: a restart of that contour (or a contour still
  // too short to analyze) drops it, so it is made again on the new contour.
  if (t.restarted || tremolo_.analyzer().run() < tremolo_.analyzer().min_run()) {
    clean_age_ = -1;
    clean_ = ModulationEstimate();
  }
  bool use_clean = false;
  // (under a vibrato that is on: a candidate not yet on, early in a note, has the attack in the level's
  // history, and the analysis without the by-product read 20-60 ms flashes of tremolo at 8-15 Hz there)
  if (cfg_.tremolo_under_vibrato && real_vibrato && v.on && !own) {
    if (clean_age_ < 0 || ++clean_age_ >= kAttributionEvery) {
      clean_age_ = 0;
      // (a tremolo on from this analysis keeps it down to 3/4 of the exclusion: a rate near its edge, 6.0 Hz under
      // a 5.5 Hz vibrato, was in and out of it from one refresh to the next, the tremolo on and off with it)
      const double exclusion = clean_decided_ ? 0.75 * cfg_.exclusion : cfg_.exclusion;
      clean_ = tremolo_.analyze_without(vibrato_.estimate().rate, cfg_.harmonics, vibrato_.analyzer(), exclusion);
    }
    use_clean = clean_.valid;
  } else {
    clean_age_ = -1;
    clean_ = ModulationEstimate();
  }
  clean_decided_ = false;
  if (use_clean && !tremolo_.bridging()) {
    t.on = tremolo_.decide_with(clean_, cfg_.under_vibrato_regularity);
    clean_decided_ = t.on;
    t.suppressed = veto_t && !t.on;
    t.rate = static_cast<float>(clean_.rate);
    t.regularity = static_cast<float>(clean_.regularity);
    t.depth = static_cast<float>(2.0 * clean_.crest);
  } else {
    // a level modulation that follows the pitch (see the file comment)
    if (!cfg_.level_follows_pitch || veto_t || !tremolo_.candidate()) {
      follows_ = false;
      follows_age_ = -1;
    } else if (follows_age_ < 0 || ++follows_age_ >= kAttributionEvery) {
      follows_age_ = 0;
      follows_ = level_follows_pitch();
    }
    t.on = tremolo_.decide(veto_t || follows_);
    t.suppressed = veto_t || follows_;
    if (tremolo_.estimate().valid || tremolo_.bridging()) t.depth = static_cast<float>(tremolo_.reported_depth());
  }

  // While on, the values come from analyses that keep it on: in the frames before an off (hold_frames) the
  // newest analysis has already failed (a tremolo read 0.007 dB at a range edge while on: CC 106 at 0), and
  // the last values that kept it on are reported until the off.
  hold_good(v.on, vibrato_.bridging(), v.regularity >= cfg_.vibrato.regularity_off && v.extent >= cfg_.vibrato.extent_off,
            v.rate, v.extent, good_v_);
  hold_good(t.on, tremolo_.bridging(), t.regularity >= cfg_.tremolo.regularity_off && t.depth >= cfg_.tremolo.depth_off,
            t.rate, t.depth, good_t_);
  if (cfg_.compensate && v.rate > 0.0f && last_period_ > 0.0) {
    // response of the refinement window (two periods, >= 12.5 ms, <= 1 / fmin) and of the lag
    const double win = std::clamp(2.0 * last_period_, std::min(0.0125 * sr, sr / cfg_.fmin), std::ceil(sr / cfg_.fmin));
    const double r = v.rate / sr;
    v.extent = static_cast<float>(v.extent / bounded_response(sinc(r * win) * sinc(r * last_period_)));
  }
  if (cfg_.compensate && t.rate > 0.0f) {
    const double x = t.rate * pitch_.level_window() / sr;
    t.depth = static_cast<float>(t.depth / bounded_response(hann_response(x)));
  }
  out.vibrato = v;
  out.tremolo = t;
  ++frames_;
}

std::size_t TechniqueTracker::process(const float* x, std::size_t n, TechniqueFrame* out) noexcept {
  const DenormalsOff denormals_off;  // (see denormals.h)
  std::size_t n_out = 0;
  std::size_t i = 0;
  const std::size_t hop = static_cast<std::size_t>(pitch_.hop_length());
  while (i < n) {
    const std::size_t m = std::min(hop, n - i);  // at most one frame per call
    PitchFrame p;
    if (pitch_.process(x + i, m, &p) == 1) track(p, out[n_out++]);
    i += m;
  }
  return n_out;
}

}  // namespace rtc
