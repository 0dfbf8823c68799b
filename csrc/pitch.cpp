#include "pitch.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "denormals.h"
#include "lanes.h"
#include "param_check.h"

namespace rtc {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Periods shorter than this (input samples) are refined by windowed-sinc
// interpolation of the difference function; longer ones by a parabola.
constexpr int kSincBelow = 48;
// Half-width (lags) of the Lanczos kernel used for that interpolation.
constexpr int kLanczos = 6;
// Periods from this length (input samples) are searched on every other lag first.
constexpr int kCoarseStepFrom = 160;
// The coarse period's fractions 1/kMaxDivisor .. 1/2 are checked (see analyze()), each at
// 2 kSubSteps + 1 lags kSubStep coarse samples apart around it.
constexpr int kMaxDivisor = 4;
constexpr int kSubSteps = 2;
constexpr double kSubStep = 0.125;
// A coarse search with no whole-lag dip under the threshold reads its lowest dip between the lags, at
// kSubStep steps up to kBetweenSteps of them either side, when that dip is under kBetweenBelow times
// the threshold (a dip narrower than a lag: see analyze()).
constexpr int kBetweenSteps = 8;
constexpr double kBetweenBelow = 2.0;
// A fraction of the period above fmax makes the frame unvoiced (a tone above the range) when its dip is under
// this share of the threshold: a tone in range whose fundamental is much weaker than its second harmonic
// dips at half its period too, less deeply (its odd harmonics differ there).
constexpr double kOutOfRangeShare = 0.5;
// Cutoff of the high-pass before the level: DC steps and infrasound (a stage's rumble, wind or handling on a
// microphone) are no level the ear hears, and a 6 Hz rumble under a steady tone read as a tremolo.
constexpr double kLevelHighpassHz = 20.0;
// Least share of a frame's energy in the coarse search's band for it to be voiced.
constexpr double kCoarseShare = 0.1;

double mean_square(const float* x, int n) noexcept {
  double acc = 0.0;
  for (int i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * x[i];
  return n > 0 ? acc / n : 0.0;
}

// Sum of squared differences x[j] - x[j + tau] over j in [0, w). Eight
// independent lanes (see lanes.h).
inline double diff_energy(const float* x, int w, int tau) noexcept {
  const float* a = x;
  const float* b = x + tau;
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int j = 0;
  for (; j + 8 <= w; j += 8) {
    for (int k = 0; k < 8; ++k) {
      const float d = a[j + k] - b[j + k];
      acc[k] += d * d;
    }
  }
  for (int k = 0; j < w; ++j, ++k) {
    const float d = a[j] - b[j];
    acc[k] += d * d;
  }
  return lane_sum(acc);
}

// Offset of the extremum of the parabola through (-1, a), (0, b), (1, c), in [-1, 1];
// 0 when there is none or it is not a number (a = c = inf gives inf - inf: the
// offset must stay finite, since the period it refines is converted to an int).
inline double parabolic_offset(double a, double b, double c) noexcept {
  const double den = a - 2.0 * b + c;
  if (!(den > 0.0)) return 0.0;
  const double d = 0.5 * (a - c) / den;
  return d >= -1.0 ? std::min(d, 1.0) : (d < -1.0 ? -1.0 : 0.0);
}

// Value at that extremum.
inline double parabolic_value(double a, double b, double c) noexcept {
  const double d = parabolic_offset(a, b, c);
  return d == 0.0 ? b : b - 0.25 * (a - c) * d;
}

// The 2 kLanczos weights of the Lanczos kernel at t - first, t - first - 1, ..., t - first - 2 kLanczos + 1
// (t in [first + kLanczos - 1, first + kLanczos): the taps around t), from one sine and cosine of the
// fraction: sin(pi (x - j)) = (-1)^j sin(pi x), and sin(pi (x - j) / a) by the angle difference with
// tabled sines and cosines of pi j / a.
inline void lanczos_taps(double t, int first, double* w) noexcept {
  constexpr int kTaps = 2 * kLanczos;
  static const struct Table {
    double c[kTaps], s[kTaps];
    Table() noexcept {
      for (int j = 0; j < kTaps; ++j) {
        c[j] = std::cos(kPi * j / kLanczos);
        s[j] = std::sin(kPi * j / kLanczos);
      }
    }
  } table;
  const double x0 = t - first;
  const double s0 = std::sin(kPi * x0);
  const double sa = std::sin(kPi * x0 / kLanczos), ca = std::cos(kPi * x0 / kLanczos);
  for (int j = 0; j < kTaps; ++j) {
    const double x = x0 - j;
    if (std::fabs(x) < 1e-12) {
      w[j] = 1.0;
    } else if (std::fabs(x) >= kLanczos) {
      w[j] = 0.0;
    } else {
      const double px = kPi * x;
      const double s1 = (j & 1) ? -s0 : s0;
      const double s2 = sa * table.c[j] - ca * table.s[j];
      w[j] = kLanczos * s1 * s2 / (px * px);
    }
  }
}

}  // namespace

PitchTracker::PitchTracker(double sample_rate, int hop_length, double fmin, double fmax,
                           double threshold, double silence_db, double level_window_s)
    : sr_(sample_rate),
      hop_(hop_length),
      fmin_(fmin),
      fmax_(fmax),
      threshold_(threshold),
      silence_db_(silence_db) {
  if (!(sample_rate >= 4000.0 && sample_rate <= 384000.0))
    invalid_parameter("sample_rate", "must be in [4000, 384000] Hz (got " + std::to_string(sample_rate) + ")");
  if (hop_length < 1 || hop_length > sample_rate / 10.0)
    invalid_parameter("hop_length", "must be in [1, sample_rate / 10] samples (got " + std::to_string(hop_length) + ")");
  if (!(fmax > 0.0) || !(fmax <= sample_rate / 4.0))
    invalid_parameter("fmax", "must be in (0, sample_rate / 4] Hz (got " + std::to_string(fmax) + ")");
  if (!(fmin >= 20.0) || !(fmin < fmax))
    invalid_parameter("fmin", "must be >= 20 Hz and below fmax (got " + std::to_string(fmin) + ")");
  if (!(threshold > 0.0 && threshold < 1.0))
    invalid_parameter("threshold", "must be in (0, 1) (got " + std::to_string(threshold) + ")");
  if (!(silence_db >= -120.0 && silence_db <= 0.0))
    invalid_parameter("silence_db", "must be in [-120, 0] dBFS (got " + std::to_string(silence_db) + ")");
  if (!(level_window_s >= 0.002 && level_window_s <= 0.2))
    invalid_parameter("level_window", "must be in [0.002, 0.2] s (got " + std::to_string(level_window_s) + ")");

  // Coarse rate: at least 11025 Hz and 3 * fmax, reached by an integer decimation.
  const double min_int = std::max(11025.0, 3.0 * fmax);
  dec_ = std::max(1, static_cast<int>(std::floor(sample_rate / min_int)));
  sr_int_ = sample_rate / dec_;

  // Anti-alias low-pass (Hann-windowed sinc, about 44 dB of stop-band
  // rejection, plenty for a period search), cutoff 0.35 of the coarse rate,
  // transition up to its Nyquist frequency.
  if (dec_ > 1) {
    int taps = static_cast<int>(std::ceil(3.3 * dec_ / 0.15));
    if (taps % 2 == 0) ++taps;
    const double fc = 0.35 / dec_;  // cycles per input sample
    const double mid = 0.5 * (taps - 1);
    std::vector<double> h(static_cast<std::size_t>(taps));
    double sum = 0.0;
    for (int k = 0; k < taps; ++k) {
      const double t = k - mid;
      const double sinc = t == 0.0 ? 2.0 * fc : std::sin(2.0 * kPi * fc * t) / (kPi * t);
      const double u = static_cast<double>(k) / (taps - 1);
      const double w = 0.5 - 0.5 * std::cos(2.0 * kPi * u);
      h[static_cast<std::size_t>(k)] = sinc * w;
      sum += sinc * w;
    }
    fir_.resize(static_cast<std::size_t>(taps));
    for (int k = 0; k < taps; ++k) fir_[static_cast<std::size_t>(k)] = static_cast<float>(h[static_cast<std::size_t>(k)] / sum);
  }

  // Coarse YIN geometry (decimated samples): window of one period of fmin.
  tau_min_c_ = std::max(2, static_cast<int>(std::floor(sr_int_ / fmax)));
  tau_max_c_ = static_cast<int>(std::ceil(sr_int_ / fmin));
  win_c_ = tau_max_c_;
  span_c_ = win_c_ + tau_max_c_ + 2;
  dring_len_ = static_cast<std::size_t>(span_c_);
  dring_.assign(2 * dring_len_, 0.0f);
  dc_.assign(static_cast<std::size_t>(tau_max_c_ + 2), 0.0);
  cmnd_.assign(static_cast<std::size_t>(tau_max_c_ + 2), 1.0);

  // Refinement geometry (input samples).
  win_f_max_ = static_cast<int>(std::ceil(sample_rate / fmin));
  win_f_min_ = std::min(win_f_max_, static_cast<int>(std::lround(0.0125 * sample_rate)));
  tau_max_f_ = static_cast<int>(std::ceil(1.05 * sample_rate / fmin)) + 4 * dec_ + 2 * kLanczos + 16;
  span_f_ = static_cast<std::size_t>(win_f_max_ + tau_max_f_ + 2);
  dref_.assign(static_cast<std::size_t>(tau_max_f_ + 2), 0.0);

  level_len_ = std::max(8, static_cast<int>(std::lround(level_window_s * sample_rate)));
  level_win_.resize(static_cast<std::size_t>(level_len_));
  level_win_sum_ = 0.0;
  for (int j = 0; j < level_len_; ++j) {
    const double w = 0.5 - 0.5 * std::cos(2.0 * kPi * (j + 1) / (level_len_ + 1));
    level_win_[static_cast<std::size_t>(j)] = w;
    level_win_sum_ += w;
  }
  lring_.assign(2 * static_cast<std::size_t>(level_len_), 0.0f);
  {
    const double k = std::tan(kPi * kLevelHighpassHz / sample_rate);
    const double norm = 1.0 / (1.0 + std::sqrt(2.0) * k + k * k);
    hp_b0_ = norm;
    hp_b1_ = -2.0 * norm;
    hp_b2_ = norm;
    hp_a1_ = 2.0 * (k * k - 1.0) * norm;
    hp_a2_ = (1.0 - std::sqrt(2.0) * k + k * k) * norm;
  }

  // the coarse search runs about every 10 ms
  coarse_every_ = std::max(1, static_cast<int>(std::lround(0.01 * sample_rate / hop_length)));

  ring_len_ = std::max({span_f_, fir_.size(), static_cast<std::size_t>(level_len_)});
  ring_.assign(2 * ring_len_, 0.0f);
}

std::size_t PitchTracker::max_frames(std::size_t n_samples) const noexcept {
  return (static_cast<std::size_t>(hop_phase_) + n_samples) / static_cast<std::size_t>(hop_);
}

void PitchTracker::reset() noexcept {
  std::fill(ring_.begin(), ring_.end(), 0.0f);
  std::fill(dring_.begin(), dring_.end(), 0.0f);
  std::fill(lring_.begin(), lring_.end(), 0.0f);
  ring_pos_ = 0;
  dring_pos_ = 0;
  lring_pos_ = 0;
  hp_z1_ = hp_z2_ = 0.0;
  total_ = 0;
  dcount_ = 0;
  nonfinite_.reset();
  hop_phase_ = 0;
  coarse_valid_ = false;
  coarse_age_ = 0;
  last_period_ = 0.0;
}

const float* PitchTracker::recent(std::size_t len) const noexcept {
  // the newest ring_len_ samples are ring_[ring_pos_ .. ring_pos_ + ring_len_)
  return ring_.data() + ring_pos_ + ring_len_ - len;
}

const float* PitchTracker::recent_dec(std::size_t len) const noexcept {
  return dring_.data() + dring_pos_ + dring_len_ - len;
}

float PitchTracker::fir_output() const noexcept {
  // y = sum_k h[k] x[newest - k]; the filter is symmetric, so this is a plain dot product.
  return static_cast<float>(dot8(fir_.data(), recent(fir_.size()), static_cast<int>(fir_.size())));
}

std::size_t PitchTracker::process(const float* x, std::size_t n, PitchFrame* out) noexcept {
  const DenormalsOff denormals_off;  // (see denormals.h)
  std::size_t n_out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    float v = x[i];
    if (!std::isfinite(v)) {
      v = 0.0f;
      nonfinite_.add(1);
    }
    ring_[ring_pos_] = v;
    ring_[ring_pos_ + ring_len_] = v;
    if (++ring_pos_ == ring_len_) ring_pos_ = 0;
    {
      const double y = hp_b0_ * v + hp_z1_;
      hp_z1_ = hp_b1_ * v - hp_a1_ * y + hp_z2_;
      hp_z2_ = hp_b2_ * v - hp_a2_ * y;
      // (a state decaying in silence would reach the denormal range)
      if (std::fabs(hp_z1_) < 1e-30 && std::fabs(hp_z2_) < 1e-30) hp_z1_ = hp_z2_ = 0.0;
      const std::size_t len = static_cast<std::size_t>(level_len_);
      lring_[lring_pos_] = lring_[lring_pos_ + len] = static_cast<float>(y);
      if (++lring_pos_ == len) lring_pos_ = 0;
    }
    ++total_;
    if (total_ % static_cast<std::uint64_t>(dec_) == 0) {
      const float y = dec_ > 1 ? fir_output() : v;
      dring_[dring_pos_] = y;
      dring_[dring_pos_ + dring_len_] = y;
      if (++dring_pos_ == dring_len_) dring_pos_ = 0;
      ++dcount_;
    }
    if (++hop_phase_ == hop_) {
      hop_phase_ = 0;
      analyze(out[n_out++]);
    }
  }
  return n_out;
}

double PitchTracker::diff_at(int tau) const noexcept {
  // 1 - normalized cross-correlation of the window with its copy `tau` samples
  // later: insensitive to a level change between the two (a tremolo, a decay),
  // unlike the plain difference function.
  const double r = dot8(xf_, xf_ + tau, win_f_);
  const double et = dot8(xf_ + tau, xf_ + tau, win_f_);
  const double den = std::sqrt(e0_f_ * et);
  return den > 0.0 ? 1.0 - r / den : 1.0;
}

double PitchTracker::refine(double coarse, bool periodic) noexcept {
  // in range before any conversion to int (the lags below are bounded by tau_max_f_ anyway)
  coarse = coarse >= 2.0 ? std::min(coarse, static_cast<double>(tau_max_f_)) : 2.0;
  win_f_ = std::clamp(static_cast<int>(std::lround(2.0 * coarse)), win_f_min_, win_f_max_);
  // Search every lag within `reach` of the coarse period: the coarse
  // resolution (dec_ samples) plus 4 % for the pitch moving between the
  // coarse window and this shorter, more recent one. The span ends at the
  // newest sample, so the analysis is as recent as the longest lag allows.
  // The lags also stay within [0.75, 1.5] times the coarse period: for a
  // period of a few samples the reach alone spans two periods, and the
  // minimum at twice the period (an octave down) would win.
  const int reach = 2 * dec_ + 2 + static_cast<int>(std::ceil(0.02 * coarse));
  const int m0 = std::clamp(static_cast<int>(std::lround(coarse)), 3, tau_max_f_ - reach - kLanczos - 2);
  const int lo = std::max({2, m0 - reach, std::min(m0 - 1, static_cast<int>(std::ceil(0.75 * coarse)))});
  const int hi = std::min(m0 + reach, std::max(m0 + 1, static_cast<int>(std::floor(1.5 * coarse))));
  const int lag_cap = hi + kLanczos + 2;
  xf_ = recent(static_cast<std::size_t>(win_f_ + lag_cap + 1));
  e0_f_ = dot8(xf_, xf_, win_f_);
  // Long periods are searched on every other lag first (the correlation peak
  // is many samples wide there), then around the best one.
  const int step = m0 >= kCoarseStepFrom ? 2 : 1;
  double et = dot8(xf_ + lo, xf_ + lo, win_f_);  // energy of the lagged window
  int m = lo;
  double best = 2.0;
  for (int t = lo; t <= hi; ++t) {
    if (t > lo) {
      const double a = xf_[t - 1], b = xf_[t - 1 + win_f_];
      et += b * b - a * a;
    }
    double d = 2.0;
    if ((t - lo) % step == 0) {
      const double r = dot8(xf_, xf_ + t, win_f_);
      const double den = std::sqrt(e0_f_ * std::max(et, 0.0));
      d = den > 0.0 ? 1.0 - r / den : 1.0;
      if (d < best) {
        best = d;
        m = t;
      }
    }
    dref_[static_cast<std::size_t>(t - lo)] = d;
  }
  if (step > 1 && periodic && !(best < threshold_)) {
    // The coarse search found the sound periodic but no searched lag is: a
    // flat spectrum (a pulse train) has a correlation peak about one lag
    // wide, which every other lag can miss altogether. The other lags within
    // the coarse resolution of the coarse period are searched too.
    const int near = dec_ + 1;
    for (int t = std::max(lo, m0 - near); t <= std::min(hi, m0 + near); ++t) {
      if ((t - lo) % step == 0) continue;
      const double d = diff_at(t);
      dref_[static_cast<std::size_t>(t - lo)] = d;
      if (d < best) {
        best = d;
        m = t;
      }
    }
  }
  if (step > 1) {
    for (int t = m - 1; t <= m + 1; t += 2) {
      if (t < lo || t > hi) continue;
      const double d = diff_at(t);
      dref_[static_cast<std::size_t>(t - lo)] = d;
      if (d < best) {
        best = d;
        m = t;
      }
    }
  }
  // no lag gave a number (the windows' energies overflowed): keep the coarse period
  if (!(best < 2.0)) return coarse;
  const double dm = best;
  auto known = [&](int t) {
    const double v = (t >= lo && t <= hi) ? dref_[static_cast<std::size_t>(t - lo)] : 2.0;
    return v < 2.0 ? v : diff_at(t);
  };
  const double dl = known(m - 1);
  const double dr = known(m + 1);
  if (m >= kSincBelow) return m + parabolic_offset(dl, dm, dr);
  // Short period: the correlation of a band-limited signal is band-limited in
  // tau, so interpolate the distance with a Lanczos kernel on a 1/16-sample grid over [m-1, m+1]
  // and refine the grid minimum with a parabola.
  const int lo2 = m - kLanczos - 1, hi2 = m + kLanczos + 1;
  // A period under kLanczos + 2 samples (a high note at a low sample rate) needs lags under 1: the distance
  // is even in the lag and 0 at lag 0 (the window against itself), so they are mirrored rather than the
  // parabola taken instead (up to 17 cents off at periods of 4-7 samples).
  for (int t = lo2; t <= hi2; ++t) dref_[static_cast<std::size_t>(t - lo2)] = t == 0 ? 0.0 : diff_at(t < 0 ? -t : t);
  auto interp = [&](double t) {
    double acc = 0.0, w[2 * kLanczos];
    const int i0 = static_cast<int>(std::floor(t)) - kLanczos + 1;
    lanczos_taps(t, i0, w);
    for (int j = 0; j < 2 * kLanczos; ++j) acc += dref_[static_cast<std::size_t>(i0 + j - lo2)] * w[j];
    return acc;
  };
  constexpr int kSteps = 16;
  double best_t = m, best_v = dm;
  double prev = interp(m - 1.0), cur = 0.0;
  for (int s = 1; s < 2 * kSteps; ++s) {
    const double t = m - 1.0 + static_cast<double>(s) / kSteps;
    cur = interp(t);
    if (cur < best_v) {
      best_v = cur;
      best_t = t;
    }
    (void)prev;
    prev = cur;
  }
  const double h = 1.0 / kSteps;
  const double a = interp(best_t - h), c = interp(best_t + h);
  return best_t + h * parabolic_offset(a, best_v, c);
}

double PitchTracker::lowest_between(double tau, int steps, double& at) noexcept {
  double lowest = 2.0;
  at = tau;
  for (int k = -steps; k <= steps; ++k) {
    const double t = tau + k * kSubStep;
    const double v = cmnd_between(t);
    if (v < lowest) {
      lowest = v;
      at = t;
    }
  }
  return lowest;
}

double PitchTracker::cmnd_between(double tau) noexcept {
  // The difference function of a band-limited signal is band-limited in the
  // lag and even in it (0 at lag 0): interpolated with a Lanczos kernel from
  // the coarse search's whole-lag values, mirrored below lag 0. The
  // cumulative mean takes the whole lags up to tau and the last fraction.
  const int i0 = static_cast<int>(std::floor(tau));
  const int need = i0 + kLanczos;
  if (tau < 1.0 || need > tau_max_c_ + 1) return 2.0;
  if (dc_known_ < need) {
    // the coarse search stopped at its first dip: the lags after it are computed now
    const float* xs = recent_dec(static_cast<std::size_t>(span_c_));
    for (int t = dc_known_ + 1; t <= need; ++t) dc_[static_cast<std::size_t>(t)] = diff_energy(xs, win_c_, t);
    dc_known_ = need;
  }
  double d = 0.0, w[2 * kLanczos];
  const int first = i0 - kLanczos + 1;
  lanczos_taps(tau, first, w);
  for (int j = 0; j < 2 * kLanczos; ++j) {
    const int i = first + j;
    d += dc_[static_cast<std::size_t>(i < 0 ? -i : i)] * w[j];
  }
  d = std::max(d, 0.0);
  double cum = (tau - i0) * d;
  for (int i = 1; i <= i0; ++i) cum += dc_[static_cast<std::size_t>(i)];
  return cum > 0.0 ? d * tau / cum : 2.0;
}

bool PitchTracker::in_range(double period) const noexcept {
  return period >= 0.97 * sr_ / fmax_ && period <= 1.03 * sr_ / fmin_;
}

void PitchTracker::analyze(PitchFrame& f) noexcept {
  // Level: Hann-weighted mean square of the last level_len_ high-passed samples.
  {
    const float* x = lring_.data() + lring_pos_;
    double acc = 0.0;
    for (int j = 0; j < level_len_; ++j) {
      const double v = x[j];
      acc += level_win_[static_cast<std::size_t>(j)] * v * v;
    }
    const double ms = acc / level_win_sum_;
    f.level_db = static_cast<float>(std::max(-120.0, 10.0 * std::log10(std::max(ms, 1e-12))));
  }
  f.f0_hz = 0.0f;
  f.confidence = 0.0f;
  f.period = 0.0f;
  f.voiced = false;
  if (f.level_db < silence_db_ || total_ < static_cast<std::uint64_t>(span_f_) ||
      dcount_ < static_cast<std::uint64_t>(span_c_)) {
    coarse_valid_ = false;
    return;
  }
  if (coarse_valid_ && coarse_age_ + 1 < coarse_every_) {
    // Between coarse searches: refine around the previous frame's period and
    // keep the previous voicing decision and confidence.
    ++coarse_age_;
    const double period = refine(last_period_, coarse_voiced_);
    last_period_ = period;
    const bool voiced = coarse_voiced_ && in_range(period);
    f.period = static_cast<float>(period);
    f.confidence = static_cast<float>(std::clamp(1.0 - coarse_ap_, 0.0, 1.0));
    f.voiced = voiced;
    f.f0_hz = voiced && period > 0.0 ? static_cast<float>(sr_ / period) : 0.0f;
    return;
  }

  // Coarse YIN on the decimated span: the first local minimum of the
  // normalized difference whose interpolated value is under the threshold;
  // otherwise the lowest one (unvoiced).
  const float* xs = recent_dec(static_cast<std::size_t>(span_c_));
  double cum = 0.0;
  dc_[0] = 0.0;
  cmnd_[0] = 1.0;
  int found = -1;
  int best_tau = -1;
  double best_val = 1e300;
  for (int tau = 1; tau <= tau_max_c_ + 1; ++tau) {
    const double d = diff_energy(xs, win_c_, tau);
    dc_[static_cast<std::size_t>(tau)] = d;
    cum += d;
    cmnd_[static_cast<std::size_t>(tau)] = cum > 0.0 ? d * tau / cum : 1.0;
    const int c = tau - 1;  // candidate whose both neighbours are known
    if (c < tau_min_c_ || c < 1) continue;
    const double l = cmnd_[static_cast<std::size_t>(c - 1)], m = cmnd_[static_cast<std::size_t>(c)],
                 r = cmnd_[static_cast<std::size_t>(c + 1)];
    if (!(m < l && m <= r)) continue;
    const double v = std::max(0.0, parabolic_value(l, m, r));
    if (v < threshold_) {
      found = c;
      break;
    }
    if (v < best_val) {
      best_val = v;
      best_tau = c;
    }
  }
  dc_known_ = found >= 0 ? found + 1 : tau_max_c_ + 1;
  if (found < 0 && !std::isfinite(cum)) {
    // the differences overflowed (samples far beyond full scale): no period can be read
    coarse_valid_ = false;
    return;
  }
  bool voiced = found >= 0;
  int t0 = voiced ? found : best_tau;
  if (t0 < 0) {
    // no local minimum at all in range: take the lowest value
    t0 = tau_min_c_;
    for (int tau = tau_min_c_; tau <= tau_max_c_; ++tau)
      if (cmnd_[static_cast<std::size_t>(tau)] < cmnd_[static_cast<std::size_t>(t0)]) t0 = tau;
    t0 = std::clamp(t0, 2, tau_max_c_);
  }
  double ap = std::max(0.0, parabolic_value(cmnd_[static_cast<std::size_t>(t0 - 1)], cmnd_[static_cast<std::size_t>(t0)],
                                            cmnd_[static_cast<std::size_t>(t0 + 1)]));
  const double off = parabolic_offset(dc_[static_cast<std::size_t>(t0 - 1)], dc_[static_cast<std::size_t>(t0)],
                                      dc_[static_cast<std::size_t>(t0 + 1)]);
  double coarse_tau = t0 + off;
  // A bright tone at a low sample rate (strong harmonics near the Nyquist
  // frequency, no low-pass before the search) can have a dip narrower than a
  // lag at its period and at each multiple of it: every whole lag reads it
  // over the threshold and the parabola through three of them cannot reach
  // it. When the lowest whole-lag dip is near the threshold, it is read
  // between the lags (the normalized difference interpolated); under the
  // threshold there, the frame is voiced with that dip's period, which the
  // check of its fractions below may still shorten to the first dip.
  if (!voiced && best_tau > 0 && best_val < kBetweenBelow * threshold_) {
    double best_t = 0.0;
    const double best_v = lowest_between(best_tau, kBetweenSteps, best_t);
    // (a dip read just outside the searched lags would give an f0 beyond fmin..fmax: the frame stays unvoiced)
    if (best_v < threshold_ && best_t >= tau_min_c_ && best_t <= tau_max_c_) {
      voiced = true;
      ap = best_v;
      coarse_tau = best_t;
    }
  }
  // A sound whose energy lies mostly above the coarse band (a lone tone of 5-12 kHz, a feedback whistle)
  // survives the anti-alias filter as a clean alias that YIN, deaf to level, reads as a pitch in range: such a
  // frame is unvoiced (under kCoarseShare of the energy in the band the search reads).
  if (voiced && dec_ > 1) {
    const int n_full = std::min(win_c_ * dec_, static_cast<int>(span_f_));
    const double full = mean_square(recent(static_cast<std::size_t>(n_full)), n_full);
    const double coarse = mean_square(xs + span_c_ - win_c_, win_c_);
    if (coarse < kCoarseShare * full) voiced = false;
  }
  double period = refine(coarse_tau * dec_, voiced);
  // The coarse search reads the difference at whole lags only. When the
  // sound has strong harmonics near the Nyquist frequency (a bright tone at a
  // low sample rate, where no low-pass precedes it), the dip at the period
  // is narrower than a lag, falls between two lags and stays over the
  // threshold, and the search stops at a multiple of the period (an octave or
  // more down). The refined period's fractions are measured between the
  // lags (the normalized difference interpolated), shortest first, and the
  // first under the threshold is refined and taken: YIN's first dip. A
  // fraction out of range (a tone above fmax, whose period's multiple is the
  // first in range) that dips under kOutOfRangeShare of the threshold makes
  // the frame unvoiced: the sound is periodic, but at a pitch outside
  // fmin..fmax, and the multiple would read it an octave or more down.
  // Fractions shorter than two coarse samples are not read (a tone above
  // about a third of the coarse rate still reads a multiple of its period).
  if (voiced) {
    const double shortest = 0.97 * sr_ / fmax_;
    for (int n = kMaxDivisor; n >= 2; --n) {
      const double fraction = period / (n * dec_);  // in coarse samples
      const bool within = period / n >= shortest;
      if (!within && fraction < 2.0) continue;  // too short a lag to read
      double best_tau = 0.0;
      const double best_v = lowest_between(fraction, kSubSteps, best_tau);
      if (best_v < (within ? threshold_ : kOutOfRangeShare * threshold_)) {
        if (within)
          period = refine(best_tau * dec_, true);
        else
          voiced = false;
        break;
      }
    }
  }
  // (the refinement can move a period past the range's ends: a tone of 8 kHz at 48 kHz read 2666 Hz)
  if (voiced && !in_range(period)) voiced = false;
  coarse_valid_ = true;
  coarse_age_ = 0;
  coarse_ap_ = ap;
  coarse_voiced_ = voiced;
  last_period_ = period;
  f.period = static_cast<float>(period);
  f.confidence = static_cast<float>(std::clamp(1.0 - ap, 0.0, 1.0));
  f.voiced = voiced;
  f.f0_hz = voiced && period > 0.0 ? static_cast<float>(sr_ / period) : 0.0f;
}

}  // namespace rtc
