// pybind11 bindings of rtc::SampleRing.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind_common.h"
#include "sample_ring.h"

namespace py = pybind11;

inline void bind_ring(py::module_& m) {
  py::class_<rtc::SampleRing>(m, "SampleRing", R"doc(
Lock-free single-producer single-consumer ring buffer of float32 samples.

One thread pushes (an audio callback), one thread pops (a worker). A second
pusher or popper whose call overlaps another's raises RuntimeError; calls that
do not overlap (blocks under 16384 samples are pushed without releasing the
GIL) are not detected and mix two streams: give each producer its own ring.
Samples must be float
(float32 or float64; integer PCM is refused rather than read unscaled). ``push``
never blocks: when a block does not fit, the oldest unread samples are dropped
and counted in ``dropped``; a block longer than the capacity keeps only its
last ``capacity`` samples.

Parameters
----------
capacity : int
    Minimum capacity in samples, 1 to 2**30; rounded up to a power of two.
)doc")
      .def(py::init([](py::handle capacity) {
             return new rtc::SampleRing(static_cast<size_t>(rtc_bind::whole_arg(capacity, "capacity", 1, 1LL << 30)));
           }),
           py::arg("capacity"))
      .def(
          "push",
          [](rtc::SampleRing& r, py::handle block_in) {
            rtc_bind::require_float_samples(block_in, "block");
            const auto block = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(
                rtc_bind::aligned(block_in));
            if (!block) throw py::type_error("block: must be convertible to a float32 array");
            if (block.ndim() != 1)
              throw py::value_error("block: must be 1-D (got " + std::to_string(block.ndim()) + "-D)");
            const float* p = block.data();
            const size_t n = static_cast<size_t>(block.size());
            // one producer at a time (a second one would break the ring's single-producer rule)
            const rtc_bind::ExclusiveUse in_use(&r, "SampleRing.push");
            // An audio callback pushes small blocks: a copy of a few hundred samples
            // costs far less than re-acquiring a GIL the worker may hold, so the GIL
            // is only released for large blocks.
            if (n < 16384) return r.push(p, n);
            py::gil_scoped_release nogil;
            return r.push(p, n);
          },
          py::arg("block"),
          R"doc(Append a 1-D block of samples; returns how many old samples were dropped.)doc")
      .def(
          "pop",
          [](rtc::SampleRing& r, py::handle n_arg, py::object out) -> py::object {
            // no pop returns more than the capacity: a huge n must not allocate a huge array
            const size_t n_asked = rtc_bind::size_arg(n_arg, "n");
            const size_t n = std::min(n_asked, r.capacity());
            py::array_t<float> dst;
            if (out.is_none()) {
              dst = py::array_t<float>(static_cast<py::ssize_t>(n));
            } else {
              if (!py::isinstance<py::array_t<float>>(out))
                throw py::type_error("out: must be a float32 numpy array");
              dst = py::reinterpret_borrow<py::array_t<float>>(out);
              if (dst.ndim() != 1 || !rtc_bind::writable_aligned(dst))
                throw py::value_error("out: must be a writable, contiguous, aligned 1-D float32 array");
              if (static_cast<size_t>(dst.size()) < n)
                throw py::value_error("out: has " + std::to_string(dst.size()) +
                                      " samples, fewer than n=" + std::to_string(n));
            }
            float* p = dst.mutable_data();
            size_t k;
            // one consumer at a time; the address after the ring's stands for its consumer side
            const rtc_bind::ExclusiveUse in_use(reinterpret_cast<const char*>(&r) + 1, "SampleRing.pop");
            {
              py::gil_scoped_release nogil;
              k = r.pop(p, n);
            }
            return dst[py::slice(0, static_cast<py::ssize_t>(k), 1)];
          },
          py::arg("n"), py::arg("out") = py::none(),
          R"doc(Pop up to ``n`` of the oldest samples (at most ``capacity``).

Returns a 1-D float32 array of the samples popped (a view of ``out`` when given; ``out``
needs room for ``min(n, capacity)``).)doc")
      .def_property_readonly("available", &rtc::SampleRing::available, "Unread samples (a snapshot).")
      .def_property_readonly("capacity", &rtc::SampleRing::capacity, "Capacity in samples.")
      .def_property_readonly("dropped", &rtc::SampleRing::dropped, "Samples dropped by overflow.")
      .def_property_readonly("pushed", &rtc::SampleRing::pushed, "Samples pushed in total.")
      .def(
          "reset",
          [](rtc::SampleRing& r) {
            // neither side may be running in another thread (push and pop release the GIL)
            const rtc_bind::ExclusiveUse producer(&r, "SampleRing.reset");
            const rtc_bind::ExclusiveUse consumer(reinterpret_cast<const char*>(&r) + 1, "SampleRing.reset");
            r.reset();
          },
          "Empty the ring and zero the counters (RuntimeError while another thread pushes or pops).");
}
