// The rtclassify._core extension module: one bind_x() per csrc unit.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_cuda.h"
#include "bind_framemath.h"
#include "bind_frontend.h"
#include "bind_resampler.h"
#include "bind_ring.h"
#include "bind_trackers.h"

#ifdef RTCLASSIFY_WITH_CUDA
#include "cuda/mel_cuda.h"
#endif

namespace py = pybind11;

namespace {
py::dict build_info() {
  py::dict d;
  d["version"] = RTCLASSIFY_VERSION;
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  d["compiler"] = std::string("msvc ") + std::to_string(_MSC_VER);
#else
  d["compiler"] = std::string("unknown");
#endif
  d["cxx_standard"] = static_cast<long>(__cplusplus);
#ifdef RTCLASSIFY_WITH_CUDA
  d["cuda"] = true;
  d["cuda_version"] = RTCLASSIFY_CUDA_VERSION;
  d["cuda_architectures"] = RTCLASSIFY_CUDA_ARCHS;
  d["cuda_devices"] = rtc::cuda::device_count();
#else
  d["cuda"] = false;
  d["cuda_version"] = py::none();
  d["cuda_architectures"] = py::none();
  d["cuda_devices"] = 0;
#endif
#ifdef NDEBUG
  d["build_type"] = "release";
#else
  d["build_type"] = "debug";
#endif
  return d;
}
}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rtclassify native core: ring buffers, resampler, streaming log-mel frontend, trackers.";
  m.def("build_info", &build_info,
        "What was compiled: version, compiler, cuda (bool), cuda_version, cuda_architectures, "
        "cuda_devices (GPUs visible now), build_type.");
  bind_ring(m);
  bind_resampler(m);
  bind_frontend(m);
  bind_cuda(m);
  bind_trackers(m);
  auto internal = m.def_submodule("_internal", "Test-only hooks; not a public API.");
  bind_frontend_internal(internal);
  bind_framemath_internal(internal);
}
