/// @file resampler.h
/// @brief Streaming low-latency polyphase resampler (rational ratio, Kaiser-windowed sinc).
///
/// Converts a mono float32 stream from `in_rate` to `out_rate` Hz by the ratio L/M (the rates over their
/// greatest common divisor) with one linear-phase FIR low-pass, evaluated only where an output sample
/// falls (polyphase): output `j` is the filter's value at the up-sampled position `j*M + D`, where `D`
/// is the filter's centre, so the output is time-aligned with the input (output sample `j` lies at
/// `j / out_rate` seconds, like input sample `i` at `i / in_rate`) and the only delay is the wait for
/// the filter's newer half: `D / (L * in_rate)` seconds (latency_s()).
///
/// Why not soxr's streaming resampler: soxr filters in blocks (FFT convolution and several stages), and
/// a stream from 48 kHz to 16 kHz holds samples back 36.5 ms with its HQ quality (from 8 kHz, 113 ms).
/// This filter has the same passband edge (0.913 of the lower Nyquist frequency) and stopband (from the
/// lower Nyquist frequency on, `attenuation_db` down, 120 dB by default: nothing aliases into the band
/// below it) and gives each output sample as soon as its newest input sample has arrived: 5.9 ms from
/// 44.1, 48, 96 or 192 kHz, 11.8 ms from 8 kHz.
///
/// Any split of the input into blocks gives bit-for-bit the output of one call. process() allocates
/// nothing; construction designs the filter (up to max_taps() coefficients).
///
/// Threads: one thread at a time per object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rtc {

/// Streaming rational-ratio resampler of one mono float32 stream (see the file comment): construct with
/// the rates, process() blocks of any size, finish() at the end of the stream, reset() to start another.
class PolyphaseResampler {
 public:
  /// Largest number of filter coefficients (all phases) a resampler may need.
  static constexpr size_t max_taps() { return size_t(1) << 22; }

  /// Designs the filter.
  /// @param in_rate, out_rate sample rates in Hz, 1 .. 4'000'000
  /// @param attenuation_db stopband attenuation, 40 .. 130 dB (float32 holds about 135)
  /// @param passband passband edge as a fraction of the lower Nyquist frequency, 0.5 .. 0.99
  /// @throws std::invalid_argument naming the parameter; for rates whose ratio needs more than
  ///   max_taps() coefficients (e.g. 44101 -> 16000), naming `in_rate` and `out_rate`.
  PolyphaseResampler(int in_rate, int out_rate, double attenuation_db = 120.0, double passband = 0.913);

  /// Number of output samples a process() of `n` more input samples returns at most (SIZE_MAX for an `n`
  /// far beyond any array).
  size_t max_output(size_t n) const noexcept;

  /// Pushes `n` input samples and writes every output sample that they complete to `out`.
  /// @param cap room in `out`; at least max_output(n)
  /// @return the number of samples written
  /// @throws std::logic_error after finish() (until reset()), std::invalid_argument if `cap` is short
  size_t process(const float* x, size_t n, float* out, size_t cap);

  /// Number of output samples finish() will return.
  size_t pending_output() const noexcept;

  /// End of stream: writes the output samples up to the input's end, as if silence followed it.
  /// The total output is then ceil(n_in * out_rate / in_rate) samples. Input is refused until reset().
  /// @return the number of samples written (pending_output(); `cap` must hold them)
  size_t finish(float* out, size_t cap);

  /// Forgets the input and starts a new stream.
  void reset() noexcept;

  /// Input sample rate in Hz.
  int in_rate() const noexcept { return in_rate_; }
  /// Output sample rate in Hz.
  int out_rate() const noexcept { return out_rate_; }
  /// Up-sampling factor L (out_rate / in_rate = L / M).
  int up() const noexcept { return L_; }
  /// Down-sampling factor M (out_rate / in_rate = L / M).
  int down() const noexcept { return M_; }
  /// Coefficients per output sample (filter length / L, rounded up to a multiple of 8).
  int taps_per_phase() const noexcept { return T_; }
  /// Filter length in up-sampled samples (odd).
  size_t filter_length() const noexcept { return 2 * static_cast<size_t>(D_) + 1; }
  /// How far the output lags the input, at most, in seconds: the filter's newer half, `D / (L * in_rate)`.
  /// After `t` seconds of input, the output reaches at least `t - latency_s()` seconds.
  double latency_s() const noexcept;
  /// Stopband attenuation in dB, as constructed.
  double attenuation_db() const noexcept { return attenuation_db_; }
  /// Passband edge as a fraction of the lower Nyquist frequency, as constructed.
  double passband() const noexcept { return passband_; }
  /// Input samples taken since construction or reset().
  uint64_t samples_in() const noexcept { return n_in_; }
  /// Output samples given since construction or reset().
  uint64_t samples_out() const noexcept { return n_out_; }

 private:
  void push_sample(float s) noexcept;
  float dot() const noexcept;
  size_t emit_ready(float* out, size_t limit) noexcept;

  int in_rate_, out_rate_;
  double attenuation_db_, passband_;
  int L_ = 1, M_ = 1, T_ = 1;
  uint64_t D_ = 0;
  std::vector<float> coef_;     // L_ phases of T_ coefficients, each reversed (oldest sample first; zeros pad)
  std::vector<float> history_;  // the last T_ samples, stored twice (2*T_) so that they are contiguous
  size_t write_ = 0;            // where the next sample goes in history_ (and write_ + T_)
  uint64_t n_in_ = 0, n_out_ = 0;
  uint64_t next_pos_ = 0;  // up-sampled position of the next output sample: n_out_ * M + D
  bool finished_ = false;
};

}  // namespace rtc
