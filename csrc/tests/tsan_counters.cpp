// The counters of the frontend and the pitch tracker, read from another thread while one pushes (run by
// .ci/tsan-check).
//
//   g++ -std=c++17 -O1 -g -fsanitize=thread -pthread -Icsrc csrc/tests/tsan_counters.cpp
//       csrc/frontend.cpp csrc/spectral.cpp csrc/pitch.cpp -o tsan_counters
//   ./tsan_counters [blocks]
//
// The engine's counters() reads frames_emitted, samples_consumed and nonfinite_replaced of the
// session's MelFrontend, and the trackers' NaN/Inf counts, from the caller's thread while the worker
// pushes with the GIL released. One thread pushes blocks of varied sizes, some holding NaN and Inf,
// into a StreamingMelFrontend and a PitchTracker; a second thread reads their counters meanwhile.
// Checks: ThreadSanitizer reports nothing (a plain integer counter is a data race); the counts the
// reader sees never decrease; after the join they equal what was pushed.
// Exit status: 0 when every check passed, 1 otherwise (ThreadSanitizer reports on its own).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>
#include <vector>

#include "frontend.h"
#include "pitch.h"

int main(int argc, char** argv) {
  const int blocks = argc > 1 ? std::atoi(argv[1]) : 4000;
  rtc::MelConfig cfg;
  rtc::StreamingMelFrontend fe(cfg);
  rtc::PitchTracker pt(16000.0, 256);
  std::vector<float> frames(static_cast<std::size_t>(fe.frames_for(4096) + 1) * cfg.n_mels);
  std::vector<rtc::PitchFrame> pframes(pt.max_frames(4096) + 1);
  std::atomic<bool> done{false};
  std::uint64_t pushed = 0, bad = 0;
  bool ok = true;

  std::thread reader([&] {
    std::uint64_t f = 0, s = 0, n = 0, p = 0;
    while (!done.load(std::memory_order_acquire)) {
      const std::uint64_t f2 = fe.frames_emitted(), s2 = fe.samples_consumed(), n2 = fe.nonfinite_replaced(),
                          p2 = pt.nonfinite_count();
      if (f2 < f || s2 < s || n2 < n || p2 < p) {
        std::fprintf(stderr, "tsan_counters: FAIL: a counter went down\n");
        ok = false;
      }
      f = f2, s = s2, n = n2, p = p2;
    }
  });
  std::vector<float> x(4096);
  std::uint32_t state = 12345;
  for (int b = 0; b < blocks; ++b) {
    state = state * 1664525u + 1013904223u;
    const std::size_t len = 1 + state % 4096;
    for (std::size_t i = 0; i < len; ++i) {
      x[i] = 0.1f * std::sin(0.05f * static_cast<float>(pushed + i));
      if ((pushed + i) % 997 == 0) {
        x[i] = (i & 1) ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
        ++bad;
      }
    }
    fe.push(x.data(), len, frames.data(), fe.frames_for(len));
    pt.process(x.data(), len, pframes.data());
    pushed += len;
  }
  done.store(true, std::memory_order_release);
  reader.join();
  const std::uint64_t frames_want = pushed < 512 ? 0 : (pushed - 512) / 256 + 1;
  if (fe.samples_consumed() != pushed || fe.nonfinite_replaced() != bad || pt.nonfinite_count() != bad ||
      fe.frames_emitted() != frames_want) {
    std::fprintf(stderr, "tsan_counters: FAIL: final counts differ from what was pushed\n");
    ok = false;
  }
  std::printf("tsan_counters: %d blocks, %llu samples, %llu NaN/Inf, %llu frames: %s\n", blocks,
              static_cast<unsigned long long>(pushed), static_cast<unsigned long long>(bad),
              static_cast<unsigned long long>(fe.frames_emitted()), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
