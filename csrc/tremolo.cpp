#include "tremolo.h"

#include <cmath>
#include <cstddef>
#include <string>

#include "param_check.h"

namespace rtc {

namespace {

const TremoloConfig& validated(double frame_rate, const TremoloConfig& c) {
  check_modulation_thresholds(frame_rate, 40, "depth", c.depth_on, c.depth_off, "dB", c);
  if (!(c.trend_ratio >= 0.0 && std::isfinite(c.trend_ratio)))
    invalid_parameter("trend_ratio", "must be finite and >= 0 (got " + std::to_string(c.trend_ratio) + ")");
  require_positive("onset_db", c.onset_db, "dB");
  require_in_range("onset_frames", c.onset_frames, 1, 64, "frames");
  check_hold_frames(c);
  require_positive("vibrato_explained", c.vibrato_explained);
  require_in_range("vibrato_harmonics", c.vibrato_harmonics, 1, ModulationAnalyzer::kMaxHarmonics);
  check_release_periods(c);
  if (!(c.rate_stability >= 0.0 && c.rate_stability <= 1.0))
    invalid_parameter("rate_stability", "must be in [0, 1] (got " + std::to_string(c.rate_stability) + ")");
  if (!(c.stability_periods > 0.0 && c.stability_periods <= 2.0))
    invalid_parameter("stability_periods", "must be in (0, 2] (got " + std::to_string(c.stability_periods) + ")");
  return c;
}

}  // namespace

TremoloTracker::TremoloTracker(double frame_rate, const TremoloConfig& config)
    : ModulationTracker(frame_rate, validated(frame_rate, config)),
      cfg_(config),
      clean_(frame_rate, config.rate_min, config.rate_max, config.window_periods, config.rate_step),
      resid_(static_cast<std::size_t>(an_.longest_window())),
      rates_(static_cast<std::size_t>(std::ceil(config.stability_periods * frame_rate / config.rate_min)) + 2, 0.0f) {
  an_.set_crest_floor(config.crest_floor);  // validates crest_floor
  clean_.set_crest_floor(config.crest_floor);
}

bool TremoloTracker::rate_stable() const noexcept {
  if (!(cfg_.rate_stability > 0.0)) return true;
  if (!est_.valid || n_rates_ == 0) return false;
  const std::size_t back = static_cast<std::size_t>(std::lround(cfg_.stability_periods * fs_ / est_.rate));
  if (back >= n_rates_ || back >= rates_.size()) return false;
  const float past = rates_[(n_rates_ - 1 - back) % rates_.size()];
  return past > 0.0f && std::fabs(est_.rate - past) <= cfg_.rate_stability * est_.rate;
}

void TremoloTracker::reset() noexcept {
  clear();
  invalid_run_ = 0;
  clean_.restart();
  n_rates_ = 0;
}

TremoloFrame TremoloTracker::update(float level_db, bool valid, bool restart, double from_rate,
                                    double from_amplitude) noexcept {
  TremoloFrame out;
  valid = valid && std::isfinite(level_db);
  bool re = false;
  bool note = false;
  if (!valid) {
    if (an_.run() > 0) re = true;
    an_.restart();
    // a few invalid frames are an attack's noise (its pitch confidence drops): bridged; more end the bridge
    if (invalid_run_ < kBridgedInvalidS * fs_) {
      ++invalid_run_;
      note = true;
    } else {
      drop_bridge();
    }
  } else {
    invalid_run_ = 0;
    const std::size_t back = static_cast<std::size_t>(cfg_.onset_frames) - 1;
    if (restart) re = true;
    else if (an_.run() > back && level_db - an_.value(back) > cfg_.onset_db) re = true;
    if (re) an_.restart();
    an_.push(level_db);
    note = re;  // a note change or an onset: bridged while on (a gap or a silence is not)
  }
  refresh(re, out, note, from_rate, from_amplitude);
  rates_[n_rates_++ % rates_.size()] = est_.valid ? static_cast<float>(est_.rate) : 0.0f;
  if (bridging()) out.depth = static_cast<float>(reported_depth());
  else if (est_.valid) out.depth = static_cast<float>(2.0 * est_.crest);
  return out;
}

bool TremoloTracker::candidate() const noexcept {
  return !bridging() && est_.valid && est_.regularity >= cfg_.regularity_off && 2.0 * est_.amplitude >= cfg_.depth_off;
}

void TremoloTracker::conditions(const ModulationEstimate& e, bool suppress, double regularity_on, bool& cond_on,
                                bool& cond_off) const noexcept {
  const double depth = 2.0 * e.amplitude;
  const bool trend_ok = depth >= cfg_.trend_ratio * e.trend_range;
  cond_on = !suppress && e.valid && e.bracketed && trend_ok && e.regularity >= regularity_on && depth >= cfg_.depth_on;
  cond_off = suppress || !e.valid || !trend_ok || e.regularity < cfg_.regularity_off || depth < cfg_.depth_off;
}

bool TremoloTracker::decide(bool suppress) noexcept {
  if (bridged(suppress, 2.0, cfg_.depth_off, cfg_)) return on_;
  bool cond_on, cond_off;
  conditions(est_, suppress, cfg_.regularity_on, cond_on, cond_off);
  cond_on = cond_on && rate_stable();
  return settle(cond_on, cond_off, 2.0, cfg_.depth_off, cfg_);
}

bool TremoloTracker::decide_with(const ModulationEstimate& e, double regularity_on) noexcept {
  if (bridged(false, 2.0, cfg_.depth_off, cfg_)) return on_;
  bool cond_on, cond_off;
  conditions(e, false, regularity_on, cond_on, cond_off);
  return settle(cond_on, cond_off, 2.0, cfg_.depth_off, cfg_, false);
}

ModulationEstimate TremoloTracker::analyze_without(double vibrato_rate, int harmonics, const ModulationAnalyzer& f0,
                                                   double exclusion) noexcept {
  const int n = an_.residual(vibrato_rate, harmonics, &f0, static_cast<int>(resid_.size()), resid_.data());
  if (n <= 0) return ModulationEstimate();
  clean_.restart();
  for (int j = 0; j < n; ++j) clean_.push(resid_[static_cast<std::size_t>(j)]);
  ModulationEstimate e = clean_.analyze();
  if (e.valid && vibrato_rate > 0.0 && near_harmonic(e.rate, vibrato_rate, harmonics, exclusion)) e.valid = false;
  return e;
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
  if (est_.valid || bridging()) out.depth = static_cast<float>(reported_depth());
  return out;
}

}  // namespace rtc
