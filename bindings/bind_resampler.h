// pybind11 bindings of rtc::PolyphaseResampler.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind_common.h"
#include "resampler.h"

namespace py = pybind11;

inline void bind_resampler(py::module_& m) {
  py::class_<rtc::PolyphaseResampler>(m, "Resampler", R"doc(
Streaming low-latency resampler of mono float32 audio (polyphase FIR, rational ratio).

One linear-phase Kaiser-windowed sinc low-pass, evaluated only where an output
sample falls. The output is time-aligned with the input (output sample ``j`` lies
at ``j / out_rate`` seconds) and lags it by at most ``latency_s``: the filter's
newer half, 5.9 ms from 44.1, 48, 96 or 192 kHz to 16 kHz (soxr's streaming HQ:
36.5-79 ms), because each output sample is given as soon as its newest input
sample has arrived. Passband flat up to ``passband`` of the lower Nyquist
frequency; from the lower Nyquist frequency on, ``attenuation_db`` down (nothing
aliases into the band below it). Any split of the input into blocks gives
bit-for-bit the output of one call. One thread at a time. Samples are not
checked: a NaN or infinite one spreads over the filter's length of output
(about 12 ms from 48 kHz to 16 kHz), and so can a sum beyond float32's range
from samples near 3.4e38; replace them first, as StreamSession does.

Parameters
----------
in_rate, out_rate : int
    Sample rates in Hz, 1 to 4,000,000. A ratio whose filter would need more
    than 2**22 coefficients (e.g. 44101 -> 16000) raises ValueError.
attenuation_db : float
    Stopband attenuation, 40 to 130 dB (default 120; float32 holds about 135).
passband : float
    Passband edge as a fraction of the lower Nyquist frequency, 0.5 to 0.99
    (default 0.913, soxr's).
)doc")
      .def(py::init([](py::handle in_rate, py::handle out_rate, py::handle attenuation_db, py::handle passband) {
             // whole rates only; the native code checks their range and names it
             return new rtc::PolyphaseResampler(rtc_bind::positive_int_arg(in_rate, "in_rate"),
                                                rtc_bind::positive_int_arg(out_rate, "out_rate"),
                                                rtc_bind::real_arg(attenuation_db, "attenuation_db"),
                                                rtc_bind::real_arg(passband, "passband"));
           }),
           py::arg("in_rate"), py::arg("out_rate"), py::arg("attenuation_db") = 120.0, py::arg("passband") = 0.913)
      .def(
          "process",
          [](rtc::PolyphaseResampler& r, py::handle block_in, bool last) {
            rtc_bind::require_float_samples(block_in, "block");
            const auto block = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(
                rtc_bind::aligned(block_in));
            if (!block) throw py::type_error("block: must be convertible to a float32 array");
            if (block.ndim() != 1)
              throw py::value_error("block: must be 1-D mono audio (got " + std::to_string(block.ndim()) + "-D)");
            const rtc_bind::ExclusiveUse in_use(&r, "Resampler.process");
            const size_t n = static_cast<size_t>(block.size());
            const size_t cap = r.max_output(n);
            py::array_t<float> out(static_cast<py::ssize_t>(cap));
            size_t w;
            {
              py::gil_scoped_release nogil;
              w = r.process(block.data(), n, out.mutable_data(), cap);
            }
            if (!last) return out;
            py::array_t<float> all(static_cast<py::ssize_t>(w + r.pending_output()));
            std::copy(out.data(), out.data() + w, all.mutable_data());
            r.finish(all.mutable_data() + w, static_cast<size_t>(all.size()) - w);
            return all;
          },
          py::arg("block"), py::arg("last") = false, R"doc(
Push a 1-D block of samples (float32 or float64); returns the output samples it
completes (float32). ``last=True`` ends the stream: the output up to the input's
end follows, ``ceil(n_in * out_rate / in_rate)`` samples in all; then ``reset()``
before new input (RuntimeError otherwise).)doc")
      .def("reset", rtc_bind::exclusive_reset<rtc::PolyphaseResampler>("Resampler.reset"),
           "Forget the input and start a new stream (RuntimeError while another thread processes).")
      .def(
          "max_output",
          [](const rtc::PolyphaseResampler& r, py::handle n) { return r.max_output(rtc_bind::size_arg(n, "n")); },
          py::arg("n"),
           "Number of output samples a process() of ``n`` more samples returns (without ``last``).")
      .def_property_readonly("in_rate", &rtc::PolyphaseResampler::in_rate)
      .def_property_readonly("out_rate", &rtc::PolyphaseResampler::out_rate)
      .def_property_readonly("up", &rtc::PolyphaseResampler::up, "L in out_rate / in_rate = L / M (reduced).")
      .def_property_readonly("down", &rtc::PolyphaseResampler::down, "M in out_rate / in_rate = L / M (reduced).")
      .def_property_readonly("taps_per_phase", &rtc::PolyphaseResampler::taps_per_phase,
                             "Filter coefficients per output sample.")
      .def_property_readonly("filter_length", &rtc::PolyphaseResampler::filter_length,
                             "Filter length in up-sampled samples (odd).")
      .def_property_readonly("latency_s", &rtc::PolyphaseResampler::latency_s,
                             "Largest lag of the output behind the input, in seconds (the filter's newer half).")
      .def_property_readonly("attenuation_db", &rtc::PolyphaseResampler::attenuation_db)
      .def_property_readonly("passband", &rtc::PolyphaseResampler::passband)
      .def_property_readonly("samples_in", &rtc::PolyphaseResampler::samples_in)
      .def_property_readonly("samples_out", &rtc::PolyphaseResampler::samples_out);
}
