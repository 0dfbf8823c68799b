#include "resampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "denormals.h"
#include "param_check.h"

namespace rtc {

namespace {

constexpr double kPi = 3.14159265358979323846;

/// Modified Bessel function of the first kind, order 0 (power series; converges for the Kaiser betas used).
double bessel_i0(double x) {
  double sum = 1.0, term = 1.0;
  const double q = 0.25 * x * x;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

double kaiser_beta(double a) {
  if (a > 50.0) return 0.1102 * (a - 8.7);
  if (a >= 21.0) return 0.5842 * std::pow(a - 21.0, 0.4) + 0.07886 * (a - 21.0);
  return 0.0;
}

}  // namespace

PolyphaseResampler::PolyphaseResampler(int in_rate, int out_rate, double attenuation_db, double passband)
    : in_rate_(in_rate), out_rate_(out_rate), attenuation_db_(attenuation_db), passband_(passband) {
  require_in_range("in_rate", in_rate, 1, 4000000, "Hz");
  require_in_range("out_rate", out_rate, 1, 4000000, "Hz");
  if (!(attenuation_db >= 40.0 && attenuation_db <= 130.0))
    invalid_parameter("attenuation_db", "must be in [40, 130] dB (float32 coefficients and sums hold about 135 dB; "
                                        "got " + std::to_string(attenuation_db) + ")");
  if (!(passband >= 0.5 && passband <= 0.99))
    invalid_parameter("passband", "must be in [0.5, 0.99] of the lower Nyquist frequency (got " +
                                      std::to_string(passband) + ")");
  const int g = std::gcd(in_rate, out_rate);
  L_ = out_rate / g;
  M_ = in_rate / g;

  // The prototype low-pass runs at the up-sampled rate L * in_rate. Its transition band spans
  // [passband, 1] of the lower Nyquist frequency. Kaiser's length estimate has no margin (at the stop
  // edge it reaches about 1 dB short, and the float32 coefficients cost a little more), so the design
  // asks for 5 dB more than the attenuation promised, and the length is the odd one at or above it.
  const double fs = static_cast<double>(L_) * in_rate;
  const double nyq = 0.5 * std::min(in_rate, out_rate);
  const double f_pass = passband * nyq, f_stop = nyq;
  const double a_design = attenuation_db + 5.0;
  const double dw = 2.0 * kPi * (f_stop - f_pass) / fs;
  const double n_est = std::ceil((a_design - 7.95) / (2.285 * dw)) + 1.0;
  const double half_est = std::ceil(0.5 * (n_est - 1.0));  // the centre D; the length is 2D + 1 >= n_est
  const double t_est = std::ceil((2.0 * half_est + 1.0) / L_);
  const double stored = std::ceil(t_est / 8.0) * 8.0 * L_;  // rounded up to a multiple of 8 per phase
  if (!(stored <= static_cast<double>(max_taps())))
    invalid_parameter("in_rate, out_rate", std::to_string(in_rate) + " Hz -> " + std::to_string(out_rate) +
                                               " Hz (ratio " + std::to_string(L_) + "/" + std::to_string(M_) +
                                               ") needs a filter of about " +
                                               std::to_string(static_cast<long long>(stored)) +
                                               " coefficients, more than the limit of " +
                                               std::to_string(max_taps()));
  const int taps = std::max(1, static_cast<int>(t_est));  // per phase, as designed
  // stored per phase: rounded up to a multiple of 8 (zeros for the oldest samples), so dot() has no tail
  T_ = (taps + 7) / 8 * 8;
  const size_t total = static_cast<size_t>(taps) * L_;
  D_ = static_cast<uint64_t>(half_est);  // centre; the filter's 2D + 1 <= taps * L coefficients (the rest are zero)

  const double fc = 0.5 * (f_pass + f_stop) / fs;  // cutoff, cycles per up-sampled sample
  const double beta = kaiser_beta(a_design);
  const double i0_beta = bessel_i0(beta);
  const double half = static_cast<double>(D_);
  std::vector<double> h(total, 0.0);
  double sum = 0.0;
  for (size_t k = 0; k <= 2 * D_; ++k) {
    const double t = static_cast<double>(k) - half;
    const double x = 2.0 * fc * t;
    const double sinc = t == 0.0 ? 1.0 : std::sin(kPi * x) / (kPi * x);
    const double r = half > 0.0 ? t / half : 0.0;
    const double w = bessel_i0(beta * std::sqrt(std::max(0.0, 1.0 - r * r))) / i0_beta;
    h[k] = 2.0 * fc * sinc * w;
    sum += h[k];
  }
  // unit gain at DC for each output sample: the L phases together sum to L
  const double scale = sum != 0.0 ? static_cast<double>(L_) / sum : 1.0;
  coef_.assign(static_cast<size_t>(T_) * L_, 0.0f);
  for (int p = 0; p < L_; ++p)
    for (int q = 0; q < taps; ++q)
      coef_[static_cast<size_t>(p) * T_ + (T_ - 1 - q)] = static_cast<float>(h[p + static_cast<size_t>(q) * L_] * scale);
  history_.assign(2 * static_cast<size_t>(T_), 0.0f);
  reset();
}

void PolyphaseResampler::reset() noexcept {
  std::fill(history_.begin(), history_.end(), 0.0f);
  write_ = 0;
  n_in_ = n_out_ = 0;
  next_pos_ = D_;
  finished_ = false;
}

double PolyphaseResampler::latency_s() const noexcept {
  // after n input samples, the outputs j with j*M + D < n*L are out: they reach n/in_rate - D/(L*in_rate)
  return static_cast<double>(D_) / (static_cast<double>(L_) * in_rate_);
}

size_t PolyphaseResampler::max_output(size_t n) const noexcept {
  // outputs whose newest input index is below n_in + n; an n no array can hold saturates
  const uint64_t L = static_cast<uint64_t>(L_);
  if (n > (UINT64_MAX / L - n_in_) / 2) return SIZE_MAX;
  const uint64_t end = (n_in_ + n) * L;  // first up-sampled position not reached
  if (end <= next_pos_) return 0;
  return static_cast<size_t>((end - next_pos_ + M_ - 1) / M_);
}

void PolyphaseResampler::push_sample(float s) noexcept {
  history_[write_] = s;
  history_[write_ + T_] = s;
  write_ = write_ + 1 == static_cast<size_t>(T_) ? 0 : write_ + 1;
  ++n_in_;
}

float PolyphaseResampler::dot() const noexcept {
  // the phase of the up-sampled position; history_[write_ .. write_ + T) holds the last T samples, oldest first
  const size_t p = static_cast<size_t>(next_pos_ % static_cast<uint64_t>(L_));
  const float* c = coef_.data() + p * T_;
  const float* x = history_.data() + write_;
  // eight partial sums, lane by lane: independent chains that the compiler turns into vector multiply-adds
  // without reordering any one sum (so the result is the same on every build of this code)
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int k = 0; k < T_; k += 8)  // T_ is a multiple of 8
    for (int l = 0; l < 8; ++l) acc[l] += c[k + l] * x[k + l];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

size_t PolyphaseResampler::emit_ready(float* out, size_t limit) noexcept {
  // output j is ready once input floor(next_pos / L) has arrived; then it is the newest sample in history
  size_t w = 0;
  while (w < limit && next_pos_ / static_cast<uint64_t>(L_) < n_in_) {
    out[w++] = dot();
    next_pos_ += static_cast<uint64_t>(M_);
    ++n_out_;
  }
  return w;
}

size_t PolyphaseResampler::process(const float* x, size_t n, float* out, size_t cap) {
  const DenormalsOff denormals_off;  // (see denormals.h)
  if (finished_) throw std::logic_error("resampler: the stream has ended (finish()); call reset() first");
  if (cap < max_output(n))
    throw std::invalid_argument("out: room for " + std::to_string(cap) + " samples, " +
                                std::to_string(max_output(n)) + " needed");
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    push_sample(x[i]);
    w += emit_ready(out + w, cap - w);
  }
  return w;
}

size_t PolyphaseResampler::pending_output() const noexcept {
  if (finished_) return 0;
  // total output for n_in samples: ceil(n_in * L / M)
  const uint64_t total = (n_in_ * static_cast<uint64_t>(L_) + M_ - 1) / M_;
  return total > n_out_ ? static_cast<size_t>(total - n_out_) : 0;
}

size_t PolyphaseResampler::finish(float* out, size_t cap) {
  const DenormalsOff denormals_off;  // (see denormals.h)
  if (finished_) return 0;
  const size_t need = pending_output();
  if (cap < need)
    throw std::invalid_argument("out: room for " + std::to_string(cap) + " samples, " + std::to_string(need) +
                                " needed");
  // the silence after the end completes the outputs that lie before it (their positions are below n_in * L)
  const uint64_t real_in = n_in_;
  size_t w = 0;
  while (w < need) {
    push_sample(0.0f);
    w += emit_ready(out + w, need - w);
  }
  n_in_ = real_in;
  finished_ = true;
  return need;
}

}  // namespace rtc
