#include "modulation_tracker.h"

#include <cmath>
#include <limits>
#include <string>

#include "param_check.h"

namespace rtc {

void check_modulation_thresholds(double frame_rate, int min_frame_rate, const char* size, double size_on,
                                 double size_off, const char* unit, const ModulationConfig& c) {
  if (!(frame_rate >= min_frame_rate && frame_rate <= 2000.0))
    invalid_parameter("frame_rate", "must be in [" + std::to_string(min_frame_rate) + ", 2000] Hz (got " +
                                        std::to_string(frame_rate) + ")");
  const std::string on = std::string(size) + "_on";
  require_positive(on.c_str(), size_on, unit);
  if (!(size_off > 0.0 && size_off <= size_on))
    invalid_parameter(std::string(size) + "_off",
                      "must be in (0, " + on + " = " + std::to_string(size_on) + "] " + unit + " (got " +
                          std::to_string(size_off) + "; set it too when lowering " + on + ")");
  if (!(c.regularity_on > 0.0 && c.regularity_on <= 1.0))
    invalid_parameter("regularity_on", "must be in (0, 1] (got " + std::to_string(c.regularity_on) + ")");
  if (!(c.regularity_off >= 0.0 && c.regularity_off <= c.regularity_on))
    invalid_parameter("regularity_off",
                      "must be in [0, regularity_on] (got " + std::to_string(c.regularity_off) + ")");
}

void check_hold_frames(const ModulationConfig& c) { require_in_range("hold_frames", c.hold_frames, 1, 1000, "frames"); }

void check_release_periods(const ModulationConfig& c) {
  if (!(c.release_periods >= 1.0 && c.release_periods <= c.window_periods))
    invalid_parameter("release_periods",
                      "must be in [1, window_periods] (got " + std::to_string(c.release_periods) + ")");
}

ModulationTracker::ModulationTracker(double frame_rate, const ModulationConfig& c)
    : fs_(frame_rate), an_(frame_rate, c.rate_min, c.rate_max, c.window_periods, c.rate_step),
      bridge_periods_(c.bridge_periods) {
  if (!(c.bridge_periods >= 0.0 && c.bridge_periods <= 100.0))
    invalid_parameter("bridge_periods", "must be in [0, 100] (got " + std::to_string(c.bridge_periods) + ")");
}

void ModulationTracker::clear() noexcept {
  an_.restart();
  est_ = ModulationEstimate();
  recent_ = ModulationEstimate();
  skip_ = 0;
  on_ = false;
  pending_ = 0;
  bridge_rate_ = 0.0;
  bridge_amp_ = 0.0;
  bridge_age_ = 0;
}

void ModulationTracker::refresh(bool restarted, ModulationFrame& out, bool bridgeable, double from_rate,
                                double from_amplitude) noexcept {
  out.restarted = restarted;
  if (restarted) {
    // the analysis of the contour before the restart says nothing about this one; a modulation that was on
    // is bridged across a note change or an onset (a bridge running goes on at its rate)
    const bool from_given = from_rate > 0.0;
    if (bridgeable && on_ && bridge_periods_ > 0.0 && (bridging() || from_given || (est_.valid && est_.rate > 0.0))) {
      if (!bridging()) {
        bridge_amp_ = from_given ? from_amplitude : reported_amplitude();  // (before bridging() turns true)
        bridge_rate_ = from_given ? from_rate : est_.rate;
        bridge_age_ = 0;
      }
    } else {
      on_ = false;
      bridge_rate_ = 0.0;
    }
    pending_ = 0;
    est_ = ModulationEstimate();
    recent_ = ModulationEstimate();
  }
  if (bridging()) ++bridge_age_;
  // The analysis runs every other frame (the contour moves little in one
  // frame); the decision runs every frame.
  if (!est_.valid || ++skip_ >= 2) {
    skip_ = 0;
    est_ = an_.run() >= an_.min_run() ? an_.analyze() : ModulationEstimate();
  }
  if (bridging()) {  // what a bridge reports (the new contour's own analysis does not cover its rate yet)
    out.rate = static_cast<float>(bridge_rate_);
  } else if (est_.valid) {
    out.rate = static_cast<float>(est_.rate);
    out.regularity = static_cast<float>(est_.regularity);
  }
  out.on = on_;
}

bool ModulationTracker::bridged(bool vetoed, double size_scale, double size_off, const ModulationConfig& c) noexcept {
  if (!bridging()) return false;
  if (vetoed) {
    drop_bridge();
    return true;
  }
  if (est_.valid && est_.bracketed && static_cast<int>(an_.run()) >= an_.window_for(bridge_rate_)) {
    // the new contour's own analysis covers the bridged rate's window: it takes over
    bridge_rate_ = 0.0;
    pending_ = 0;
    return false;
  }
  const double period = fs_ / bridge_rate_;
  const int run = static_cast<int>(an_.run());
  bool fails = false;
  if (run >= std::max(8, static_cast<int>(std::lround(1.25 * period)))) {
    const ModulationEstimate b = an_.fit(bridge_rate_, run);
    if (b.valid && b.regularity >= c.regularity_off && size_scale * b.amplitude >= size_off) {
      bridge_age_ = 0;  // (its size over a period or two is too rough to report: the bridge keeps the one it had)
    } else {
      fails = true;
    }
  }
  pending_ = fails ? pending_ + 1 : 0;
  if (pending_ >= c.hold_frames || bridge_age_ > bridge_periods_ * period) drop_bridge();
  return true;
}

double ModulationTracker::explained_by(double rate, int harmonics) noexcept {
  if (!est_.valid || !(est_.regularity > 0.0) || !(rate > 0.0)) return 0.0;
  // three periods, capped in double before the conversion (a rate near 0 gives more frames than
  // an int holds; the fit reads at most the history anyway)
  const double periods = std::min(3.0 * fs_ / rate, static_cast<double>(std::numeric_limits<int>::max()));
  const int win = std::max(est_.window, static_cast<int>(std::lround(periods)));
  return an_.harmonic_fit(rate, harmonics, win) / est_.regularity;
}

double ModulationTracker::explained_by_contour(const ModulationAnalyzer& other) noexcept {
  if (!est_.valid || !(est_.regularity > 0.0)) return 0.0;
  return an_.contour_fit(other, est_.window) / est_.regularity;
}

bool ModulationTracker::settle(bool cond_on, bool cond_off, double size_scale, double size_off,
                               const ModulationConfig& c, bool release_check) noexcept {
  const ModulationEstimate& e = est_;
  // The newest release_periods periods alone: they show the end of a
  // modulation before the whole window does, and its full size while the
  // window still holds the plain part before it.
  recent_ = ModulationEstimate();
  if (release_check && (on_ || cond_on) && e.valid && e.regularity >= c.regularity_off) {
    const int win = std::max(8, static_cast<int>(std::lround(c.release_periods * fs_ / e.rate)));
    recent_ = an_.fit(e.rate, win);
    if (on_ && !cond_off && recent_.valid && size_scale * recent_.amplitude < size_off) cond_off = true;
  }
  if (!on_) {
    pending_ = cond_on ? pending_ + 1 : 0;
    if (pending_ >= c.hold_frames) {
      on_ = true;
      pending_ = 0;
    }
  } else {
    pending_ = cond_off ? pending_ + 1 : 0;
    if (pending_ >= c.hold_frames) {
      on_ = false;
      pending_ = 0;
    }
  }
  return on_;
}

}  // namespace rtc
