#include "tremolo.h"

#include <cmath>
#include <cstddef>
#include <string>

#include "param_check.h"

namespace rtc {

namespace {

const TremoloConfig& validated(double frame_rate, const TremoloConfig& c) {
  check_modulation_thresholds(frame_rate, 40, "depth", c.depth_on, c.depth_off, "dB", c);
  if (!(c.trend_ratio >= 0.0))
    invalid_parameter("trend_ratio", "must be >= 0 (got " + std::to_string(c.trend_ratio) + ")");
  require_positive("onset_db", c.onset_db, "dB");
  require_in_range("onset_frames", c.onset_frames, 1, 64, "frames");
  check_hold_frames(c);
  require_positive("vibrato_explained", c.vibrato_explained);
  require_in_range("vibrato_harmonics", c.vibrato_harmonics, 1, ModulationAnalyzer::kMaxHarmonics);
  check_release_periods(c);
  return c;
}

}  // namespace

TremoloTracker::TremoloTracker(double frame_rate, const TremoloConfig& config)
    : ModulationTracker(frame_rate, validated(frame_rate, config)), cfg_(config) {}

void TremoloTracker::reset() noexcept { clear(); }

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
  // A given restart analyzes at once; an onset or an invalid frame waits for the schedule.
  refresh(re, restart, out);
  if (est_.valid) out.depth = static_cast<float>(2.0 * est_.amplitude);
  return out;
}

bool TremoloTracker::candidate() const noexcept {
  return est_.valid && est_.regularity >= cfg_.regularity_off && 2.0 * est_.amplitude >= cfg_.depth_off;
}

bool TremoloTracker::decide(bool suppress) noexcept {
  const ModulationEstimate& e = est_;
  const double depth = 2.0 * e.amplitude;
  const bool trend_ok = depth >= cfg_.trend_ratio * e.trend_range;
  const bool cond_on =
      !suppress && e.valid && trend_ok && e.regularity >= cfg_.regularity_on && depth >= cfg_.depth_on;
  const bool cond_off =
      suppress || !e.valid || !trend_ok || e.regularity < cfg_.regularity_off || depth < cfg_.depth_off;
  return settle(cond_on, cond_off, 2.0, cfg_.depth_off, cfg_);
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
