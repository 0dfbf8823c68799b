#include "spectral.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace rtc {

namespace {
constexpr double kPi = 3.14159265358979323846;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

WindowKind parse_window(const std::string& name) {
  const auto n = lower(name);
  if (n == "hann" || n == "hanning") return WindowKind::Hann;
  if (n == "hamming") return WindowKind::Hamming;
  if (n == "blackman") return WindowKind::Blackman;
  if (n == "rect" || n == "ones" || n == "boxcar" || n == "rectangular") return WindowKind::Rectangular;
  throw std::invalid_argument("window: unknown window '" + name + "' (hann, hamming, blackman, rect)");
}

MelScale parse_mel_scale(const std::string& name) {
  const auto n = lower(name);
  if (n == "htk") return MelScale::Htk;
  if (n == "slaney") return MelScale::Slaney;
  throw std::invalid_argument("mel_scale: unknown mel scale '" + name + "' (htk, slaney)");
}

MelNorm parse_mel_norm(const std::string& name) {
  const auto n = lower(name);
  if (n.empty() || n == "none") return MelNorm::None;
  if (n == "slaney") return MelNorm::Slaney;
  throw std::invalid_argument("norm: unknown mel norm '" + name + "' (None, 'slaney')");
}

LogMode parse_log(const std::string& name) {
  const auto n = lower(name);
  if (n == "db") return LogMode::Db;
  if (n == "ln") return LogMode::Ln;
  if (n.empty() || n == "none") return LogMode::None;
  throw std::invalid_argument("log: unknown log scaling '" + name + "' ('db', 'ln', None)");
}

double hz_to_mel(double hz, MelScale scale) {
  if (scale == MelScale::Htk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  const double f_sp = 200.0 / 3.0;
  const double min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  if (hz >= min_log_hz) return min_log_mel + std::log(hz / min_log_hz) / logstep;
  return hz / f_sp;
}

double mel_to_hz(double mel, MelScale scale) {
  if (scale == MelScale::Htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3.0;
  const double min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  if (mel >= min_log_mel) return min_log_hz * std::exp(logstep * (mel - min_log_mel));
  return f_sp * mel;
}

std::vector<double> make_window(WindowKind kind, int win_length, int n_fft) {
  std::vector<double> w(static_cast<size_t>(n_fft), 0.0);
  const int left = (n_fft - win_length) / 2;
  for (int i = 0; i < win_length; ++i) {
    const double x = 2.0 * kPi * i / win_length;
    double v = 1.0;
    switch (kind) {
      case WindowKind::Hann: v = 0.5 - 0.5 * std::cos(x); break;
      case WindowKind::Hamming: v = 0.54 - 0.46 * std::cos(x); break;
      case WindowKind::Blackman: v = 0.42 - 0.5 * std::cos(x) + 0.08 * std::cos(2.0 * x); break;
      case WindowKind::Rectangular: v = 1.0; break;
    }
    w[static_cast<size_t>(left + i)] = v;
  }
  return w;
}

std::vector<float> make_mel_filterbank(double sr, int n_fft, int n_mels, double fmin, double fmax,
                                       MelScale scale, MelNorm norm) {
  const int n_bins = n_fft / 2 + 1;
  std::vector<double> fft_freqs(n_bins);
  for (int k = 0; k < n_bins; ++k) fft_freqs[k] = (sr / 2.0) * k / (n_bins - 1);
  const double mmin = hz_to_mel(fmin, scale), mmax = hz_to_mel(fmax, scale);
  std::vector<double> edges(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i)
    edges[i] = mel_to_hz(mmin + (mmax - mmin) * i / (n_mels + 1), scale);
  std::vector<float> fb(static_cast<size_t>(n_mels) * n_bins, 0.0f);
  for (int i = 0; i < n_mels; ++i) {
    const double d0 = edges[i + 1] - edges[i], d1 = edges[i + 2] - edges[i + 1];
    const double enorm = norm == MelNorm::Slaney ? 2.0 / (edges[i + 2] - edges[i]) : 1.0;
    for (int k = 0; k < n_bins; ++k) {
      const double lo = (fft_freqs[k] - edges[i]) / d0;
      const double hi = (edges[i + 2] - fft_freqs[k]) / d1;
      const double v = std::max(0.0, std::min(lo, hi));
      fb[static_cast<size_t>(i) * n_bins + k] = static_cast<float>(v * enorm);
    }
  }
  return fb;
}

void check_fft_size(int n) {
  if (n < 256 || n > 4096 || (n & (n - 1)) != 0)
    throw std::invalid_argument("n_fft: must be a power of two from 256 to 4096 (got " +
                                std::to_string(n) + ")");
}

SpectralTables::SpectralTables(double sample_rate, int n_fft, int win_length, int n_mels,
                               double fmin, double fmax, WindowKind wkind, MelScale scale,
                               MelNorm norm, double power, LogMode log, double amin) {
  const int m = n_fft / 2;
  window = make_window(wkind, win_length, n_fft);
  int bits = 0;
  while ((1 << bits) < m) ++bits;
  bitrev.resize(m);
  for (int j = 0; j < m; ++j) {
    int r = 0;
    for (int b = 0; b < bits; ++b) r |= ((j >> b) & 1) << (bits - 1 - b);
    bitrev[j] = r;
  }
  tw_re.resize(m / 2);
  tw_im.resize(m / 2);
  for (int j = 0; j < m / 2; ++j) {
    tw_re[j] = std::cos(-2.0 * kPi * j / m);
    tw_im[j] = std::sin(-2.0 * kPi * j / m);
  }
  post_re.resize(m + 1);
  post_im.resize(m + 1);
  for (int k = 0; k <= m; ++k) {
    post_re[k] = std::cos(-2.0 * kPi * k / n_fft);
    post_im[k] = std::sin(-2.0 * kPi * k / n_fft);
  }
  for (int len = 4; len <= m; len <<= 1) {
    const int step = m / len;
    for (int k = 0; k < len / 2; ++k) {
      stage_tw_re.push_back(tw_re[static_cast<size_t>(k * step)]);
      stage_tw_im.push_back(tw_im[static_cast<size_t>(k * step)]);
    }
  }
  if (n_mels > 0) {
    dense_ = make_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, scale, norm);
    const int n_bins = m + 1;
    mel_start.resize(n_mels);
    mel_len.resize(n_mels);
    mel_offset.resize(n_mels);
    for (int b = 0; b < n_mels; ++b) {
      const float* row = dense_.data() + static_cast<size_t>(b) * n_bins;
      int first = 0, last = -1;
      for (int k = 0; k < n_bins; ++k)
        if (row[k] != 0.0f) { if (last < 0) first = k; last = k; }
      mel_offset[b] = static_cast<int>(mel_weights.size());
      mel_start[b] = last < 0 ? 0 : first;
      mel_len[b] = last < 0 ? 0 : last - first + 1;
      for (int k = first; k <= last; ++k) mel_weights.push_back(row[k]);
    }
  }
  view_.n_fft = n_fft;
  view_.n_mels = n_mels;
  view_.window = window.data();
  view_.bitrev = bitrev.data();
  view_.tw_re = tw_re.data();
  view_.tw_im = tw_im.data();
  view_.post_re = post_re.data();
  view_.post_im = post_im.data();
  view_.mel_start = mel_start.data();
  view_.mel_len = mel_len.data();
  view_.mel_offset = mel_offset.data();
  view_.mel_weights = mel_weights.data();
  view_.power = power;
  view_.log = log;
  view_.amin = amin;
  view_.amin_db = amin > 0.0 ? static_cast<float>(10.0 * std::log10(amin)) : -std::numeric_limits<float>::infinity();
}

RealFft::RealFft(int n)
    : n_((check_fft_size(n), n)),
      tables_(2.0, n, n, 0, 0.0, 1.0, WindowKind::Rectangular, MelScale::Htk, MelNorm::None, 2.0,
              LogMode::None, 0.0),
      re_(n / 2),
      im_(n / 2) {}

namespace {
/// `n` butterflies (a[k], b[k]) <- (a[k] + w[k] b[k], a[k] - w[k] b[k]) over disjoint runs:
/// butterfly()'s operations in the same order, on consecutive memory (vectorizes).
inline void butterflies(double* __restrict ar, double* __restrict ai, double* __restrict br,
                        double* __restrict bi, const double* __restrict wr,
                        const double* __restrict wi, int n) {
  for (int k = 0; k < n; ++k) {
    const double xr = br[k] * wr[k] - bi[k] * wi[k];
    const double xi = br[k] * wi[k] + bi[k] * wr[k];
    br[k] = ar[k] - xr;
    bi[k] = ai[k] - xi;
    ar[k] += xr;
    ai[k] += xi;
  }
}
}  // namespace

void power_spectrum_host(const double* re, const double* im, const FrameTables<double>& t,
                         double* power) {
  const int m = t.n_fft / 2;
  if (t.power != 2.0) {
    power_spectrum(re, im, t, power);
    return;
  }
  power[0] = rfft_bin_power(re, im, m, 0, t);
  power[m] = rfft_bin_power(re, im, m, m, t);
  const double* __restrict wr = t.post_re;
  const double* __restrict wi = t.post_im;
  double* __restrict p = power;
  for (int k = 1; k < m; ++k) {  // rfft_bin() and |X|^2 without its branches for k = 0 and m
    const double ar = re[k], ai = im[k];
    const double br = re[m - k], bi = -im[m - k];
    const double er = 0.5 * (ar + br), ei = 0.5 * (ai + bi);
    const double dr = 0.5 * (ar - br), di = 0.5 * (ai - bi);
    const double orr = di, oi = -dr;
    const double xr = er + wr[k] * orr - wi[k] * oi;
    const double xi = ei + wr[k] * oi + wi[k] * orr;
    p[k] = xr * xr + xi * xi;
  }
}

void fft_complex_host(double* re, double* im, const SpectralTables& tables) {
  const int m = tables.view().n_fft / 2;
  // span 2: the twiddle is exp(0) = (1, -0), so a + w b = a + b and a - w b = a - b exactly
  // (up to the sign of a zero, which the power spectrum squares away)
  for (int a = 0; a < m; a += 2) {
    const double br = re[a + 1], bi = im[a + 1];
    re[a + 1] = re[a] - br;
    im[a + 1] = im[a] - bi;
    re[a] += br;
    im[a] += bi;
  }
  for (int len = 4; len <= m; len <<= 1) {
    const int half = len / 2;
    const double* wr = tables.stage_tw_re.data() + (half - 2);
    const double* wi = tables.stage_tw_im.data() + (half - 2);
    for (int start = 0; start < m; start += len)
      butterflies(re + start, im + start, re + start + half, im + start + half, wr, wi, half);
  }
}

void compute_frame_host(const float* x, const SpectralTables& tables, double* re, double* im,
                        double* power, float* out) {
  const auto& t = tables.view();
  window_and_pack(x, t, re, im);
  fft_complex_host(re, im, tables);
  power_spectrum_host(re, im, t, power);
  for (int b = 0; b < t.n_mels; ++b) out[b] = mel_band(power, t, b);
}

void RealFft::forward(const float* x, double* out) {
  const auto& t = tables_.view();
  const int m = n_ / 2;
  window_and_pack(x, t, re_.data(), im_.data());
  fft_complex_host(re_.data(), im_.data(), tables_);
  for (int k = 0; k <= m; ++k) rfft_bin(re_.data(), im_.data(), m, k, t, out + 2 * k, out + 2 * k + 1);
}

}  // namespace rtc
