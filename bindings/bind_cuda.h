// pybind11 bindings of rtc::cuda::CudaMelFrontend (CUDA builds only).
//
// The native class takes raw pointers (host or device) and writes into a
// device buffer the caller allocated; rtclassify/cuda_frontend.py wraps it
// into the public rtclassify.CudaMelFrontend (numpy / cupy in, cupy out).
// In builds without CUDA bind_cuda() registers nothing and
// rtclassify.CudaMelFrontend says that the build has no CUDA.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_common.h"
#include "bind_framemath.h"
#include "bind_frontend.h"

#ifdef RTCLASSIFY_WITH_CUDA
#include <cstdint>
#include <memory>
#include <string>

#include "cuda/cuda_frontend.h"
#endif

namespace py = pybind11;

#ifdef RTCLASSIFY_WITH_CUDA

inline void bind_cuda(py::module_& m) {
  using rtc::cuda::CudaMelFrontend;
  m.def(
      "_cuda_device_available",
      []() {
        const char* why = "";
        const bool ok = rtc::cuda::device_available(&why);
        return py::make_tuple(ok, std::string(why));
      },
      "(available, reason): whether the CUDA runtime sees a device, and why not.");

  py::class_<CudaMelFrontend>(m, "_CudaMelFrontend", R"doc(
Native batched CUDA log-mel frontend (use rtclassify.CudaMelFrontend).

Parameters
----------
streams : int
    Number of streams S (1 to 65535).
config : dict
    Frontend parameters (``MelFrontend.config``).
max_block : int
    Longest block (samples per stream) pushed without a device allocation.
device : int
    CUDA device index; -1: the current device.

Raises
------
ValueError
    A parameter is out of range; the message names it.
RuntimeError
    "no CUDA device: ..." without a GPU, or naming the CUDA call that failed.
)doc")
      .def(py::init([](int streams, py::dict config, size_t max_block, int device) {
             rtc::MelConfig c = rtc_bind::mel_config_from_dict(config);
             return std::make_unique<CudaMelFrontend>(streams, c, max_block, device);
           }),
           py::arg("streams"), py::arg("config"), py::arg("max_block") = 4096, py::arg("device") = -1)
      .def(
          "frames_for", [](const CudaMelFrontend& f, py::handle n) { return f.frames_for(rtc_bind::size_arg(n, "n")); },
          py::arg("n"), "Frames per stream a push of ``n`` samples per stream will write.")
      .def(
          "push_ptr",
          [](CudaMelFrontend& f, std::uintptr_t x, size_t n, size_t row_stride, bool on_device,
             std::uintptr_t out, size_t out_frames, std::uintptr_t stream) {
            const rtc_bind::ExclusiveUse in_use(&f, "CudaMelFrontend.push_ptr");
            py::gil_scoped_release nogil;
            return f.push(reinterpret_cast<const float*>(x), n, row_stride, on_device,
                          reinterpret_cast<float*>(out), out_frames, reinterpret_cast<void*>(stream));
          },
          py::arg("x"), py::arg("n"), py::arg("row_stride"), py::arg("on_device"), py::arg("out"),
          py::arg("out_frames"), py::arg("stream"),
          "Push ``n`` float32 samples per stream from address ``x`` (rows ``row_stride`` floats "
          "apart; host or device memory) and write the frames to device address ``out``; "
          "returns the frames per stream.")
      .def(
          "push_host",
          [](CudaMelFrontend& f, py::array_t<float, rtc_bind::kAlignedIn> x,
             std::uintptr_t out, size_t out_frames, std::uintptr_t stream) {
            if (x.ndim() != 2 || x.shape(0) != f.streams())
              throw py::value_error("block: must have shape (streams=" + std::to_string(f.streams()) +
                                    ", n)");
            const size_t n = static_cast<size_t>(x.shape(1));
            const float* src = x.data();
            const rtc_bind::ExclusiveUse in_use(&f, "CudaMelFrontend.push_host");
            py::gil_scoped_release nogil;
            return f.push(src, n, n, false, reinterpret_cast<float*>(out), out_frames,
                          reinterpret_cast<void*>(stream));
          },
          py::arg("x"), py::arg("out"), py::arg("out_frames"), py::arg("stream"),
          "Push a host float32 array (streams, n); frames go to device address ``out``.")
      .def(
          "reset",
          [](CudaMelFrontend& f, std::uintptr_t stream) {
            // not while a push runs (it releases the GIL): as every other native object's reset
            const rtc_bind::ExclusiveUse in_use(&f, "CudaMelFrontend.reset");
            f.reset(reinterpret_cast<void*>(stream));
          },
          py::arg("stream") = 0, "Forget the pending samples and zero the counters.")
      .def_property_readonly("config",
                             [](const CudaMelFrontend& f) { return rtc_bind::frontend_config(f.config()); })
      .def_property_readonly("streams", &CudaMelFrontend::streams)
      .def_property_readonly("device", &CudaMelFrontend::device)
      .def_property_readonly("max_block", &CudaMelFrontend::max_block)
      .def_property_readonly("pending", &CudaMelFrontend::pending)
      .def_property_readonly("frames_emitted", &CudaMelFrontend::frames_emitted)
      .def_property_readonly("samples_consumed", &CudaMelFrontend::samples_consumed)
      .def_property_readonly("host_uploads", &CudaMelFrontend::host_uploads)
      .def_property_readonly("nonfinite_replaced", [](const CudaMelFrontend& f) {
        const auto v = f.nonfinite_replaced();
        py::array_t<uint64_t> a(static_cast<py::ssize_t>(v.size()));
        std::copy(v.begin(), v.end(), a.mutable_data());
        return a;
      });
}

#else

/// Builds without CUDA register nothing.
inline void bind_cuda(py::module_&) {}

#endif
