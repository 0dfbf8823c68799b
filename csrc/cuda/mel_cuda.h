/// @file mel_cuda.h
/// @brief CUDA entry points of the log-mel frontend (compiled when nvcc is present).
///
/// The kernels run the same per-frame math as the CPU frontend (frame_math.h).
/// Host code includes this header without nvcc: it only declares functions.
#pragma once

#include <cstddef>

#include "frame_math.h"

namespace rtc {
namespace cuda {

/// Number of CUDA devices visible now (0 when there is no GPU or no driver).
int device_count() noexcept;

/// Human-readable text of the last CUDA error seen by this module ("" when none).
const char* last_error() noexcept;

/// Computes log-mel frames for a batch on the device.
///
/// Frame f of stream s covers samples [f*hop, f*hop + n_fft) of that stream's
/// slice `samples + s * stream_stride`; its n_mels outputs go to
/// `out + (s * frames_per_stream + f) * n_mels`. All pointers are device
/// pointers, including every table inside `tables`.
///
/// @param stream  a cudaStream_t passed as void* (nullptr: the default stream)
/// @return true when the launch succeeded (see last_error() otherwise)
bool launch_mel_frames(const float* samples, int n_streams, size_t stream_stride,
                       int frames_per_stream, int hop, const FrameTables<double>& tables,
                       float* out, void* stream) noexcept;

}  // namespace cuda
}  // namespace rtc
