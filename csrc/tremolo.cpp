#include "tremolo.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rtc {

namespace {

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw std::invalid_argument(name + ": " + what);
}

const TremoloConfig& validated(double frame_rate, const TremoloConfig& c) {
  if (!(frame_rate >= 40.0 && frame_rate <= 2000.0))
    bad("frame_rate", "must be in [40, 2000] Hz (got " + std::to_string(frame_rate) + ")");
  if (!(c.depth_on > 0.0)) bad("depth_on", "must be > 0 dB (got " + std::to_string(c.depth_on) + ")");
  if (!(c.depth_off > 0.0 && c.depth_off <= c.depth_on))
    bad("depth_off", "must be in (0, depth_on] dB (got " + std::to_string(c.depth_off) + ")");
  if (!(c.regularity_on > 0.0 && c.regularity_on <= 1.0))
    bad("regularity_on", "must be in (0, 1] (got " + std::to_string(c.regularity_on) + ")");
  if (!(c.regularity_off >= 0.0 && c.regularity_off <= c.regularity_on))
    bad("regularity_off", "must be in [0, regularity_on] (got " + std::to_string(c.regularity_off) + ")");
  if (!(c.trend_ratio >= 0.0)) bad("trend_ratio", "must be >= 0 (got " + std::to_string(c.trend_ratio) + ")");
  if (!(c.onset_db > 0.0)) bad("onset_db", "must be > 0 dB (got " + std::to_string(c.onset_db) + ")");
  if (c.onset_frames < 1 || c.onset_frames > 64)
    bad("onset_frames", "must be in [1, 64] frames (got " + std::to_string(c.onset_frames) + ")");
  if (c.hold_frames < 1 || c.hold_frames > 1000)
    bad("hold_frames", "must be in [1, 1000] frames (got " + std::to_string(c.hold_frames) + ")");
  if (!(c.vibrato_explained > 0.0))
    bad("vibrato_explained", "must be > 0 (got " + std::to_string(c.vibrato_explained) + ")");
  if (c.vibrato_harmonics < 1 || c.vibrato_harmonics > ModulationAnalyzer::kMaxHarmonics)
    bad("vibrato_harmonics", "must be in [1, " + std::to_string(ModulationAnalyzer::kMaxHarmonics) + "] (got " +
                                 std::to_string(c.vibrato_harmonics) + ")");
  if (!(c.release_periods >= 1.0 && c.release_periods <= c.window_periods))
    bad("release_periods", "must be in [1, window_periods] (got " + std::to_string(c.release_periods) + ")");
  return c;
}

}  // namespace

TremoloTracker::TremoloTracker(double frame_rate, const TremoloConfig& config)
    : fs_(frame_rate),
      cfg_(validated(frame_rate, config)),
      an_(frame_rate, config.rate_min, config.rate_max, config.window_periods, config.rate_step) {}

void TremoloTracker::reset() noexcept {
  an_.restart();
  est_ = ModulationEstimate();
  recent_ = ModulationEstimate();
  skip_ = 0;
  on_ = false;
  pending_ = 0;
}

TremoloFrame TremoloTracker::update(float level_db, bool valid, bool restart) noexcept {
  TremoloFrame out;
  valid = valid && std::isfinite(level_db);
  bool re = false;
  if (!valid) {
    if (an_.run() > 0) re = true;
    an_.restart();
  } else {
    const std::size_t back = static_cast<std::size_t>(cfg_.onset_frames) - 1;
    if (restart) re = true;
    else if (an_.run() > back && level_db - an_.value(back) > cfg_.onset_db) re = true;
    if (re) an_.restart();
    an_.push(level_db);
  }
  out.restarted = re;
  if (re) {
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
    out.depth = static_cast<float>(2.0 * est_.amplitude);
    out.regularity = static_cast<float>(est_.regularity);
  }
  out.on = on_;
  return out;
}

bool TremoloTracker::candidate() const noexcept {
  return est_.valid && est_.regularity >= cfg_.regularity_off && 2.0 * est_.amplitude >= cfg_.depth_off;
}

double TremoloTracker::explained_by(double rate, int harmonics) noexcept {
  if (!est_.valid || !(est_.regularity > 0.0) || !(rate > 0.0)) return 0.0;
  const int win = std::max(est_.window, static_cast<int>(std::lround(3.0 * fs_ / rate)));
  return an_.harmonic_fit(rate, harmonics, win) / est_.regularity;
}

double TremoloTracker::explained_by_contour(const ModulationAnalyzer& other) noexcept {
  if (!est_.valid || !(est_.regularity > 0.0)) return 0.0;
  return an_.contour_fit(other, est_.window) / est_.regularity;
}

bool TremoloTracker::decide(bool suppress) noexcept {
  const ModulationEstimate& e = est_;
  const double depth = 2.0 * e.amplitude;
  const bool trend_ok = depth >= cfg_.trend_ratio * e.trend_range;
  const bool cond_on =
      !suppress && e.valid && trend_ok && e.regularity >= cfg_.regularity_on && depth >= cfg_.depth_on;
  bool cond_off = suppress || !e.valid || !trend_ok || e.regularity < cfg_.regularity_off || depth < cfg_.depth_off;
  // The newest release_periods periods alone: they show the end of a tremolo
  // before the whole window does, and its full depth while the window still
  // holds the plain part before it.
  recent_ = ModulationEstimate();
  if ((on_ || cond_on) && e.valid && e.regularity >= cfg_.regularity_off) {
    const int win = std::max(8, static_cast<int>(std::lround(cfg_.release_periods * fs_ / e.rate)));
    recent_ = an_.fit(e.rate, win);
    if (on_ && !cond_off && recent_.valid && 2.0 * recent_.amplitude < cfg_.depth_off) cond_off = true;
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

TremoloFrame TremoloTracker::push(float level_db, bool valid, bool restart, bool vibrato_on,
                                  float vibrato_rate) noexcept {
  TremoloFrame out = update(level_db, valid, restart);
  bool from_vibrato = false;
  if (vibrato_on && vibrato_rate > 0.0f && candidate()) {
    const double share = explained_by(vibrato_rate, cfg_.vibrato_harmonics);
    out.vibrato_share = static_cast<float>(share);
    from_vibrato = share >= cfg_.vibrato_explained;
  }
  out.suppressed = from_vibrato;
  out.on = decide(from_vibrato);
  if (est_.valid) out.depth = static_cast<float>(reported_depth());
  return out;
}

}  // namespace rtc
