// CUDA kernels of the log-mel frontend: one thread block per frame, the
// per-frame math of frame_math.h spread over the block's threads.
#include <cuda_runtime.h>

#include "cuda/mel_cuda.h"

namespace rtc {
namespace cuda {

namespace {
thread_local const char* g_last_error = "";

constexpr int kMaxFft = 4096;

__global__ void mel_frames_kernel(const float* samples, size_t stream_stride, int frames_per_stream,
                                  int hop, FrameTables<double> t, float* out) {
  extern __shared__ double shared[];  // re[m], im[m], power[m + 1]
  const int m = t.n_fft / 2;
  double* re = shared;
  double* im = shared + m;
  double* power = shared + 2 * m;
  const int frame = blockIdx.x;
  const int s = blockIdx.y;
  const float* x = samples + s * stream_stride + static_cast<size_t>(frame) * hop;

  for (int j = threadIdx.x; j < m; j += blockDim.x) window_pack_one(x, t, re, im, j);
  __syncthreads();
  for (int len = 2; len <= m; len <<= 1) {
    for (int i = threadIdx.x; i < m / 2; i += blockDim.x)
      fft_stage_butterfly(re, im, m, len, i, t.tw_re, t.tw_im);
    __syncthreads();
  }
  for (int k = threadIdx.x; k <= m; k += blockDim.x) power[k] = rfft_bin_power(re, im, m, k, t);
  __syncthreads();
  float* o = out + (static_cast<size_t>(s) * frames_per_stream + frame) * t.n_mels;
  for (int b = threadIdx.x; b < t.n_mels; b += blockDim.x) o[b] = mel_band(power, t, b);
}
}  // namespace

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return n;
}

const char* last_error() noexcept { return g_last_error; }

bool launch_mel_frames(const float* samples, int n_streams, size_t stream_stride,
                       int frames_per_stream, int hop, const FrameTables<double>& tables,
                       float* out, void* stream) noexcept {
  if (n_streams <= 0 || frames_per_stream <= 0) return true;
  if (tables.n_fft > kMaxFft) {
    g_last_error = "n_fft above 4096";
    return false;
  }
  const int m = tables.n_fft / 2;
  const size_t shmem = static_cast<size_t>(3 * m + 1) * sizeof(double);
  if (shmem > 48 * 1024 &&
      cudaFuncSetAttribute(mel_frames_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(shmem)) != cudaSuccess) {
    g_last_error = cudaGetErrorString(cudaGetLastError());
    return false;
  }
  const dim3 grid(static_cast<unsigned>(frames_per_stream), static_cast<unsigned>(n_streams));
  mel_frames_kernel<<<grid, 128, shmem, static_cast<cudaStream_t>(stream)>>>(
      samples, stream_stride, frames_per_stream, hop, tables, out);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    g_last_error = cudaGetErrorString(err);
    return false;
  }
  g_last_error = "";
  return true;
}

}  // namespace cuda
}  // namespace rtc
