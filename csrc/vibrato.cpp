#include "vibrato.h"

#include <cmath>
#include <string>

#include "param_check.h"

namespace rtc {

namespace {

const VibratoConfig& validated(double frame_rate, const VibratoConfig& c) {
  check_modulation_thresholds(frame_rate, 20, "extent", c.extent_on, c.extent_off, "cents", c);
  require_positive("jump_cents", c.jump_cents, "cents");
  if (!(c.trend_ratio >= 0.0 && std::isfinite(c.trend_ratio)))
    invalid_parameter("trend_ratio", "must be finite and >= 0 (got " + std::to_string(c.trend_ratio) + ")");
  if (!(c.trend_ratio_off >= 0.0 && c.trend_ratio_off <= c.trend_ratio))
    invalid_parameter("trend_ratio_off", "must be in [0, trend_ratio = " + std::to_string(c.trend_ratio) + "] (got " +
                                             std::to_string(c.trend_ratio_off) +
                                             "; set it too when lowering trend_ratio: both 0 turn the rule off)");
  require_in_range("max_gap", c.max_gap, 0, 1000, "frames");
  require_in_range("max_glitch", c.max_glitch, 0, VibratoConfig::kMaxGlitch, "frames");
  check_hold_frames(c);
  check_release_periods(c);
  return c;
}

}  // namespace

VibratoTracker::VibratoTracker(double frame_rate, const VibratoConfig& config)
    : ModulationTracker(frame_rate, validated(frame_rate, config)), cfg_(config) {}

void VibratoTracker::reset() noexcept {
  clear();
  gap_ = 0;
  have_last_ = false;
  last_cents_ = 0.0;
  have_prev_ = false;
  prev_cents_ = 0.0;
  pending_n_ = 0;
}

VibratoFrame VibratoTracker::update(float f0_hz) noexcept {
  VibratoFrame out;
  const bool voiced = std::isfinite(f0_hz) && f0_hz > 0.0f;
  bool restart = false;
  bool note_change = false;  // a restart at a jump (bridged while on), not at a gap
  if (voiced) {
    const double c = 1200.0 * std::log2(static_cast<double>(f0_hz) / 440.0);
    // Two steps the same way through one value between two notes (the pitch frame that straddles a note
    // change) that together exceed jump_cents are a jump from the value before them, as one step would be: a
    // 170-cent step read as 73 + 77 cents went unseen, and a vibrato was dropped instead of bridged. (A
    // vibrato moves at most about 60 cents in two frames: 100 cents of extent at 10 Hz, 200 frames a second.)
    const double step = c - last_cents_, before = last_cents_ - prev_cents_;
    const double quarter = 0.25 * cfg_.jump_cents;
    if (have_last_ && gap_ <= cfg_.max_gap && have_prev_ && pending_n_ == 0 && cfg_.max_glitch > 0 &&
        std::fabs(step) <= cfg_.jump_cents && std::fabs(c - prev_cents_) > cfg_.jump_cents && step * before > 0.0 &&
        std::fabs(step) > quarter && std::fabs(before) > quarter)
      last_cents_ = prev_cents_;  // (the jump below holds the value before the straddling frame)
    if (!have_last_ || gap_ > cfg_.max_gap) {
      restart = true;
      an_.restart();
      an_.push(c);
      last_cents_ = c;
      pending_n_ = 0;
      have_prev_ = false;
    } else if (std::fabs(c - last_cents_) > cfg_.jump_cents) {
      // A jump: a note change, or a glitch of the f0 (an octave error, a
      // wrong lag) lasting a frame or two. Hold the last value until the new
      // one has lasted max_glitch + 1 frames.
      if (pending_n_ < cfg_.max_glitch) {
        if (pending_n_ == 0) {  // what a bridge starts from if this is a note change (before the held frames)
          before_rate_ = est_.valid ? est_.rate : 0.0;
          before_amp_ = est_.valid ? reported_amplitude() : 0.0;
        }
        glitch_[pending_n_++] = c;
        an_.push(last_cents_);
      } else {
        restart = true;
        note_change = true;
        an_.restart();
        for (int i = 0; i < pending_n_; ++i) an_.push(glitch_[i]);
        an_.push(c);
        last_cents_ = c;
        pending_n_ = 0;
        have_prev_ = false;
      }
    } else {
      pending_n_ = 0;  // what was pending were glitches
      an_.push(c);
      prev_cents_ = last_cents_;
      have_prev_ = true;
      last_cents_ = c;
    }
    have_last_ = true;
    gap_ = 0;
  } else {
    if (gap_ <= cfg_.max_gap) ++gap_;  // saturates: only gap_ > max_gap matters, and an int would overflow
    pending_n_ = 0;
    have_prev_ = false;  // (two steps are read only between voiced frames in a row)
    if (have_last_ && gap_ <= cfg_.max_gap && an_.run() > 0) {
      an_.push(last_cents_);
    } else if (an_.run() > 0) {
      an_.restart();
      restart = true;
    }
  }
  // a note change after held frames: the bridge starts from the analysis before them
  const bool held = note_change && cfg_.max_glitch > 0;
  refresh(restart, out, note_change, held ? before_rate_ : 0.0, held ? before_amp_ : 0.0);
  if (bridging()) out.extent = static_cast<float>(reported_amplitude());
  else if (est_.valid) out.extent = static_cast<float>(est_.amplitude);
  return out;
}

bool VibratoTracker::candidate() const noexcept {
  return !bridging() && est_.valid && est_.regularity >= cfg_.regularity_off && est_.amplitude >= cfg_.extent_off;
}

bool VibratoTracker::decide(bool suppress) noexcept {
  if (bridged(suppress, 1.0, cfg_.extent_off, cfg_)) return on_;
  const ModulationEstimate& e = est_;
  const bool trend_on = 2.0 * e.amplitude >= cfg_.trend_ratio * e.trend_range;
  const bool trend_off = 2.0 * e.amplitude < cfg_.trend_ratio_off * e.trend_range;
  const bool cond_on = !suppress && e.valid && e.bracketed && trend_on && e.regularity >= cfg_.regularity_on &&
                       e.amplitude >= cfg_.extent_on;
  const bool cond_off =
      suppress || !e.valid || trend_off || e.regularity < cfg_.regularity_off || e.amplitude < cfg_.extent_off;
  return settle(cond_on, cond_off, 1.0, cfg_.extent_off, cfg_);
}

VibratoFrame VibratoTracker::push(float f0_hz) noexcept {
  VibratoFrame out = update(f0_hz);
  out.on = decide(false);
  if (est_.valid || bridging()) out.extent = static_cast<float>(reported_extent());
  return out;
}

void VibratoTracker::process(const float* f0_hz, std::size_t n, VibratoFrame* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = push(f0_hz[i]);
}

}  // namespace rtc
