#include "frontend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "denormals.h"

namespace rtc {

namespace {
std::string num(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

SpectralTables make_tables(MelConfig& c) {
  validate(c);
  return SpectralTables(c.sample_rate, c.n_fft, c.win_length, c.n_mels, c.fmin, c.fmax,
                        parse_window(c.window), parse_mel_scale(c.mel_scale),
                        parse_mel_norm(c.norm), c.power, parse_log(c.log), c.amin);
}

inline float to_float(float v) { return v; }
inline float to_float(double v) { return static_cast<float>(v); }
inline float to_float(int16_t v) { return static_cast<float>(v) * (1.0f / 32768.0f); }
}  // namespace

void validate(MelConfig& c) {
  if (!(c.sample_rate > 0.0) || !std::isfinite(c.sample_rate))
    throw std::invalid_argument("sample_rate: must be a positive number (got " + num(c.sample_rate) + ")");
  check_fft_size(c.n_fft);
  if (c.hop_length < 1 || c.hop_length > c.n_fft)
    throw std::invalid_argument("hop_length: must be from 1 to n_fft=" + std::to_string(c.n_fft) +
                                " (got " + std::to_string(c.hop_length) + ")");
  if (c.win_length == 0) c.win_length = c.n_fft;
  if (c.win_length < 1 || c.win_length > c.n_fft)
    throw std::invalid_argument("win_length: must be from 1 to n_fft=" + std::to_string(c.n_fft) +
                                " (got " + std::to_string(c.win_length) + ")");
  // bounded: the filterbank holds n_mels * (n_fft/2 + 1) weights and its construction counts
  // n_mels + 2 band edges in int (beyond 4096, more bands than the largest FFT has bins)
  if (c.n_mels < 1 || c.n_mels > kMaxMels)
    throw std::invalid_argument("n_mels: must be from 1 to " + std::to_string(kMaxMels) + " (got " +
                                std::to_string(c.n_mels) + ")");
  const double nyquist = c.sample_rate / 2.0;
  if (c.fmax < 0.0) c.fmax = nyquist;
  if (!std::isfinite(c.fmin) || c.fmin < 0.0)
    throw std::invalid_argument("fmin: must be >= 0 (got " + num(c.fmin) + ")");
  if (!std::isfinite(c.fmax) || c.fmax > nyquist * (1.0 + 1e-12))
    throw std::invalid_argument("fmax: must be at most sample_rate/2=" + num(nyquist) + " (got " +
                                num(c.fmax) + ")");
  if (c.fmin >= c.fmax)
    throw std::invalid_argument("fmin: must be below fmax (got fmin=" + num(c.fmin) +
                                ", fmax=" + num(c.fmax) + ")");
  if (!(c.power > 0.0) || !std::isfinite(c.power))
    throw std::invalid_argument("power: must be a positive number (got " + num(c.power) + ")");
  if (!(c.amin > 0.0) || !std::isfinite(c.amin))
    throw std::invalid_argument("amin: must be a positive number (got " + num(c.amin) + ")");
  parse_window(c.window);
  parse_mel_scale(c.mel_scale);
  parse_mel_norm(c.norm);
  parse_log(c.log);
}

StreamingMelFrontend::StreamingMelFrontend(MelConfig cfg)
    : cfg_(cfg),
      tables_(make_tables(cfg_)),
      buf_(static_cast<size_t>(cfg_.n_fft), 0.0f),
      re_(static_cast<size_t>(cfg_.n_fft / 2)),
      im_(static_cast<size_t>(cfg_.n_fft / 2)),
      pow_(static_cast<size_t>(cfg_.n_fft / 2 + 1)) {}

size_t StreamingMelFrontend::frames_for(size_t n) const noexcept {
  // samples still missing for the first frame; counted this way, no n can overflow the sum
  const size_t nfft = static_cast<size_t>(cfg_.n_fft);
  const size_t need = fill_ >= nfft ? 0 : nfft - fill_;
  if (n < need) return 0;
  return (n - need) / static_cast<size_t>(cfg_.hop_length) + 1;
}

void StreamingMelFrontend::emit(float* out) noexcept {
  compute_frame_host(buf_.data(), tables_, re_.data(), im_.data(), pow_.data(), out);
  frames_emitted_.add(1);
  const size_t hop = static_cast<size_t>(cfg_.hop_length);
  const size_t keep = static_cast<size_t>(cfg_.n_fft) - hop;
  std::memmove(buf_.data(), buf_.data() + hop, keep * sizeof(float));
  fill_ = keep;
}

template <typename In>
size_t StreamingMelFrontend::push_impl(const In* x, size_t n, float* out,
                                       size_t max_frames) noexcept {
  const DenormalsOff denormals_off;  // (see denormals.h)
  const size_t nfft = static_cast<size_t>(cfg_.n_fft);
  const size_t n_mels = static_cast<size_t>(cfg_.n_mels);
  if (frames_for(n) > max_frames) return 0;  // documented: nothing is consumed
  size_t written = 0;
  size_t i = 0;
  while (i < n) {
    const size_t take = std::min(n - i, nfft - fill_);
    float* dst = buf_.data() + fill_;
    uint64_t bad = 0;
    for (size_t j = 0; j < take; ++j) {
      const float v = to_float(x[i + j]);
      if (std::isfinite(v)) {
        dst[j] = v;
      } else {
        dst[j] = 0.0f;
        ++bad;
      }
    }
    nonfinite_.add(bad);
    fill_ += take;
    i += take;
    samples_.add(take);
    if (fill_ == nfft) {
      emit(out + written * n_mels);
      ++written;
    }
  }
  return written;
}

size_t StreamingMelFrontend::push(const float* x, size_t n, float* out, size_t max_frames) noexcept {
  return push_impl(x, n, out, max_frames);
}
size_t StreamingMelFrontend::push(const double* x, size_t n, float* out, size_t max_frames) noexcept {
  return push_impl(x, n, out, max_frames);
}
size_t StreamingMelFrontend::push(const int16_t* x, size_t n, float* out, size_t max_frames) noexcept {
  return push_impl(x, n, out, max_frames);
}

void StreamingMelFrontend::reset() noexcept {
  std::fill(buf_.begin(), buf_.end(), 0.0f);
  fill_ = 0;
  frames_emitted_.reset();
  samples_.reset();
  nonfinite_.reset();
}

}  // namespace rtc
