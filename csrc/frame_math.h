/// @file frame_math.h
/// @brief Per-frame log-mel math shared by the CPU frontend and the CUDA kernels.
///
/// Every function here is `__host__ __device__` under nvcc, allocates nothing and
/// works on caller-provided buffers, so the CUDA path runs exactly the code the
/// CPU tests cover. The real FFT of size N is computed as a complex FFT of size
/// N/2 (iterative radix-2, precomputed twiddles and bit-reversal table)
/// followed by the standard split step.
///
/// The CPU frontend runs compute_frame_host() (spectral.h): the same operations on
/// the same values, laid out for the compiler to vectorize the FFT's butterflies and
/// the power spectrum: run on the CPU in the kernel's order, these functions give the CPU
/// frames bit for bit (tests/test_cuda_build.py). On a GPU, nvcc contracts multiply-adds and
/// CUDA's logf differs from glibc's, so GPU frames agree with the CPU's within rounding.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
/// Marks a function usable on the host and on a CUDA device.
#define RTC_HD __host__ __device__
#else
/// Marks a function usable on the host and on a CUDA device.
#define RTC_HD
#endif

namespace rtc {

/// How a mel power value is turned into the output value.
enum class LogMode : int {
  None = 0,  ///< output the mel power as is
  Db = 1,    ///< 10 * log10(max(S, amin))
  Ln = 2,    ///< ln(S + amin)
};

/// Read-only tables for one frontend configuration (all arrays owned elsewhere).
///
/// @tparam T the arithmetic type of the FFT (double on the CPU).
template <typename T>
struct FrameTables {
  int n_fft = 0;           ///< frame length, a power of two
  int n_mels = 0;          ///< number of mel bands
  const T* window = nullptr;       ///< n_fft window coefficients (zero padded, centered)
  const int* bitrev = nullptr;     ///< n_fft/2 bit-reversal permutation of the half-size FFT
  const T* tw_re = nullptr;        ///< n_fft/4 twiddles cos(-2 pi j / (n_fft/2))
  const T* tw_im = nullptr;        ///< n_fft/4 twiddles sin(-2 pi j / (n_fft/2))
  const T* post_re = nullptr;      ///< n_fft/2+1 split twiddles cos(-2 pi k / n_fft)
  const T* post_im = nullptr;      ///< n_fft/2+1 split twiddles sin(-2 pi k / n_fft)
  const int* mel_start = nullptr;  ///< first FFT bin of each mel band
  const int* mel_len = nullptr;    ///< number of FFT bins of each mel band
  const int* mel_offset = nullptr; ///< offset of each band's weights in mel_weights
  const float* mel_weights = nullptr; ///< concatenated nonzero filter weights
  T power = T(2);          ///< exponent applied to the magnitude (2: power spectrum)
  LogMode log = LogMode::Db; ///< log scaling of the mel output
  T amin = T(1e-10);       ///< floor (dB) or offset (ln) of the log
  float amin_db = -100.0f;  ///< 10 log10(amin), the dB output of a frame at or under the floor
};

/// Windows samples 2j and 2j+1 into slot bitrev[j] of the half-size complex
/// FFT input (re: even samples, im: odd samples).
template <typename T>
RTC_HD inline void window_pack_one(const float* x, const FrameTables<T>& t, T* re, T* im, int j) {
  const int r = t.bitrev[j];
  re[r] = T(x[2 * j]) * t.window[2 * j];
  im[r] = T(x[2 * j + 1]) * t.window[2 * j + 1];
}

/// Windows n_fft samples into the packed, bit-reversed input of the half-size FFT.
///
/// @param x      n_fft input samples
/// @param t      tables (window, bit reversal)
/// @param re,im  n_fft/2 outputs each
template <typename T>
RTC_HD inline void window_and_pack(const float* x, const FrameTables<T>& t, T* re, T* im) {
  for (int j = 0; j < t.n_fft / 2; ++j) window_pack_one(x, t, re, im, j);
}

/// One radix-2 butterfly: (a, b) <- (a + w b, a - w b).
template <typename T>
RTC_HD inline void butterfly(T* re, T* im, int a, int b, T wr, T wi) {
  const T xr = re[b] * wr - im[b] * wi;
  const T xi = re[b] * wi + im[b] * wr;
  re[b] = re[a] - xr;
  im[b] = im[a] - xi;
  re[a] += xr;
  im[a] += xi;
}

/// Butterfly number i (0 .. m/2-1) of the stage with span `len` of a size-m FFT
/// (lets a CUDA block spread one stage over its threads).
template <typename T>
RTC_HD inline void fft_stage_butterfly(T* re, T* im, int m, int len, int i, const T* tw_re,
                                       const T* tw_im) {
  const int half = len / 2;
  const int k = i % half;
  const int a = (i / half) * len + k;
  const int step = m / len;
  butterfly(re, im, a, a + half, tw_re[k * step], tw_im[k * step]);
}

/// One radix-2 stage of a size-m complex FFT on bit-reversed data.
///
/// @param len   the butterfly span of this stage (2, 4, ..., m)
/// @param tw_re,tw_im m/2 twiddles exp(-2 pi i j / m)
template <typename T>
RTC_HD inline void fft_stage(T* re, T* im, int m, int len, const T* tw_re, const T* tw_im) {
  const int half = len / 2;
  const int step = m / len;  // twiddle stride for this stage
  for (int start = 0; start < m; start += len)
    for (int k = 0; k < half; ++k)
      butterfly(re, im, start + k, start + k + half, tw_re[k * step], tw_im[k * step]);
}

/// In-place complex FFT of size m (power of two) on bit-reversed input.
template <typename T>
RTC_HD inline void fft_complex(T* re, T* im, int m, const T* tw_re, const T* tw_im) {
  for (int len = 2; len <= m; len <<= 1) fft_stage(re, im, m, len, tw_re, tw_im);
}

/// Real-FFT bin k (0..m) from the half-size complex FFT Z of size m:
/// X[k] = (Z[k] + conj(Z[m-k])) / 2 - i e^{-2 pi i k / N} (Z[k] - conj(Z[m-k])) / 2.
template <typename T>
RTC_HD inline void rfft_bin(const T* re, const T* im, int m, int k, const FrameTables<T>& t,
                            T* xr, T* xi) {
  const int k1 = k == m ? 0 : k;  // Z is periodic in m
  const int k2 = k == 0 ? 0 : m - k;
  const T ar = re[k1], ai = im[k1];
  const T br = re[k2], bi = -im[k2];  // conj(Z[m-k])
  const T er = T(0.5) * (ar + br), ei = T(0.5) * (ai + bi);
  const T dr = T(0.5) * (ar - br), di = T(0.5) * (ai - bi);
  const T orr = di, oi = -dr;  // -i * d
  const T wr = t.post_re[k], wi = t.post_im[k];
  *xr = er + wr * orr - wi * oi;
  *xi = ei + wr * oi + wi * orr;
}

/// Magnitude to the tables' power (|X|^power) of real-FFT bin k.
template <typename T>
RTC_HD inline T rfft_bin_power(const T* re, const T* im, int m, int k, const FrameTables<T>& t) {
  T xr, xi;
  rfft_bin(re, im, m, k, t, &xr, &xi);
  const T p2 = xr * xr + xi * xi;
  if (t.power == T(2)) return p2;
  if (t.power == T(1)) return sqrt(p2);
  return pow(p2, t.power / T(2));
}

/// Real-FFT power spectrum (n_fft/2 + 1 bins) from the half-size complex FFT.
template <typename T>
RTC_HD inline void power_spectrum(const T* re, const T* im, const FrameTables<T>& t, T* power) {
  const int m = t.n_fft / 2;
  for (int k = 0; k <= m; ++k) power[k] = rfft_bin_power(re, im, m, k, t);
}

/// A mel power as float32, bounded: samples far beyond full scale can overflow it (to inf, or to
/// NaN through inf - inf in the FFT), and it is then read as the largest float, so no non-finite
/// value reaches the model. Unchanged for every power a float can hold.
template <typename T>
RTC_HD inline float bounded_power(T s) {
  return s <= T(FLT_MAX) ? float(s) : FLT_MAX;
}

/// Applies the log scaling selected in the tables to one mel power value.
template <typename T>
RTC_HD inline float log_scale(T s, const FrameTables<T>& t) {
  switch (t.log) {
    // in float (the output is float32; 128 logs per frame dominated the frame's cost in double):
    // 10 log10(s) = (10 / ln 10) ln(s)
    // (the floor itself exactly as 10 log10(amin), so that silence reads e.g. -100 dB exactly)
    case LogMode::Db: {
      const float p = bounded_power(s);
      return p > t.amin ? 4.3429448190325175f * logf(p) : t.amin_db;
    }
    case LogMode::Ln: return float(log(s <= T(FLT_MAX) ? s + t.amin : T(FLT_MAX)));
    default: return bounded_power(s);
  }
}

/// Mel band `b` of one frame: the filter's dot product with the power
/// spectrum, log scaled.
template <typename T>
RTC_HD inline float mel_band(const T* power, const FrameTables<T>& t, int b) {
  const int s = t.mel_start[b];
  const int n = t.mel_len[b];
  const float* w = t.mel_weights + t.mel_offset[b];
  T acc = T(0);
  for (int j = 0; j < n; ++j) acc += T(w[j]) * power[s + j];
  return log_scale(acc, t);
}

/// Computes one log-mel frame from n_fft samples.
///
/// @param x     n_fft input samples
/// @param t     tables of the configuration
/// @param re,im scratch of n_fft/2 values each
/// @param power scratch of n_fft/2 + 1 values
/// @param out   n_mels outputs
template <typename T>
RTC_HD inline void compute_frame(const float* x, const FrameTables<T>& t, T* re, T* im, T* power,
                                 float* out) {
  const int m = t.n_fft / 2;
  window_and_pack(x, t, re, im);
  fft_complex(re, im, m, t.tw_re, t.tw_im);
  power_spectrum(re, im, t, power);
  for (int b = 0; b < t.n_mels; ++b) out[b] = mel_band(power, t, b);
}

}  // namespace rtc
