// pybind11 bindings of rtc::StreamingMelFrontend (Python name: MelFrontend) and rtc::RealFft.
#pragma once

#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <complex>
#include <cstdint>
#include <string>
#include <type_traits>

#include "bind_common.h"
#include "frontend.h"

namespace py = pybind11;

namespace rtc_bind {

/// Checks an `out=` array: writable, C-contiguous, aligned float32 of shape (>= rows, cols).
inline py::array_t<float> checked_out(py::object out, size_t rows, size_t cols) {
  if (out.is_none())
    return py::array_t<float>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  if (!has_dtype<float>(out)) throw py::type_error("out: must be a float32 numpy array");
  auto a = py::reinterpret_borrow<py::array_t<float>>(out);
  if (a.ndim() != 2 || !writable_aligned(a))
    throw py::value_error("out: must be a writable, C-contiguous, aligned 2-D float32 array");
  if (static_cast<size_t>(a.shape(1)) != cols)
    throw py::value_error("out: must have n_mels=" + std::to_string(cols) + " columns (got " +
                          std::to_string(a.shape(1)) + ")");
  if (static_cast<size_t>(a.shape(0)) < rows)
    throw py::value_error("out: has room for " + std::to_string(a.shape(0)) +
                          " frames but this block completes " + std::to_string(rows));
  return a;
}

/// Whether `a` holds elements of type T whatever their byte order: a byte-swapped block ('>i2' read from
/// a big-endian file) is converted to the machine's order by the forcecast that reads it, as the
/// other bindings' blocks are.
template <class T>
bool holds(const py::array& a) {
  const py::dtype dt = a.dtype();
  return dt.itemsize() == static_cast<py::ssize_t>(sizeof(T)) &&
         dt.kind() == (std::is_floating_point<T>::value ? 'f' : 'i');
}

/// Refuses an `out=` whose memory overlaps the samples being read: frames written over samples not yet
/// read would be computed from the frames' bytes.
inline void check_no_overlap(const void* in, size_t in_bytes, const float* out, size_t out_bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(in), b = reinterpret_cast<std::uintptr_t>(out);
  if (in_bytes > 0 && out_bytes > 0 && a < b + out_bytes && b < a + in_bytes)
    throw py::value_error("out: overlaps the block's samples (give the frames a buffer of their own)");
}

/// Pushes a 1-D numpy block of a supported dtype; returns the new frames.
inline py::object frontend_push(rtc::StreamingMelFrontend& f, py::handle block_arg, py::object out) {
  // any array-like, as the trackers and the ring take (a list, a numpy scalar): named in the error, not
  // pybind11's list of signatures
  const py::array block_in = py::array::ensure(block_arg);
  if (!block_in || block_in.dtype().kind() == 'O')
    throw py::type_error("block: must be an array of samples (got " + describe_arg(block_arg) + ")");
  const py::object block_obj = aligned(block_in);
  const py::array block = py::reinterpret_borrow<py::array>(block_obj);
  if (block.ndim() != 1)
    throw py::value_error("block: must be 1-D mono audio (got " + std::to_string(block.ndim()) +
                          "-D; pick a channel or downmix first)");
  const ExclusiveUse in_use(&f, "MelFrontend.push");
  const size_t n = static_cast<size_t>(block.size());
  const size_t n_mels = static_cast<size_t>(f.config().n_mels);
  const size_t rows = f.frames_for(n);
  py::array_t<float> dst = checked_out(out, rows, n_mels);
  float* o = dst.mutable_data();
  const size_t cap = static_cast<size_t>(dst.shape(0));
  size_t written = 0;
  const size_t out_bytes = cap * n_mels * sizeof(float);
  if (holds<float>(block)) {
    auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(block);
    check_no_overlap(a.data(), n * sizeof(float), o, out_bytes);
    py::gil_scoped_release nogil;
    written = f.push(a.data(), n, o, cap);
  } else if (holds<double>(block)) {
    auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(block);
    check_no_overlap(a.data(), n * sizeof(double), o, out_bytes);
    py::gil_scoped_release nogil;
    written = f.push(a.data(), n, o, cap);
  } else if (holds<int16_t>(block)) {
    auto a = py::array_t<int16_t, py::array::c_style | py::array::forcecast>::ensure(block);
    check_no_overlap(a.data(), n * sizeof(int16_t), o, out_bytes);
    py::gil_scoped_release nogil;
    written = f.push(a.data(), n, o, cap);
  } else {
    throw py::type_error("block: dtype must be float32, float64 or int16 (got " +
                         std::string(py::str(block.dtype())) + ")");
  }
  if (out.is_none()) return std::move(dst);
  // a view of the first `written` rows of `out` (C-contiguous, checked above), built directly: cheaper
  // than indexing through Python on every block
  return py::array_t<float>({static_cast<py::ssize_t>(written), static_cast<py::ssize_t>(n_mels)}, o, dst);
}

inline py::dict frontend_config(const rtc::MelConfig& c) {
  py::dict d;
  d["sample_rate"] = c.sample_rate;
  d["n_fft"] = c.n_fft;
  d["hop_length"] = c.hop_length;
  d["n_mels"] = c.n_mels;
  d["fmin"] = c.fmin;
  d["fmax"] = c.fmax;
  d["win_length"] = c.win_length;
  d["window"] = c.window;
  d["mel_scale"] = c.mel_scale;
  d["norm"] = c.norm.empty() ? py::none() : py::cast(c.norm);
  d["power"] = c.power;
  d["log"] = c.log.empty() ? py::none() : py::cast(c.log);
  d["amin"] = c.amin;
  return d;
}

}  // namespace rtc_bind

inline void bind_frontend(py::module_& m) {
  py::class_<rtc::StreamingMelFrontend>(m, "MelFrontend", R"doc(
Streaming log-mel frontend (native).

Frame ``i`` covers stream samples ``[i*hop_length, i*hop_length + n_fft)``
(no centering); its time is ``(i*hop_length + n_fft/2) / sample_rate``.
Any split of a stream into blocks gives bit-for-bit the frames of one push of
the whole stream. NaN/Inf samples are replaced by 0 and counted. One object
serves one thread at a time: a push while another thread's push runs raises
RuntimeError (give each thread its own frontend).

Parameters
----------
sample_rate : float
    Input sample rate in Hz.
n_fft : int
    Frame length, a power of two from 256 to 4096.
hop_length : int
    Frame advance in samples, 1 to ``n_fft``.
n_mels : int
    Number of mel bands, 1 to 4096.
fmin, fmax : float
    Band edges in Hz; ``fmax=None`` means ``sample_rate / 2``.
win_length : int, optional
    Window length (<= ``n_fft``, zero padded and centered); default ``n_fft``.
window : {"hann", "hamming", "blackman", "rect"}
    Periodic analysis window.
mel_scale : {"htk", "slaney"}
norm : {None, "slaney"}
    Mel filter normalization (``"slaney"``: area normalization).
power : float
    Exponent of the magnitude (2: power spectrum).
log : {"db", "ln", None}
    ``"db"``: ``10*log10(max(S, amin))``; ``"ln"``: ``ln(S + amin)``; ``None``: ``S``.
amin : float
    Floor of the dB scale, offset of ``ln``.

Raises
------
ValueError
    A parameter is out of range; the message names it.
)doc")
      .def(py::init([](py::handle sample_rate, py::handle n_fft, py::handle hop_length, py::handle n_mels,
                       py::handle fmin, py::handle fmax, py::handle win_length,
                       py::handle window, py::handle mel_scale, py::handle norm_in, py::handle power,
                       py::handle log_in, py::handle amin) {
             using rtc_bind::positive_int_arg;
             using rtc_bind::real_arg;
             rtc::MelConfig c;
             c.sample_rate = real_arg(sample_rate, "sample_rate");
             c.n_fft = positive_int_arg(n_fft, "n_fft");
             c.hop_length = positive_int_arg(hop_length, "hop_length");
             c.n_mels = positive_int_arg(n_mels, "n_mels");
             c.fmin = real_arg(fmin, "fmin");
             if (!fmax.is_none()) {
               c.fmax = real_arg(fmax, "fmax");
               if (!(c.fmax > 0))  // 0 or NaN: the native check would blame fmin
                 throw py::value_error("fmax: must be positive or None (got " + rtc_bind::describe_arg(fmax) + ")");
             }
             if (!win_length.is_none()) c.win_length = positive_int_arg(win_length, "win_length");
             using rtc_bind::text_arg;
             constexpr const char* kNorms = "None or 'slaney'";
             constexpr const char* kLogs = "'db', 'ln' or None";
             c.window = text_arg(window, "window", "'hann', 'hamming', 'blackman' or 'rect'");
             c.mel_scale = text_arg(mel_scale, "mel_scale", "'htk' or 'slaney'");
             c.norm = "";  // None
             if (!norm_in.is_none()) {
               c.norm = text_arg(norm_in, "norm", kNorms);
               if (c.norm.empty()) throw py::value_error(std::string("norm: must be ") + kNorms);
             }
             c.power = real_arg(power, "power");
             c.amin = real_arg(amin, "amin");
             c.log = "";  // None: power (or magnitude) mel bands
             if (!log_in.is_none()) {
               c.log = text_arg(log_in, "log", kLogs);
               if (c.log.empty()) throw py::value_error(std::string("log: must be ") + kLogs);
             }
             return new rtc::StreamingMelFrontend(c);
           }),
           py::arg("sample_rate"), py::arg("n_fft"), py::arg("hop_length"), py::arg("n_mels"),
           py::arg("fmin") = 0.0, py::arg("fmax") = py::none(), py::arg("win_length") = py::none(),
           py::arg("window") = "hann", py::arg("mel_scale") = "htk", py::arg("norm") = py::none(),
           py::arg("power") = 2.0, py::arg("log") = "db", py::arg("amin") = 1e-10)
      .def("push", &rtc_bind::frontend_push, py::arg("block"), py::arg("out") = py::none(), R"doc(
Push a block of samples and return the frames it completed.

Parameters
----------
block : ndarray, shape (n,)
    Mono samples: float32, float64 or int16 (int16 is scaled to [-1, 1)).
    Any length, zero included.
out : ndarray, shape (>= n_new, n_mels), float32, optional
    Preallocated buffer to write into (no allocation).

Returns
-------
ndarray, shape (n_new, n_mels), float32
    The completed frames (a view of ``out`` when given).
)doc")
      .def(
          "frames_for",
          [](const rtc::StreamingMelFrontend& f, py::handle n) {
            return f.frames_for(rtc_bind::size_arg(n, "n"));
          },
          py::arg("n"), "Number of frames a push of ``n`` more samples will return.")
      .def("reset", rtc_bind::exclusive_reset<rtc::StreamingMelFrontend>("MelFrontend.reset"),
           "Forget buffered samples and zero the counters (RuntimeError while another thread pushes).")
      .def_property_readonly("config", [](const rtc::StreamingMelFrontend& f) { return rtc_bind::frontend_config(f.config()); },
                             "Parameters as a dict; ``MelFrontend(**config)`` rebuilds the frontend.")
      .def_property_readonly("frames_emitted", &rtc::StreamingMelFrontend::frames_emitted,
                             "Frames emitted since construction or reset().")
      .def_property_readonly("samples_consumed", &rtc::StreamingMelFrontend::samples_consumed,
                             "Samples consumed since construction or reset().")
      .def_property_readonly("nonfinite_replaced", &rtc::StreamingMelFrontend::nonfinite_replaced,
                             "NaN/Inf samples replaced by 0 since construction or reset().")
      .def_property_readonly("n_mels", [](const rtc::StreamingMelFrontend& f) { return f.config().n_mels; })
      .def_property_readonly("hop_length", [](const rtc::StreamingMelFrontend& f) { return f.config().hop_length; })
      .def_property_readonly("n_fft", [](const rtc::StreamingMelFrontend& f) { return f.config().n_fft; })
      .def_property_readonly("sample_rate", [](const rtc::StreamingMelFrontend& f) { return f.config().sample_rate; })
      .def_property_readonly(
          "filterbank",
          [](const rtc::StreamingMelFrontend& f) {
            const auto& fb = f.filterbank();
            const py::ssize_t rows = f.config().n_mels, cols = f.config().n_fft / 2 + 1;
            py::array_t<float> a({rows, cols});
            std::copy(fb.begin(), fb.end(), a.mutable_data());
            return a;
          },
          "Dense mel filterbank, shape (n_mels, n_fft/2 + 1), float32.");
}

/// Test-only hooks (pedalboard style): exposed as rtclassify._core._internal.
inline void bind_frontend_internal(py::module_& internal) {
  internal.def(
      "rfft",
      [](py::array_t<float, rtc_bind::kAlignedIn> x) {
        if (x.ndim() != 1) throw py::value_error("x: must be 1-D");
        rtc::RealFft fft(static_cast<int>(x.size()));
        py::array_t<std::complex<double>> out(x.size() / 2 + 1);
        const float* src = x.data();
        double* dst = reinterpret_cast<double*>(out.mutable_data());
        {
          py::gil_scoped_release nogil;
          fft.forward(src, dst);
        }
        return out;
      },
      py::arg("x"), "Real FFT of a power-of-two length (256 to 4096) with the native code.");
}
