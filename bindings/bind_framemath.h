// Test-only CPU runs of the CUDA path's order of operations (rtclassify._core._internal).
//
// The CUDA kernel (csrc/cuda/mel_cuda.cu) spreads each frame's math over the
// threads of one block: window_pack_one per j, fft_stage_butterfly per i in
// each stage, rfft_bin_power per k, mel_band per b, with a barrier between
// the phases. The CUDA frontend (csrc/cuda/cuda_frontend.cu) keeps each
// stream's pending samples in row buffers driven by BatchStreamPlan. These
// hooks run the same shared functions in those orders on the CPU, so tests
// without a GPU check that the GPU's decomposition computes the CPU
// frontend's frames.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch_stream.h"
#include "frontend.h"

namespace py = pybind11;

namespace rtc_bind {

/// MelConfig from a dict shaped like MelFrontend.config (None allowed for
/// fmax, win_length, norm and log). Unknown keys raise ValueError naming them.
inline rtc::MelConfig mel_config_from_dict(const py::dict& d) {
  static const char* known[] = {"sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax",
                                "win_length", "window", "mel_scale", "norm", "power", "log", "amin"};
  for (auto item : d) {
    const std::string key = py::str(item.first);
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) ==
        std::end(known))
      throw py::value_error(key + ": not a frontend parameter");
  }
  for (const char* req : {"sample_rate", "n_fft", "hop_length", "n_mels"})
    if (!d.contains(req)) throw py::value_error(std::string(req) + ": missing frontend parameter");
  rtc::MelConfig c;
  c.sample_rate = d["sample_rate"].cast<double>();
  c.n_fft = d["n_fft"].cast<int>();
  c.hop_length = d["hop_length"].cast<int>();
  c.n_mels = d["n_mels"].cast<int>();
  auto opt = [&](const char* key) -> py::object {
    return d.contains(key) ? py::reinterpret_borrow<py::object>(d[key]) : py::none();
  };
  if (!opt("fmin").is_none()) c.fmin = opt("fmin").cast<double>();
  if (!opt("fmax").is_none()) {
    c.fmax = opt("fmax").cast<double>();
    if (c.fmax < 0) throw py::value_error("fmax: must be positive or None");
  }
  if (!opt("win_length").is_none()) {
    c.win_length = opt("win_length").cast<int>();
    if (c.win_length < 1) throw py::value_error("win_length: must be at least 1 or None");
  }
  if (!opt("window").is_none()) c.window = opt("window").cast<std::string>();
  if (!opt("mel_scale").is_none()) c.mel_scale = opt("mel_scale").cast<std::string>();
  c.norm = opt("norm").is_none() ? std::string() : opt("norm").cast<std::string>();
  if (!opt("power").is_none()) c.power = opt("power").cast<double>();
  if (d.contains("log")) c.log = opt("log").is_none() ? std::string() : opt("log").cast<std::string>();
  if (!opt("amin").is_none()) c.amin = opt("amin").cast<double>();
  rtc::validate(c);
  return c;
}

/// Host tables of a validated configuration (the ones the CUDA frontend uploads).
inline rtc::SpectralTables tables_for(const rtc::MelConfig& c) {
  return rtc::SpectralTables(c.sample_rate, c.n_fft, c.win_length, c.n_mels, c.fmin, c.fmax,
                             rtc::parse_window(c.window), rtc::parse_mel_scale(c.mel_scale),
                             rtc::parse_mel_norm(c.norm), c.power, rtc::parse_log(c.log), c.amin);
}

/// Runs one frame the way a thread block of the CUDA kernel does.
///
/// Each phase runs its independent items (j, butterfly i, bin k, band b) in
/// the kernel's thread-strided order when `rng` is null (thread t handles
/// t, t + block_dim, ...; threads in index order), or in a random order drawn
/// from `rng` (any interleaving of the GPU's threads must give the same frame).
class BlockOrderFrame {
 public:
  BlockOrderFrame(const rtc::FrameTables<double>& t, int block_dim)
      : t_(t), block_dim_(block_dim), m_(t.n_fft / 2),
        re_(static_cast<size_t>(m_)), im_(static_cast<size_t>(m_)),
        power_(static_cast<size_t>(m_ + 1)) {}

  void run(const float* x, float* out, std::mt19937* rng) {
    for_each(m_, rng, [&](int j) { rtc::window_pack_one(x, t_, re_.data(), im_.data(), j); });
    for (int len = 2; len <= m_; len <<= 1)
      for_each(m_ / 2, rng, [&](int i) {
        rtc::fft_stage_butterfly(re_.data(), im_.data(), m_, len, i, t_.tw_re, t_.tw_im);
      });
    for_each(m_ + 1, rng, [&](int k) { power_[k] = rtc::rfft_bin_power(re_.data(), im_.data(), m_, k, t_); });
    for_each(t_.n_mels, rng, [&](int b) { out[b] = rtc::mel_band(power_.data(), t_, b); });
  }

 private:
  template <typename F>
  void for_each(int count, std::mt19937* rng, F&& f) {
    order_.clear();
    if (rng == nullptr) {
      for (int t = 0; t < block_dim_; ++t)
        for (int i = t; i < count; i += block_dim_) order_.push_back(i);
    } else {
      order_.resize(static_cast<size_t>(count));
      std::iota(order_.begin(), order_.end(), 0);
      std::shuffle(order_.begin(), order_.end(), *rng);
    }
    for (int i : order_) f(i);
  }

  const rtc::FrameTables<double>& t_;
  int block_dim_;
  int m_;
  std::vector<double> re_, im_, power_;
  std::vector<int> order_;
};

using f32_in = py::array_t<float, kAlignedIn>;

}  // namespace rtc_bind

/// Registers the test-only hooks of the shared per-frame math and the batched
/// streaming bookkeeping in rtclassify._core._internal.
inline void bind_framemath_internal(py::module_& internal) {
  internal.def(
      "frames_block_order",
      [](rtc_bind::f32_in x, py::dict config, int block_dim, unsigned seed) {
        if (x.ndim() != 1) throw py::value_error("x: must be 1-D");
        if (block_dim < 1) throw py::value_error("block_dim: must be at least 1");
        const rtc::MelConfig c = rtc_bind::mel_config_from_dict(config);
        const rtc::SpectralTables tables = rtc_bind::tables_for(c);
        const size_t n = static_cast<size_t>(x.size());
        const size_t nfft = static_cast<size_t>(c.n_fft), hop = static_cast<size_t>(c.hop_length);
        const size_t frames = n < nfft ? 0 : (n - nfft) / hop + 1;
        py::array_t<float> out({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(c.n_mels)});
        const float* src = x.data();
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          rtc_bind::BlockOrderFrame frame(tables.view(), block_dim);
          std::mt19937 rng(seed);
          for (size_t f = 0; f < frames; ++f)
            frame.run(src + f * hop, dst + f * static_cast<size_t>(c.n_mels), seed ? &rng : nullptr);
        }
        return out;
      },
      py::arg("x"), py::arg("config"), py::arg("block_dim") = 128, py::arg("seed") = 0u,
      R"doc(Frames of a whole signal computed in the CUDA kernel's block-parallel order.

Parameters
----------
x : ndarray, shape (n,), float32
config : dict
    Frontend parameters (``MelFrontend.config``).
block_dim : int
    Threads per block of the emulated kernel (the kernel uses 128).
seed : int
    0: the kernel's thread-strided order; otherwise each phase's items run
    in a random order drawn from this seed.

Returns
-------
ndarray, shape (n_frames, n_mels), float32
)doc");

  internal.def(
      "batched_stream_cpu",
      [](rtc_bind::f32_in x, std::vector<size_t> blocks, py::dict config) {
        if (x.ndim() != 2) throw py::value_error("x: must be 2-D (streams, samples)");
        const size_t S = static_cast<size_t>(x.shape(0)), total = static_cast<size_t>(x.shape(1));
        size_t sum = 0, longest = 1;
        for (size_t b : blocks) {
          if (b > total - sum) throw py::value_error("blocks: add up to more samples than x has per stream");
          sum += b;
          longest = std::max(longest, b);
        }
        const rtc::MelConfig c = rtc_bind::mel_config_from_dict(config);
        const rtc::SpectralTables tables = rtc_bind::tables_for(c);
        const size_t n_mels = static_cast<size_t>(c.n_mels);
        rtc::BatchStreamPlan plan(c.n_fft, c.hop_length);
        const size_t row = rtc::BatchStreamPlan::row_capacity(c.n_fft, longest);
        const size_t nfft = static_cast<size_t>(c.n_fft), hop = static_cast<size_t>(c.hop_length);
        const size_t all_frames = sum < nfft ? 0 : (sum - nfft) / hop + 1;
        py::array_t<float> out({static_cast<py::ssize_t>(S), static_cast<py::ssize_t>(all_frames),
                                static_cast<py::ssize_t>(n_mels)});
        py::array_t<uint64_t> nonfinite(static_cast<py::ssize_t>(S));
        const float* src = x.data();
        float* dst = out.mutable_data();
        uint64_t* bad = nonfinite.mutable_data();
        {
          py::gil_scoped_release nogil;
          std::vector<float> work[2] = {std::vector<float>(S * row), std::vector<float>(S * row)};
          std::vector<float> batch;  // one push's output: (S, frames, n_mels)
          std::fill(bad, bad + S, uint64_t(0));
          int cur = 0;
          size_t consumed = 0, done_frames = 0;
          rtc_bind::BlockOrderFrame frame(tables.view(), 128);
          for (size_t n : blocks) {
            if (n == 0) continue;
            const rtc::BatchStep step = plan.plan(n);
            float* rows = work[cur].data();
            for (size_t s = 0; s < S; ++s)  // ingest
              for (size_t j = 0; j < n; ++j) {
                bool replaced = false;
                rows[s * row + step.write_offset + j] =
                    rtc::finite_or_zero(src[s * total + consumed + j], &replaced);
                bad[s] += replaced ? 1 : 0;
              }
            batch.assign(S * step.frames * n_mels, 0.0f);
            for (size_t s = 0; s < S; ++s)  // the frame kernel's grid
              for (size_t f = 0; f < step.frames; ++f)
                frame.run(rows + s * row + f * hop, batch.data() + (s * step.frames + f) * n_mels, nullptr);
            if (step.frames > 0) {
              float* next = work[1 - cur].data();
              for (size_t s = 0; s < S; ++s)
                std::copy(rows + s * row + step.tail_offset,
                          rows + s * row + step.tail_offset + step.pending_after, next + s * row);
              cur = 1 - cur;
            }
            for (size_t s = 0; s < S; ++s)
              std::copy(batch.begin() + static_cast<std::ptrdiff_t>(s * step.frames * n_mels),
                        batch.begin() + static_cast<std::ptrdiff_t>((s + 1) * step.frames * n_mels),
                        dst + (s * all_frames + done_frames) * n_mels);
            plan.commit(step);
            consumed += n;
            done_frames += step.frames;
          }
        }
        return py::make_tuple(out, nonfinite, plan.pending());
      },
      py::arg("x"), py::arg("blocks"), py::arg("config"),
      R"doc(CPU run of the CUDA frontend's batched streaming algorithm.

Pushes ``blocks[0]``, ``blocks[1]``, ... samples of every stream of ``x``
through BatchStreamPlan with two row buffers, NaN/Inf replacement by
finite_or_zero and frames in the kernel's order, as CudaMelFrontend.push does
on the device.

Returns
-------
frames : ndarray, shape (S, n_frames, n_mels), float32
nonfinite : ndarray, shape (S,), uint64
pending : int
    Samples each stream keeps after the last block.
)doc");
}
