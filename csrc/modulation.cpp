#include "modulation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lanes.h"
#include "param_check.h"

namespace rtc {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Share of a candidate's window that the contour must cover for the candidate
// to be fitted over the contour alone (see ModulationAnalyzer::analyze()).
constexpr double kPartialWindow = 0.8;

// Solves the symmetric positive system A x = b of size n (row-major)
// by Gaussian elimination with partial pivoting; A and b are overwritten.
// Returns false when A is singular.
bool solve(double* a, double* b, int n) noexcept {
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[p * n + c])) p = r;
    if (!(std::fabs(a[p * n + c]) > 1e-300)) return false;
    if (p != c) {
      for (int k = 0; k < n; ++k) std::swap(a[c * n + k], a[p * n + k]);
      std::swap(b[c], b[p]);
    }
    for (int r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / a[c * n + c];
      for (int k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
      b[r] -= f * b[c];
    }
  }
  for (int c = n - 1; c >= 0; --c) {
    double s = b[c];
    for (int k = c + 1; k < n; ++k) s -= a[c * n + k] * b[k];
    b[c] = s / a[c * n + c];
  }
  return true;
}

// Inverse of an n x n matrix (n <= 5) by solving for each unit vector.
bool invert(const double* a, double* inv, int n) {
  for (int col = 0; col < n; ++col) {
    double m[121];
    double e[11];
    std::copy(a, a + n * n, m);
    for (int k = 0; k < n; ++k) e[k] = k == col ? 1.0 : 0.0;
    if (!solve(m, e, n)) return false;
    for (int k = 0; k < n; ++k) inv[k * n + col] = e[k];
  }
  return true;
}

// Fills u, u^2, cos, sin (rate in Hz, frame rate fs) at `m` frames of a
// window of `len`, every `stride`-th one ending at the newest (positions
// len-1 - stride*(m-1-i); stride 1 and m = len: the whole window). The
// rotation recurrence is re-anchored every 64 values.
void fill_basis(double rate, int len, int stride, int m, double fs, double* u, double* u2, double* c,
                double* s) noexcept {
  const double mid = 0.5 * (len - 1);
  const double scale = len > 1 ? 1.0 / mid : 1.0;
  const double w = 2.0 * kPi * rate / fs;
  const int j0 = len - 1 - stride * (m - 1);
  for (int i = 0; i < m; ++i) {
    const double uj = (j0 + stride * i - mid) * scale;
    u[i] = uj;
    u2[i] = uj * uj;
  }
  const double ws = w * stride;
  const double cw = std::cos(ws), sw = std::sin(ws);
  for (int i0 = 0; i0 < m; i0 += 64) {
    const double ph = w * (j0 + stride * i0 - mid);
    double cr = std::cos(ph), sr = std::sin(ph);
    const int i1 = std::min(m, i0 + 64);
    for (int i = i0; i < i1; ++i) {
      c[i] = cr;
      s[i] = sr;
      const double nc = cr * cw - sr * sw;
      sr = sr * cw + cr * sw;
      cr = nc;
    }
  }
}

// Normal matrix of the columns [1, u, u^2, c, s] (row-major 5x5).
void normal_matrix(const double* u, const double* u2, const double* c, const double* s, int len,
                   double* g) noexcept {
  const double* cols[5] = {nullptr, u, u2, c, s};
  for (int a = 0; a < 5; ++a) {
    for (int b = a; b < 5; ++b) {
      double acc = 0.0;
      for (int j = 0; j < len; ++j) {
        const double va = a == 0 ? 1.0 : cols[a][j];
        const double vb = b == 0 ? 1.0 : cols[b][j];
        acc += va * vb;
      }
      g[a * 5 + b] = acc;
      g[b * 5 + a] = acc;
    }
  }
}

// Least-squares fits of a model of p columns (p <= kMaxColumns) whose first three are
// the trend 1, u, u^2, and of the trend alone, from the normal equations: the
// upper triangle of the p x p normal matrix g (row-major), the projections r
// and the sum of squares yy of the data. Writes the model's coefficients to
// beta (p values) and its residual sum of squares to ss_full, the trend's to
// ss_trend. Returns false when either system is singular.
constexpr int kMaxColumns = 16;

bool fit_with_trend(const double* g, const double* r, double yy, int p, double* beta, double& ss_full,
                    double& ss_trend) noexcept {
  double a[kMaxColumns * kMaxColumns];
  for (int i = 0; i < p; ++i)
    for (int k = 0; k < p; ++k) a[i * p + k] = i <= k ? g[i * p + k] : g[k * p + i];
  double a3[9], b3[3];
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 3; ++k) a3[i * 3 + k] = a[i * p + k];
    b3[i] = r[i];
  }
  std::copy(r, r + p, beta);
  if (!solve(a, beta, p) || !solve(a3, b3, 3)) return false;
  ss_full = yy;
  ss_trend = yy;
  for (int i = 0; i < p; ++i) ss_full -= beta[i] * r[i];
  for (int i = 0; i < 3; ++i) ss_trend -= b3[i] * r[i];
  return true;
}

// Least-squares fit of y = p0 + p1 u + p2 u^2 + a c + b s over m frames (the
// columns as fill_basis() writes them): coefficients to b5, the residual sums
// of squares of the model and of the trend alone, and the data's sum of
// squares. False when the fit is singular.
bool fit_sinusoid(const double* ys, const double* u, const double* u2, const double* c, const double* s, int m,
                  double* b5, double& ss_full, double& ss_trend, double& yy) noexcept {
  double g[25];
  normal_matrix(u, u2, c, s, m, g);
  double r[5] = {0, 0, 0, 0, 0};
  yy = 0.0;
  for (int j = 0; j < m; ++j) {
    const double y = ys[j];
    r[0] += y;
    r[1] += u[j] * y;
    r[2] += u2[j] * y;
    r[3] += c[j] * y;
    r[4] += s[j] * y;
    yy += y * y;
  }
  return fit_with_trend(g, r, yy, 5, b5, ss_full, ss_trend);
}

// Fraction of the detrended variance that the full model explains, in [0, 1];
// 0 when the detrended variance is negligible (against the sum of squares yy).
double explained_share(double ss_full, double ss_trend, double yy) noexcept {
  return ss_trend > 1e-12 * (1.0 + yy) ? std::clamp(1.0 - std::max(ss_full, 0.0) / ss_trend, 0.0, 1.0) : 0.0;
}

// Writes one row of a trend + harmonics design: 1, u, u^2, then cos/sin of
// k = 1..k_h times the phase whose cos/sin are (c1, s1).
void trend_harmonics_row(double u, double c1, double s1, int k_h, double* v) noexcept {
  v[0] = 1.0;
  v[1] = u;
  v[2] = u * u;
  double ck = c1, sk = s1;
  for (int k = 0; k < k_h; ++k) {
    v[3 + 2 * k] = ck;
    v[4 + 2 * k] = sk;
    const double nc = ck * c1 - sk * s1;
    sk = sk * c1 + ck * s1;
    ck = nc;
  }
}

// Adds one row v (p values) with observation y to the normal equations: the
// upper triangle of g (p x p, row-major), the projections r and the sum of squares yy.
void add_row(const double* v, double y, int p, double* g, double* r, double& yy) noexcept {
  for (int a = 0; a < p; ++a) {
    r[a] += v[a] * y;
    for (int b = a; b < p; ++b) g[a * p + b] += v[a] * v[b];
  }
  yy += y * y;
}

// The mean and the largest deviation from it of the newest n frames of a
// contour (to centre and scale it to about [-1, 1]); false when it is flat.
bool centre_and_scale(const ModulationAnalyzer& c, int n, double& mean, double& peak) noexcept {
  mean = 0.0;
  for (int j = 0; j < n; ++j) mean += c.value(static_cast<std::size_t>(j));
  mean /= n;
  peak = 0.0;
  for (int j = 0; j < n; ++j) peak = std::max(peak, std::fabs(c.value(static_cast<std::size_t>(j)) - mean));
  return peak > 0.0;
}

}  // namespace

ModulationAnalyzer::ModulationAnalyzer(double frame_rate, double rate_min, double rate_max,
                                       double window_periods, double rate_step)
    : fs_(frame_rate), rate_min_(rate_min), rate_max_(rate_max), periods_(window_periods), step_(rate_step) {
  if (!(frame_rate >= 10.0 && frame_rate <= 2000.0))
    invalid_parameter("frame_rate", "must be in [10, 2000] Hz (got " + std::to_string(frame_rate) + ")");
  // a floor keeps the analysis window (window_periods / rate_min seconds) and its tables bounded
  if (!(rate_min >= kMinModulationRate))
    invalid_parameter("rate_min", "must be >= " + std::to_string(kMinModulationRate) +
                                      " Hz: slower is a change of level or pitch, not a modulation (got " +
                                      std::to_string(rate_min) + ")");
  if (!(rate_max > rate_min) || !(rate_max < frame_rate / 4.0))
    invalid_parameter("rate_max", "must be above rate_min and below frame_rate / 4 (got " + std::to_string(rate_max) + ")");
  if (!(window_periods >= 1.0 && window_periods <= 8.0))
    invalid_parameter("window_periods", "must be in [1, 8] (got " + std::to_string(window_periods) + ")");
  if (!(rate_step >= 0.01 && rate_step <= 0.5 * (rate_max - rate_min)))
    invalid_parameter("rate_step", "must be in [0.01, (rate_max - rate_min) / 2] Hz (got " + std::to_string(rate_step) + ")");

  // Grid: one guard candidate below rate_min (when positive) and one above rate_max.
  std::vector<double> rates;
  if (rate_min - rate_step > 0.25 * rate_min) rates.push_back(rate_min - rate_step);
  const int n_in = static_cast<int>(std::floor((rate_max - rate_min) / rate_step + 1e-9)) + 1;
  for (int k = 0; k < n_in; ++k) rates.push_back(rate_min + k * rate_step);
  if (rates.back() < rate_max - 1e-9) rates.push_back(rate_max);
  rates.push_back(rates.back() + rate_step);
  n_cand_ = static_cast<int>(rates.size());
  cand_rate_ = rates;
  cand_len_.resize(rates.size());
  cand_off_.resize(rates.size());
  ginv_.resize(rates.size() * 25);
  pinv_.resize(rates.size() * 9);
  score_.assign(rates.size(), 0.0);
  // The scan reads every stride_-th frame (ending at the newest): the contour
  // is oversampled for rates up to rate_max, and the final fit uses all frames.
  stride_ = std::max(1, static_cast<int>(std::floor(frame_rate / (6.0 * rate_max))));
  cand_n_.resize(rates.size());
  std::size_t total = 0;
  for (std::size_t k = 0; k < rates.size(); ++k) {
    cand_len_[k] = window_for(rates[k]);
    cand_n_[k] = (cand_len_[k] - 1) / stride_ + 1;
    cand_off_[k] = total;
    total += 4 * static_cast<std::size_t>(cand_n_[k]);
  }
  // each analysis step scans the whole table: a grid this fine and this long is not real time
  if (total > kMaxScanValues)
    invalid_parameter("rate_step", "gives " + std::to_string(rates.size()) + " candidate rates whose fits need " +
                                       std::to_string(total) + " values (at most " + std::to_string(kMaxScanValues) +
                                       " keep the analysis real time); use a coarser rate_step, a narrower rate "
                                       "range or fewer window_periods (got " + std::to_string(rate_step) + ")");
  basis_.resize(total);
  std::vector<double> full, tmp;
  for (std::size_t k = 0; k < rates.size(); ++k) {
    const int len = cand_len_[k];
    const int ns = cand_n_[k];
    full.assign(4 * static_cast<std::size_t>(len), 0.0);
    fill_basis(rates[k], len, 1, len, fs_, full.data(), full.data() + len, full.data() + 2 * len,
               full.data() + 3 * len);
    tmp.assign(4 * static_cast<std::size_t>(ns), 0.0);
    for (int col = 0; col < 4; ++col)
      for (int i = 0; i < ns; ++i) {
        const int j = len - 1 - stride_ * (ns - 1 - i);
        basis_[cand_off_[k] + static_cast<std::size_t>(col * ns + i)] =
            static_cast<float>(full[static_cast<std::size_t>(col * len + j)]);
      }
    // the normal matrix of the float basis actually used in the scan
    for (std::size_t j = 0; j < tmp.size(); ++j) tmp[j] = basis_[cand_off_[k] + j];
    double* u = tmp.data();
    double* u2 = u + ns;
    double* c = u2 + ns;
    double* s = c + ns;
    double g[25];
    normal_matrix(u, u2, c, s, ns, g);
    if (!invert(g, ginv_.data() + 25 * k, 5))
      invalid_parameter("window_periods", "gives a singular fit for rate " + std::to_string(rates[k]) + " Hz");
    double p[9];
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) p[a * 3 + b] = g[a * 5 + b];
    if (!invert(p, pinv_.data() + 9 * k, 3))
      invalid_parameter("window_periods", "gives a singular trend fit for rate " + std::to_string(rates[k]) + " Hz");
  }
  const std::size_t longest = static_cast<std::size_t>(*std::max_element(cand_len_.begin(), cand_len_.end()));
  std::size_t cap = 1;
  while (cap < longest + 1) cap <<= 1;
  hist_.assign(cap, 0.0);
  hist_mask_ = cap - 1;
  // lin_ holds the window plus room for the on-the-fly fit's basis (4 columns)
  lin_.assign(6 * cap, 0.0);
  linf_.assign(cap, 0.0f);
  trend_.assign(3 * cap, 0.0f);
}

void ModulationAnalyzer::set_crest_floor(double floor) {
  if (!(floor >= -1.0 && floor < 1.0))
    invalid_parameter("crest_floor", "must be in [-1, 1) (got " + std::to_string(floor) + ")");
  crest_floor_ = floor;
}

int ModulationAnalyzer::window_for(double rate) const noexcept {
  return std::max(8, static_cast<int>(std::lround(periods_ * fs_ / rate)));
}

void ModulationAnalyzer::push(double value) noexcept {
  hist_[static_cast<std::size_t>(count_) & hist_mask_] = value;
  ++count_;
  if (run_ < hist_.size()) ++run_;
}

void ModulationAnalyzer::restart() noexcept { run_ = 0; }

double ModulationAnalyzer::harmonic_fit(double rate, int harmonics, int window) noexcept {
  const int k_h = std::clamp(harmonics, 1, kMaxHarmonics);
  const int p = 3 + 2 * k_h;  // trend (3) + cos/sin per harmonic
  const int n = std::min<int>(window, static_cast<int>(run_));
  if (!(rate > 0.0)) return 0.0;
  // every stride-th frame, keeping the highest harmonic under 0.4 of that rate
  // (clamped as a double: a rate near 0 gives a quotient beyond int)
  const int stride = static_cast<int>(std::clamp(std::floor(fs_ / (2.5 * k_h * rate)), 1.0, static_cast<double>(stride_)));
  const int m = n > 0 ? (n - 1) / stride + 1 : 0;
  if (m < 2 * p) return 0.0;
  linearize(static_cast<std::size_t>(n));
  double g[121];
  double r[11];
  std::fill(g, g + p * p, 0.0);
  std::fill(r, r + p, 0.0);
  double yy = 0.0;
  const double mid = 0.5 * (n - 1);
  const double scale = 1.0 / mid;
  const double w = 2.0 * kPi * rate / fs_;
  const double ws = w * stride;
  const double cw = std::cos(ws), sw = std::sin(ws);
  const int j0 = n - 1 - stride * (m - 1);
  double c1 = 1.0, s1 = 0.0;
  double v[11];
  for (int i = 0; i < m; ++i) {
    const int j = j0 + stride * i;
    if (i % 64 == 0) {  // re-anchor the rotation
      c1 = std::cos(w * (j - mid));
      s1 = std::sin(w * (j - mid));
    }
    trend_harmonics_row((j - mid) * scale, c1, s1, k_h, v);
    add_row(v, lin_[static_cast<std::size_t>(j)], p, g, r, yy);
    const double nc = c1 * cw - s1 * sw;
    s1 = s1 * cw + c1 * sw;
    c1 = nc;
  }
  double beta[11], ss_full, ss_trend;
  if (!fit_with_trend(g, r, yy, p, beta, ss_full, ss_trend)) return 0.0;
  return explained_share(ss_full, ss_trend, yy);
}

double ModulationAnalyzer::contour_fit(const ModulationAnalyzer& other, int window) noexcept {
  constexpr int p = 6;  // 1, u, u^2, x, x^2, x^3
  const int n = std::min({window, static_cast<int>(run_), static_cast<int>(other.run_)});
  const int stride = stride_;
  const int m = n > 0 ? (n - 1) / stride + 1 : 0;
  if (m < 4 * p) return 0.0;
  linearize(static_cast<std::size_t>(n));
  const int j0 = n - 1 - stride * (m - 1);
  // the other contour over the same frames, centred and scaled to about [-1, 1]
  double mean, peak;
  if (!centre_and_scale(other, n, mean, peak)) return 0.0;
  double g[36] = {};
  double r[6] = {};
  double yy = 0.0;
  const double mid = 0.5 * (n - 1);
  for (int i = 0; i < m; ++i) {
    const int j = j0 + stride * i;
    const double u = (j - mid) / mid;
    const double x = (other.value(static_cast<std::size_t>(n - 1 - j)) - mean) / peak;
    const double v[p] = {1.0, u, u * u, x, x * x, x * x * x};
    add_row(v, lin_[static_cast<std::size_t>(j)], p, g, r, yy);
  }
  double beta[p], ss_full, ss_trend;
  if (!fit_with_trend(g, r, yy, p, beta, ss_full, ss_trend)) return 0.0;
  return explained_share(ss_full, ss_trend, yy);
}

int ModulationAnalyzer::residual(double rate, int harmonics, const ModulationAnalyzer* other, int window,
                                 double* out) noexcept {
  const int k_h = rate > 0.0 ? std::clamp(harmonics, 1, kMaxHarmonics) : 0;
  const int n_x = other ? 3 : 0;
  const int p = 3 + 2 * k_h + n_x;  // trend, cos/sin per harmonic, x, x^2, x^3
  int n = std::min<int>(window, static_cast<int>(run_));
  if (other) n = std::min<int>(n, static_cast<int>(other->run_));
  if (n < 4 * p) return 0;
  linearize(static_cast<std::size_t>(n));
  double mean = 0.0, peak = 0.0;
  if (other && !centre_and_scale(*other, n, mean, peak)) return 0;
  const double mid = 0.5 * (n - 1);
  const double w = 2.0 * kPi * rate / fs_;
  // one row of the design matrix at window position j (rotation re-anchored every 64 frames)
  double c1 = 1.0, s1 = 0.0;
  const double cw = std::cos(w), sw = std::sin(w);
  auto row = [&](int j, double* v) {
    if (k_h > 0 && j % 64 == 0) {
      c1 = std::cos(w * (j - mid));
      s1 = std::sin(w * (j - mid));
    }
    trend_harmonics_row((j - mid) / mid, c1, s1, k_h, v);
    if (other) {
      const double x = (other->value(static_cast<std::size_t>(n - 1 - j)) - mean) / peak;
      v[3 + 2 * k_h] = x;
      v[4 + 2 * k_h] = x * x;
      v[5 + 2 * k_h] = x * x * x;
    }
    const double nc = c1 * cw - s1 * sw;
    s1 = s1 * cw + c1 * sw;
    c1 = nc;
  };
  double g[kMaxColumns * kMaxColumns] = {};
  double r[kMaxColumns] = {};
  double v[kMaxColumns];
  double yy = 0.0;
  for (int j = 0; j < n; ++j) {
    row(j, v);
    add_row(v, lin_[static_cast<std::size_t>(j)], p, g, r, yy);
  }
  double beta[kMaxColumns], ss_full, ss_trend;
  if (!fit_with_trend(g, r, yy, p, beta, ss_full, ss_trend)) return 0;
  // the residual keeps the trend (the analysis fits its own)
  for (int j = 0; j < n; ++j) {
    row(j, v);
    double fit = 0.0;
    for (int a = 3; a < p; ++a) fit += beta[a] * v[a];
    out[j] = lin_[static_cast<std::size_t>(j)] - fit;
  }
  return n;
}

double ModulationAnalyzer::value(std::size_t age) const noexcept {
  return hist_[static_cast<std::size_t>(count_ - 1 - age) & hist_mask_];
}

void ModulationAnalyzer::linearize(std::size_t n) noexcept {
  // lin_[0..n) = newest n values in time order, minus the newest value (for conditioning)
  const double ref = value(0);
  const std::uint64_t start = count_ - n;
  for (std::size_t j = 0; j < n; ++j) lin_[j] = hist_[static_cast<std::size_t>(start + j) & hist_mask_] - ref;
}

ModulationEstimate ModulationAnalyzer::fit(double rate, int window) noexcept {
  ModulationEstimate e;
  const int n = std::min<int>(window, static_cast<int>(run_));
  if (n < 8 || !(rate > 0.0)) return e;
  linearize(static_cast<std::size_t>(n));
  // every stride_-th frame ending at the newest, like the scan
  const int m = (n - 1) / stride_ + 1;
  double* ys = lin_.data() + hist_.size();
  double* u = ys + hist_.size();
  double* u2 = u + hist_.size();
  double* c = u2 + hist_.size();
  double* s = c + hist_.size();
  for (int i = 0; i < m; ++i) ys[i] = lin_[static_cast<std::size_t>(n - 1 - stride_ * (m - 1 - i))];
  fill_basis(rate, n, stride_, m, fs_, u, u2, c, s);
  double b5[5], ss_full, ss_trend, yy;
  if (!fit_sinusoid(ys, u, u2, c, s, m, b5, ss_full, ss_trend, yy)) return e;
  e.valid = true;
  e.rate = rate;
  e.amplitude = std::sqrt(b5[3] * b5[3] + b5[4] * b5[4]);
  e.crest = e.amplitude;
  e.regularity = explained_share(ss_full, ss_trend, yy);
  if (crest_floor_ > -1.0 && e.amplitude > 0.0) {
    // keep the frames where the fitted sinusoid is above floor * amplitude, compacted in place
    const double lim = crest_floor_ * e.amplitude;
    int k = 0;
    for (int j = 0; j < m; ++j) {
      if (b5[3] * c[j] + b5[4] * s[j] <= lim) continue;
      ys[k] = ys[j];
      u[k] = u[j];
      u2[k] = u2[j];
      c[k] = c[j];
      s[k] = s[j];
      ++k;
    }
    double bk[5], sf, st, yk;
    if (k >= 8 && fit_sinusoid(ys, u, u2, c, s, k, bk, sf, st, yk)) e.crest = std::sqrt(bk[3] * bk[3] + bk[4] * bk[4]);
  }
  // range of p0 + p1 u + p2 u^2 over u in [-1, 1]
  const double p1 = b5[1], p2 = b5[2];
  double lo = std::min(-p1 + p2, p1 + p2), hi = std::max(-p1 + p2, p1 + p2);
  if (std::fabs(p2) > 1e-300) {
    const double uv = -p1 / (2.0 * p2);
    if (uv > -1.0 && uv < 1.0) {
      const double v = p1 * uv + p2 * uv * uv;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  e.trend_range = hi - lo;
  e.window = n;
  return e;
}

ModulationEstimate ModulationAnalyzer::analyze() noexcept {
  ModulationEstimate e;
  const std::size_t n = run_;
  if (n < static_cast<std::size_t>(cand_len_.back())) return e;
  linearize(n);
  // strided series ending at the newest frame
  const std::size_t stride = static_cast<std::size_t>(stride_);
  const std::size_t m = (n - 1) / stride + 1;
  for (std::size_t i = 0; i < m; ++i) linf_[i] = static_cast<float>(lin_[n - 1 - stride * (m - 1 - i)]);
  // suffix sums of y and y^2 live in the scratch area after the window
  double* sy = lin_.data() + hist_.size();
  double* syy = sy + hist_.size() + 1;
  sy[m] = 0.0;
  syy[m] = 0.0;
  for (std::size_t j = m; j-- > 0;) {
    const double y = linf_[j];
    sy[j] = sy[j + 1] + y;
    syy[j] = syy[j + 1] + y * y;
  }
  bool partial = false;  // some candidates' windows are longer than the contour
  for (int k = 0; k < n_cand_; ++k) {
    const int len = cand_len_[static_cast<std::size_t>(k)];
    if (static_cast<std::size_t>(len) > n) {
      score_[static_cast<std::size_t>(k)] = -1.0;
      partial = true;
      continue;
    }
    const int ns = cand_n_[static_cast<std::size_t>(k)];
    const float* u = basis_.data() + cand_off_[static_cast<std::size_t>(k)];
    const float* y = linf_.data() + (m - static_cast<std::size_t>(ns));
    double r[5];
    r[0] = sy[m - static_cast<std::size_t>(ns)];
    r[1] = dot8(u, y, ns);
    r[2] = dot8(u + ns, y, ns);
    r[3] = dot8(u + 2 * ns, y, ns);
    r[4] = dot8(u + 3 * ns, y, ns);
    const double yy = syy[m - static_cast<std::size_t>(ns)];
    const double* gi = ginv_.data() + 25 * static_cast<std::size_t>(k);
    const double* pi = pinv_.data() + 9 * static_cast<std::size_t>(k);
    double fit_full = 0.0, fit_trend = 0.0;
    for (int a = 0; a < 5; ++a) {
      double beta = 0.0;
      for (int b = 0; b < 5; ++b) beta += gi[a * 5 + b] * r[b];
      fit_full += beta * r[a];
    }
    for (int a = 0; a < 3; ++a) {
      double beta = 0.0;
      for (int b = 0; b < 3; ++b) beta += pi[a * 3 + b] * r[b];
      fit_trend += beta * r[a];
    }
    const double ss_trend = yy - fit_trend;
    const double ss_full = yy - fit_full;
    score_[static_cast<std::size_t>(k)] = explained_share(ss_full, ss_trend, yy);
  }
  auto in_range = [&](int k) {
    const double rate = cand_rate_[static_cast<std::size_t>(k)];
    return rate >= rate_min_ - 1e-9 && rate <= rate_max_ + 1e-9;  // not a guard candidate
  };
  int best = -1;
  for (int k = 0; k < n_cand_; ++k) {
    const double sc = score_[static_cast<std::size_t>(k)];
    if (sc < 0.0 || !in_range(k)) continue;
    if (best < 0 || sc > score_[static_cast<std::size_t>(best)]) best = k;
  }
  // no estimate before the fastest rate's whole window is there
  if (best < 0) return e;
  if (partial) {
    // Where the best is the slowest candidate whose whole window is there,
    // the maximum may lie at a slower rate: the slower candidates whose window
    // the contour covers for the most part (kPartialWindow of it) are fitted
    // over the whole contour, one after the other while the score rises. The
    // newest frames of their scan basis give the sinusoid, and a quadratic in
    // time over the contour the trend.
    const int mp = static_cast<int>(m);  // the scan's frames of the whole contour
    const float* y = linf_.data();
    float* one = trend_.data();
    float* tt = one + hist_.size();
    float* tt2 = tt + hist_.size();
    const float* trend[3] = {one, tt, tt2};
    double g[25], r[5];
    bool trend_done = false;
    while (best > 0) {
      const std::size_t kk = static_cast<std::size_t>(best - 1);
      const int ns = cand_n_[kk];
      const bool covered = static_cast<double>(n) >= kPartialWindow * cand_len_[kk] && mp <= ns && mp >= 10;
      if (!(score_[kk] < 0.0) || !covered) break;
      if (!trend_done) {
        // the trend's part of the normal equations, the same for every candidate
        const double mid = 0.5 * (mp - 1);
        for (int j = 0; j < mp; ++j) {
          const double u = (j - mid) / mid;
          one[j] = 1.0f;
          tt[j] = static_cast<float>(u);
          tt2[j] = static_cast<float>(u * u);
        }
        for (int p = 0; p < 3; ++p) {
          r[p] = dot8(trend[p], y, mp);
          for (int q = p; q < 3; ++q) g[p * 5 + q] = dot8(trend[p], trend[q], mp);
        }
        trend_done = true;
      }
      const float* c = basis_.data() + cand_off_[kk] + static_cast<std::size_t>(2 * ns + ns - mp);
      const float* sn = c + ns;
      for (int p = 0; p < 3; ++p) {
        g[p * 5 + 3] = dot8(trend[p], c, mp);
        g[p * 5 + 4] = dot8(trend[p], sn, mp);
      }
      g[3 * 5 + 3] = dot8(c, c, mp);
      g[3 * 5 + 4] = dot8(c, sn, mp);
      g[4 * 5 + 4] = dot8(sn, sn, mp);
      r[3] = dot8(c, y, mp);
      r[4] = dot8(sn, y, mp);
      double beta[5], ss_full, ss_trend;
      if (!fit_with_trend(g, r, syy[0], 5, beta, ss_full, ss_trend)) break;
      score_[kk] = explained_share(ss_full, ss_trend, syy[0]);
      if (!in_range(best - 1) || !(score_[kk] > score_[static_cast<std::size_t>(best)])) break;
      --best;
    }
  }
  const std::size_t b = static_cast<std::size_t>(best);
  const double sb = score_[b];
  const double sl = b > 0 ? score_[b - 1] : -1.0;
  const double sr = b + 1 < score_.size() ? score_[b + 1] : -1.0;
  double rate = cand_rate_[b];
  // The slower neighbour cannot be analyzed yet (the contour covers less than
  // kPartialWindow of its window): the maximum is not bracketed, and the best
  // rate may only be the slowest one analyzed so far.
  const bool bracketed = !(b > 0 && sl < 0.0);
  bool edge = false;
  if (sl >= 0.0 && sr >= 0.0) {
    if (sl > sb || sr > sb) edge = true;  // the maximum lies on a guard candidate
    const double den = sl - 2.0 * sb + sr;
    if (den < 0.0) {
      const double d = std::clamp(0.5 * (sl - sr) / den, -1.0, 1.0);
      const double lo = cand_rate_[b - 1], hi = cand_rate_[b + 1];
      rate = d < 0.0 ? rate + d * (rate - lo) : rate + d * (hi - rate);
    }
  }
  rate = std::clamp(rate, rate_min_, rate_max_);
  e = fit(rate, window_for(rate));
  if (edge) e.regularity = 0.0;
  e.bracketed = bracketed;
  return e;
}

}  // namespace rtc
