#include "vibrato.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rtc {

namespace {

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw std::invalid_argument(name + ": " + what);
}

const VibratoConfig& validated(double frame_rate, const VibratoConfig& c) {
  if (!(frame_rate >= 20.0 && frame_rate <= 2000.0))
    bad("frame_rate", "must be in [20, 2000] Hz (got " + std::to_string(frame_rate) + ")");
  if (!(c.extent_on > 0.0)) bad("extent_on", "must be > 0 cents (got " + std::to_string(c.extent_on) + ")");
  if (!(c.extent_off > 0.0 && c.extent_off <= c.extent_on))
    bad("extent_off", "must be in (0, extent_on] cents (got " + std::to_string(c.extent_off) + ")");
  if (!(c.regularity_on > 0.0 && c.regularity_on <= 1.0))
    bad("regularity_on", "must be in (0, 1] (got " + std::to_string(c.regularity_on) + ")");
  if (!(c.regularity_off >= 0.0 && c.regularity_off <= c.regularity_on))
    bad("regularity_off", "must be in [0, regularity_on] (got " + std::to_string(c.regularity_off) + ")");
  if (!(c.jump_cents > 0.0)) bad("jump_cents", "must be > 0 cents (got " + std::to_string(c.jump_cents) + ")");
  if (c.max_gap < 0 || c.max_gap > 1000) bad("max_gap", "must be in [0, 1000] frames (got " + std::to_string(c.max_gap) + ")");
  if (c.max_glitch < 0 || c.max_glitch > VibratoConfig::kMaxGlitch)
    bad("max_glitch", "must be in [0, " + std::to_string(VibratoConfig::kMaxGlitch) + "] frames (got " +
                          std::to_string(c.max_glitch) + ")");
  if (c.hold_frames < 1 || c.hold_frames > 1000)
    bad("hold_frames", "must be in [1, 1000] frames (got " + std::to_string(c.hold_frames) + ")");
  if (!(c.release_periods >= 1.0 && c.release_periods <= c.window_periods))
    bad("release_periods", "must be in [1, window_periods] (got " + std::to_string(c.release_periods) + ")");
  return c;
}

}  // namespace

VibratoTracker::VibratoTracker(double frame_rate, const VibratoConfig& config)
    : fs_(frame_rate),
      cfg_(validated(frame_rate, config)),
      an_(frame_rate, config.rate_min, config.rate_max, config.window_periods, config.rate_step) {}

void VibratoTracker::reset() noexcept {
  an_.restart();
  est_ = ModulationEstimate();
  recent_ = ModulationEstimate();
  skip_ = 0;
  on_ = false;
  pending_ = 0;
  gap_ = 0;
  have_last_ = false;
  last_cents_ = 0.0;
  pending_n_ = 0;
}

VibratoFrame VibratoTracker::update(float f0_hz) noexcept {
  VibratoFrame out;
  const bool voiced = std::isfinite(f0_hz) && f0_hz > 0.0f;
  bool restart = false;
  if (voiced) {
    const double c = 1200.0 * std::log2(static_cast<double>(f0_hz) / 440.0);
    if (!have_last_ || gap_ > cfg_.max_gap) {
      restart = true;
      an_.restart();
      an_.push(c);
      last_cents_ = c;
      pending_n_ = 0;
    } else if (std::fabs(c - last_cents_) > cfg_.jump_cents) {
      // A jump: a note change, or a glitch of the f0 (an octave error, a
      // wrong lag) lasting a frame or two. Hold the last value until the new
      // one has lasted max_glitch + 1 frames.
      if (pending_n_ < cfg_.max_glitch) {
        glitch_[pending_n_++] = c;
        an_.push(last_cents_);
      } else {
        restart = true;
        an_.restart();
        for (int i = 0; i < pending_n_; ++i) an_.push(glitch_[i]);
        an_.push(c);
        last_cents_ = c;
        pending_n_ = 0;
      }
    } else {
      pending_n_ = 0;  // what was pending were glitches
      an_.push(c);
      last_cents_ = c;
    }
    have_last_ = true;
    gap_ = 0;
  } else {
    ++gap_;
    pending_n_ = 0;
    if (have_last_ && gap_ <= cfg_.max_gap && an_.run() > 0) {
      an_.push(last_cents_);
    } else if (an_.run() > 0) {
      an_.restart();
      restart = true;
    }
  }
  out.restarted = restart;
  if (restart) {
    on_ = false;
    pending_ = 0;
  }
  // The analysis runs every other frame (the contour moves little in one
  // frame); the decision runs every frame.
  if (restart || !est_.valid || ++skip_ >= 2) {
    skip_ = 0;
    est_ = an_.run() >= an_.min_run() ? an_.analyze() : ModulationEstimate();
  }
  if (est_.valid) {
    out.rate = static_cast<float>(est_.rate);
    out.extent = static_cast<float>(est_.amplitude);
    out.regularity = static_cast<float>(est_.regularity);
  }
  out.on = on_;
  return out;
}

bool VibratoTracker::candidate() const noexcept {
  return est_.valid && est_.regularity >= cfg_.regularity_off && est_.amplitude >= cfg_.extent_off;
}

double VibratoTracker::explained_by(double rate, int harmonics) noexcept {
  if (!est_.valid || !(est_.regularity > 0.0) || !(rate > 0.0)) return 0.0;
  const int win = std::max(est_.window, static_cast<int>(std::lround(3.0 * fs_ / rate)));
  return an_.harmonic_fit(rate, harmonics, win) / est_.regularity;
}

double VibratoTracker::explained_by_contour(const ModulationAnalyzer& other) noexcept {
  if (!est_.valid || !(est_.regularity > 0.0)) return 0.0;
  return an_.contour_fit(other, est_.window) / est_.regularity;
}

bool VibratoTracker::decide(bool suppress) noexcept {
  const ModulationEstimate& e = est_;
  const bool cond_on = !suppress && e.valid && e.regularity >= cfg_.regularity_on && e.amplitude >= cfg_.extent_on;
  bool cond_off = suppress || !e.valid || e.regularity < cfg_.regularity_off || e.amplitude < cfg_.extent_off;
  // The newest release_periods periods alone: they show the end of a vibrato
  // before the whole window does, and its full extent while the window still
  // holds the plain part before it.
  recent_ = ModulationEstimate();
  if ((on_ || cond_on) && e.valid && e.regularity >= cfg_.regularity_off) {
    const int win = std::max(8, static_cast<int>(std::lround(cfg_.release_periods * fs_ / e.rate)));
    recent_ = an_.fit(e.rate, win);
    if (on_ && !cond_off && recent_.valid && recent_.amplitude < cfg_.extent_off) cond_off = true;
  }
  if (!on_) {
    pending_ = cond_on ? pending_ + 1 : 0;
    if (pending_ >= cfg_.hold_frames) {
      on_ = true;
      pending_ = 0;
    }
  } else {
    pending_ = cond_off ? pending_ + 1 : 0;
    if (pending_ >= cfg_.hold_frames) {
      on_ = false;
      pending_ = 0;
    }
  }
  return on_;
}

VibratoFrame VibratoTracker::push(float f0_hz) noexcept {
  VibratoFrame out = update(f0_hz);
  out.on = decide(false);
  if (est_.valid) out.extent = static_cast<float>(reported_extent());
  return out;
}

void VibratoTracker::process(const float* f0_hz, std::size_t n, VibratoFrame* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = push(f0_hz[i]);
}

}  // namespace rtc
