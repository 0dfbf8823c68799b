// Batched streaming log-mel frontend on a CUDA device: per-stream pending
// samples in two row buffers on the device, a small ingest kernel (NaN/Inf
// replaced and counted), the frame kernel of mel_cuda.cu, and a 2-D copy of
// each row's tail into the other buffer.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "cuda/cuda_frontend.h"
#include "cuda/mel_cuda.h"

namespace rtc {
namespace cuda {

namespace {

constexpr int kIngestThreads = 256;
constexpr size_t kRowAlign = 32;  // floats: rows start on 128-byte boundaries

/// Whether `p` points into page-locked host memory (cudaMallocHost, cudaHostRegister), which the
/// asynchronous copies read after they return. A failed query counts as pageable (and is cleared).
bool page_locked(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls are not blamed
    throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(err));
  }
}

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/// Makes `device` current for the scope, restoring the previous device after.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
    else previous_ = -1;
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

/// One device allocation, freed on destruction.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes) {
    if (bytes) check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  ~DeviceMemory() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceMemory(DeviceMemory&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)) {}
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
      if (ptr_) cudaFree(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
    }
    return *this;
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

/// Copies n samples of each stream into its row after the pending samples,
/// replacing NaN/Inf by 0 and counting them per stream.
__global__ void ingest_kernel(const float* src, size_t src_stride, size_t n, float* rows,
                              size_t row_stride, size_t offset,
                              unsigned long long* nonfinite) {
  const size_t j = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t s = blockIdx.y;
  if (j >= n) return;
  bool replaced = false;
  rows[s * row_stride + offset + j] = finite_or_zero(src[s * src_stride + j], &replaced);
  if (replaced) atomicAdd(nonfinite + s, 1ULL);
}

std::string num(size_t v) { return std::to_string(v); }

}  // namespace

bool device_available(const char** reason) noexcept {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (reason) *reason = cudaGetErrorString(err);
    return false;
  }
  if (n == 0) {
    if (reason) *reason = "the CUDA runtime sees 0 devices";
    return false;
  }
  if (reason) *reason = "";
  return true;
}

struct CudaMelFrontend::Impl {
  MelConfig cfg;
  int streams = 0;
  int device = 0;
  size_t max_block = 0;
  size_t row = 0;  // floats per row of the work buffers
  BatchStreamPlan plan;
  DeviceMemory table_blob;
  FrameTables<double> tables;  // pointers into table_blob
  DeviceMemory work[2];        // S rows each; work[cur] holds the pending samples
  int cur = 0;
  DeviceMemory staging;        // S * max_block floats for host input
  DeviceMemory nonfinite;      // S counters
  cudaEvent_t done = nullptr;      // recorded at the end of every push / reset
  cudaEvent_t uploaded = nullptr;  // recorded after a copy from page-locked host samples
  uint64_t frames_emitted = 0, samples = 0, host_uploads = 0;

  Impl(int n_fft, int hop) : plan(n_fft, hop) {}
  ~Impl() {
    // Wait for the device to finish with the buffers before they are freed
    // (the members' destructors run after this body). Never throws.
    int previous = -1;
    if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
    cudaSetDevice(device);
    if (done) {
      cudaEventSynchronize(done);
      cudaEventDestroy(done);
    }
    if (uploaded) cudaEventDestroy(uploaded);
    if (previous >= 0 && previous != device) cudaSetDevice(previous);
    cudaGetLastError();
  }

  /// The work and staging buffers for blocks of `block` samples, allocated before any member changes.
  struct Buffers {
    size_t row;
    DeviceMemory work0, work1, staging;
  };
  Buffers make_buffers(size_t block) const {
    const size_t r = round_up(BatchStreamPlan::row_capacity(cfg.n_fft, block), kRowAlign);
    const size_t bytes = static_cast<size_t>(streams) * r * sizeof(float);
    // each allocation may throw (out of device memory): the frontend is then left as it was
    return Buffers{r, DeviceMemory(bytes), DeviceMemory(bytes),
                   DeviceMemory(static_cast<size_t>(streams) * block * sizeof(float))};
  }
  void commit(Buffers&& b, size_t block) noexcept {
    work[0] = std::move(b.work0);
    work[1] = std::move(b.work1);
    staging = std::move(b.staging);
    row = b.row;
    max_block = block;
    cur = 0;
  }

  void allocate_rows(size_t block) { commit(make_buffers(block), block); }

  /// The device work of a push once the buffers are large enough (see CudaMelFrontend::push).
  size_t push_enqueued(const float* x, size_t n, size_t row_stride, bool x_on_device, float* out,
                       const BatchStep& step, cudaStream_t st);

  /// Grows the buffers for blocks of n samples, keeping the pending samples. A failure (out of
  /// device memory) leaves the old buffers and sizes in place, so the frontend stays usable.
  void grow(size_t n, cudaStream_t st) {
    Buffers b = make_buffers(n);
    if (plan.pending() > 0)
      check(cudaMemcpy2DAsync(b.work0.as<float>(), b.row * sizeof(float), work[cur].as<float>(),
                              row * sizeof(float), plan.pending() * sizeof(float),
                              static_cast<size_t>(streams), cudaMemcpyDeviceToDevice, st),
            "cudaMemcpy2DAsync (growing the work buffers)");
    check(cudaStreamSynchronize(st), "cudaStreamSynchronize (growing the work buffers)");
    commit(std::move(b), n);
  }

  void upload_tables(const SpectralTables& t) {
    // One device blob; every table starts on a 256-byte boundary.
    struct Part {
      const void* src;
      size_t bytes;
      size_t offset;
    };
    auto part = [](const auto& v) {
      return Part{v.data(), v.size() * sizeof(v[0]), 0};
    };
    Part parts[] = {part(t.window),    part(t.bitrev),    part(t.tw_re),      part(t.tw_im),
                    part(t.post_re),   part(t.post_im),   part(t.mel_start),  part(t.mel_len),
                    part(t.mel_offset), part(t.mel_weights)};
    size_t total = 0;
    for (auto& p : parts) {
      p.offset = total;
      total = round_up(total + p.bytes, 256);
    }
    std::vector<unsigned char> host(total, 0);
    for (const auto& p : parts)
      if (p.bytes) std::memcpy(host.data() + p.offset, p.src, p.bytes);
    table_blob = DeviceMemory(total);
    check(cudaMemcpy(table_blob.as<unsigned char>(), host.data(), total, cudaMemcpyHostToDevice),
          "cudaMemcpy (tables)");
    unsigned char* base = table_blob.as<unsigned char>();
    auto at = [&](int i) { return static_cast<void*>(base + parts[i].offset); };
    tables = t.view();  // sizes and scalars
    tables.window = static_cast<const double*>(at(0));
    tables.bitrev = static_cast<const int*>(at(1));
    tables.tw_re = static_cast<const double*>(at(2));
    tables.tw_im = static_cast<const double*>(at(3));
    tables.post_re = static_cast<const double*>(at(4));
    tables.post_im = static_cast<const double*>(at(5));
    tables.mel_start = static_cast<const int*>(at(6));
    tables.mel_len = static_cast<const int*>(at(7));
    tables.mel_offset = static_cast<const int*>(at(8));
    tables.mel_weights = static_cast<const float*>(at(9));
  }
};

CudaMelFrontend::CudaMelFrontend(int streams, MelConfig cfg, size_t max_block, int device) {
  if (streams < 1 || streams > 65535)
    throw std::invalid_argument("streams: must be from 1 to 65535 (got " + std::to_string(streams) + ")");
  if (max_block < 1) throw std::invalid_argument("max_block: must be at least 1 (got 0)");
  validate(cfg);
  const SpectralTables host_tables(cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.n_mels,
                                   cfg.fmin, cfg.fmax, parse_window(cfg.window),
                                   parse_mel_scale(cfg.mel_scale), parse_mel_norm(cfg.norm),
                                   cfg.power, parse_log(cfg.log), cfg.amin);
  const char* why = "";
  if (!device_available(&why)) throw std::runtime_error(std::string("no CUDA device: ") + why);
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device < 0) check(cudaGetDevice(&device), "cudaGetDevice");
  if (device >= count)
    throw std::invalid_argument("device: CUDA device " + std::to_string(device) + " does not exist (" +
                                std::to_string(count) + " visible)");

  impl_ = std::make_unique<Impl>(cfg.n_fft, cfg.hop_length);
  Impl& d = *impl_;
  d.cfg = cfg;
  d.streams = streams;
  d.device = device;
  DeviceScope scope(device);
  d.upload_tables(host_tables);
  d.allocate_rows(max_block);
  d.nonfinite = DeviceMemory(static_cast<size_t>(streams) * sizeof(unsigned long long));
  check(cudaMemset(d.nonfinite.as<void>(), 0, static_cast<size_t>(streams) * sizeof(unsigned long long)),
        "cudaMemset (counters)");
  check(cudaEventCreateWithFlags(&d.done, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventCreateWithFlags(&d.uploaded, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(d.done, nullptr), "cudaEventRecord");
}

CudaMelFrontend::~CudaMelFrontend() = default;

size_t CudaMelFrontend::frames_for(size_t n) const noexcept { return impl_->plan.frames_for(n); }

size_t CudaMelFrontend::push(const float* x, size_t n, size_t row_stride, bool x_on_device,
                             float* out, size_t out_frames, void* stream) {
  Impl& d = *impl_;
  if (n == 0) return 0;
  if (x == nullptr) throw std::invalid_argument("x: null pointer for " + num(n) + " samples per stream");
  if (row_stride < n)
    throw std::invalid_argument("row_stride: must be at least the block length " + num(n) + " (got " +
                                num(row_stride) + ")");
  const BatchStep step = d.plan.plan(n);
  if (out_frames < step.frames)
    throw std::invalid_argument("out: has room for " + num(out_frames) + " frames per stream but this block completes " +
                                num(step.frames));
  if (step.frames > 0 && out == nullptr)
    throw std::invalid_argument("out: null pointer for " + num(step.frames) + " frames per stream");

  DeviceScope scope(d.device);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  check(cudaStreamWaitEvent(st, d.done, 0), "cudaStreamWaitEvent");
  if (n > d.max_block) d.grow(n, st);
  try {
    return d.push_enqueued(x, n, row_stride, x_on_device, out, step, st);
  } catch (...) {
    // work already queued on st (a copy, the ingest kernel) must still order the next push, which may
    // come on another stream: `done` marks it even when a later step failed (the plan is not committed)
    cudaEventRecord(d.done, st);
    throw;
  }
}

size_t CudaMelFrontend::Impl::push_enqueued(const float* x, size_t n, size_t row_stride, bool x_on_device,
                                             float* out, const BatchStep& step, cudaStream_t st) {
  Impl& d = *this;
  const size_t S = static_cast<size_t>(d.streams);
  const float* src = x;
  size_t src_stride = row_stride;
  if (!x_on_device) {
    check(cudaMemcpy2DAsync(d.staging.as<float>(), n * sizeof(float), x, row_stride * sizeof(float),
                            n * sizeof(float), S, cudaMemcpyHostToDevice, st),
          "cudaMemcpy2DAsync (host samples to the device)");
    // From pageable memory the copy has read the samples when the call returns; from page-locked memory
    // (cupyx.empty_pinned, a reused staging buffer) it runs later, so wait for that copy alone: the caller
    // may refill or free its block once push() returns.
    if (page_locked(x)) {
      check(cudaEventRecord(d.uploaded, st), "cudaEventRecord (host samples)");
      check(cudaEventSynchronize(d.uploaded), "cudaEventSynchronize (host samples)");
    }
    src = d.staging.as<float>();
    src_stride = n;
    ++d.host_uploads;
  }
  float* rows = d.work[d.cur].as<float>();
  const dim3 grid(static_cast<unsigned>((n + kIngestThreads - 1) / kIngestThreads),
                  static_cast<unsigned>(S));
  ingest_kernel<<<grid, kIngestThreads, 0, st>>>(src, src_stride, n, rows, d.row, step.write_offset,
                                                 d.nonfinite.as<unsigned long long>());
  check(cudaGetLastError(), "launch of the ingest kernel");

  if (step.frames > 0) {
    if (!launch_mel_frames(rows, d.streams, d.row, static_cast<int>(step.frames),
                           d.cfg.hop_length, d.tables, out, st))
      throw std::runtime_error(std::string("CUDA launch of the mel frame kernel: ") + last_error());
    if (step.pending_after > 0) {
      float* next = d.work[1 - d.cur].as<float>();
      check(cudaMemcpy2DAsync(next, d.row * sizeof(float), rows + step.tail_offset,
                              d.row * sizeof(float), step.pending_after * sizeof(float), S,
                              cudaMemcpyDeviceToDevice, st),
            "cudaMemcpy2DAsync (pending samples)");
    }
  }
  check(cudaEventRecord(d.done, st), "cudaEventRecord");
  // the state moves on only once every step was queued (a failure above leaves it as it was)
  if (step.frames > 0) d.cur = 1 - d.cur;
  d.plan.commit(step);
  d.frames_emitted += step.frames;
  d.samples += n;
  return step.frames;
}

void CudaMelFrontend::reset(void* stream) {
  Impl& d = *impl_;
  DeviceScope scope(d.device);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  check(cudaStreamWaitEvent(st, d.done, 0), "cudaStreamWaitEvent");
  check(cudaMemsetAsync(d.nonfinite.as<void>(), 0,
                        static_cast<size_t>(d.streams) * sizeof(unsigned long long), st),
        "cudaMemsetAsync (counters)");
  check(cudaEventRecord(d.done, st), "cudaEventRecord");
  d.plan.reset();
  d.frames_emitted = d.samples = d.host_uploads = 0;
}

const MelConfig& CudaMelFrontend::config() const noexcept { return impl_->cfg; }
int CudaMelFrontend::streams() const noexcept { return impl_->streams; }
int CudaMelFrontend::device() const noexcept { return impl_->device; }
size_t CudaMelFrontend::max_block() const noexcept { return impl_->max_block; }
size_t CudaMelFrontend::pending() const noexcept { return impl_->plan.pending(); }
uint64_t CudaMelFrontend::frames_emitted() const noexcept { return impl_->frames_emitted; }
uint64_t CudaMelFrontend::samples_consumed() const noexcept { return impl_->samples; }
uint64_t CudaMelFrontend::host_uploads() const noexcept { return impl_->host_uploads; }

std::vector<uint64_t> CudaMelFrontend::nonfinite_replaced() const {
  const Impl& d = *impl_;
  DeviceScope scope(d.device);
  check(cudaEventSynchronize(d.done), "cudaEventSynchronize");
  std::vector<unsigned long long> dev(static_cast<size_t>(d.streams));
  check(cudaMemcpy(dev.data(), d.nonfinite.as<void>(), dev.size() * sizeof(unsigned long long),
                   cudaMemcpyDeviceToHost),
        "cudaMemcpy (counters)");
  return std::vector<uint64_t>(dev.begin(), dev.end());
}

}  // namespace cuda
}  // namespace rtc
