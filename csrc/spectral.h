/// @file spectral.h
/// @brief Construction of the frontend tables: windows, FFT twiddles, mel filterbanks.
///
/// Everything here runs once, at construction; nothing is called per frame.
#pragma once

#include <string>
#include <vector>

#include "frame_math.h"

namespace rtc {

/// Mel scale used to place the filterbank's band edges.
enum class MelScale { Htk, Slaney };
/// Normalization of the mel filters.
enum class MelNorm { None, Slaney };
/// Analysis window shape (periodic, as for spectral analysis).
enum class WindowKind { Hann, Hamming, Blackman, Rectangular };

/// Parses a window name ("hann", "hamming", "blackman", "rect"/"ones"); throws
/// std::invalid_argument naming `window` otherwise.
WindowKind parse_window(const std::string& name);
/// Parses a mel scale name ("htk", "slaney"); throws std::invalid_argument naming `mel_scale`.
MelScale parse_mel_scale(const std::string& name);
/// Parses a mel norm name ("" / "none", "slaney"); throws std::invalid_argument naming `norm`.
MelNorm parse_mel_norm(const std::string& name);
/// Parses a log mode name ("db", "ln", "" / "none"); throws std::invalid_argument naming `log`.
LogMode parse_log(const std::string& name);

/// Hz to mel on the given scale (librosa's conventions).
double hz_to_mel(double hz, MelScale scale);
/// Mel to Hz on the given scale (librosa's conventions).
double mel_to_hz(double mel, MelScale scale);

/// Periodic window of `win_length` samples, zero-padded and centered in `n_fft`.
std::vector<double> make_window(WindowKind kind, int win_length, int n_fft);

/// Dense mel filterbank, row-major (n_mels, n_fft/2 + 1), float32 like librosa.filters.mel.
std::vector<float> make_mel_filterbank(double sample_rate, int n_fft, int n_mels, double fmin,
                                       double fmax, MelScale scale, MelNorm norm);

/// Owns every table of a configuration and exposes them as FrameTables<double>.
class SpectralTables {
 public:
  /// Builds the tables; parameters must already be validated by the caller.
  SpectralTables(double sample_rate, int n_fft, int win_length, int n_mels, double fmin,
                 double fmax, WindowKind window, MelScale scale, MelNorm norm, double power,
                 LogMode log, double amin);

  /// The view used by compute_frame().
  const FrameTables<double>& view() const { return view_; }
  /// Dense filterbank (n_mels x n_fft/2+1), kept for inspection and tests.
  const std::vector<float>& dense_filterbank() const { return dense_; }

  std::vector<double> window;     ///< n_fft window
  std::vector<int> bitrev;        ///< n_fft/2 bit-reversal table
  std::vector<double> tw_re;      ///< n_fft/4 FFT twiddles (real)
  std::vector<double> tw_im;      ///< n_fft/4 FFT twiddles (imaginary)
  std::vector<double> post_re;    ///< n_fft/2+1 split twiddles (real)
  std::vector<double> post_im;    ///< n_fft/2+1 split twiddles (imaginary)
  /// The twiddles of each radix-2 stage with span len = 4, 8, ..., n_fft/2, contiguous:
  /// stage `len` starts at offset len/2 - 2 and holds tw[k * (n_fft/2) / len], k < len/2
  /// (the same values as tw_re/tw_im, laid out so the CPU's butterfly loop runs on
  /// consecutive memory and vectorizes).
  std::vector<double> stage_tw_re;
  std::vector<double> stage_tw_im;  ///< see stage_tw_re
  std::vector<int> mel_start;     ///< first bin of each band
  std::vector<int> mel_len;       ///< bins per band
  std::vector<int> mel_offset;    ///< offset of each band in mel_weights
  std::vector<float> mel_weights; ///< nonzero weights, concatenated

 private:
  std::vector<float> dense_;
  FrameTables<double> view_;
};

/// In-place complex FFT of size m on bit-reversed input, on the CPU: the same butterflies
/// with the same twiddle values as fft_complex() (so the same result, bit for bit, for
/// finite input), but the first stage (twiddle 1) without multiplications and the others
/// over the tables' contiguous per-stage twiddles.
void fft_complex_host(double* re, double* im, const SpectralTables& t);

/// power_spectrum() on the CPU: for power 2, the inner bins in one branch-free loop (the same
/// operations, so the same values); other powers through power_spectrum() itself.
void power_spectrum_host(const double* re, const double* im, const FrameTables<double>& t,
                         double* power);

/// One log-mel frame on the CPU: compute_frame() with fft_complex_host().
void compute_frame_host(const float* x, const SpectralTables& t, double* re, double* im,
                        double* power, float* out);

/// Real FFT of a power-of-two size (256 to 4096) using the shared per-frame math.
class RealFft {
 public:
  /// @param n FFT size; std::invalid_argument naming `n_fft` unless a power of two in [256, 4096].
  explicit RealFft(int n);
  /// Size of the transform.
  int size() const { return n_; }
  /// Forward transform of `n` real samples into n/2+1 complex bins (interleaved re, im).
  /// Allocates nothing.
  void forward(const float* x, double* out_interleaved);

 private:
  int n_;
  SpectralTables tables_;
  std::vector<double> re_, im_;
};

/// Throws std::invalid_argument naming `n_fft` unless n is a power of two in [256, 4096].
void check_fft_size(int n);

}  // namespace rtc
