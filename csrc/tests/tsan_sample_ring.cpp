// Stress harness of rtc::SampleRing across threads, without Python (run by .ci/tsan-check).
//
//   g++ -std=c++17 -O1 -g -fsanitize=thread -pthread -Icsrc
//       csrc/tests/tsan_sample_ring.cpp csrc/sample_ring.cpp -o tsan_sample_ring
//   ./tsan_sample_ring [samples_per_phase] [rounds] [seed]
//
// Uses the ring's real header and source. In every phase one producer thread pushes a known
// sequence (sample i of a phase holds the float i, exact below 2^24) in blocks of varied sizes,
// one consumer thread pops with varied sizes, and a third thread reads the counters the way
// Listener.counters() does from another thread (pushed, dropped, available, capacity). Phases:
//   overrun  small ring, blocks from 1 to beyond the capacity, pops from 1 to beyond the
//            capacity, a consumer that sometimes stalls: drops on both overflow paths (the tail
//            moved by the producer, and the head of a block longer than the ring never stored);
//   lossless the producer waits for room (as tests/test_ring.py does): nothing may be dropped;
//   frames   the Listener's multi-stream pattern: the audio callback pushes whole frames of P
//            interleaved samples, the worker pops min(available, max) samples; every pop and every
//            drop must move by whole frames.
// Checks: every pop returns consecutive samples (a drop can only fall between two pops); the first
// sample of a pop is never behind the expected one (no duplicate, no reorder); the gaps the
// consumer sees add up to dropped(); pushed() == samples given; dropped() == the sum of push()'s
// return values; popped + dropped == pushed once drained; pushed() and dropped() never decrease as
// seen from the third thread; available() never exceeds capacity(); no pop returns more than asked
// or more than the capacity. reset() is called between rounds only, while no thread uses the ring
// (its documented contract), and must leave an empty ring with zero counters.
// Exit status: 0 when every check passed, 1 otherwise (ThreadSanitizer reports on its own).
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sample_ring.h"

namespace {

std::atomic<int> g_failures{0};

// Records a failed check (the first few are printed; the count decides the exit status).
void fail(const char* phase, const std::string& what) {
  if (g_failures.fetch_add(1) < 20) std::fprintf(stderr, "FAIL [%s] %s\n", phase, what.c_str());
}

std::string u64(uint64_t v) { return std::to_string(v); }

enum class Mode { Overrun, Lossless, Frames };

struct PhaseSpec {
  const char* name;
  Mode mode;
  size_t capacity;   // asked for (rounded up to a power of two by the ring)
  size_t frame;      // P: samples per frame (pushes and pops in whole frames), 1 otherwise
  uint64_t samples;  // samples the producer pushes in the phase (< 2^24: exact floats)
};

struct PhaseResult {
  uint64_t pops = 0, popped = 0, gaps = 0, gap_samples = 0, lost_returned = 0, pushes = 0;
  uint64_t counter_reads = 0;
  size_t max_available = 0;         // seen by the consumer before its pops (frames phases)
  size_t max_available_reader = 0;  // seen by the third thread
};

// A block size from 1 to about 2x+ the capacity, mostly small: audio callbacks push small blocks,
// a stalled source or a file reader pushes long ones.
size_t pick_size(std::mt19937_64& rng, size_t cap) {
  const unsigned r = static_cast<unsigned>(rng() % 100);
  if (r < 40) return 1 + rng() % 16;
  if (r < 75) return 1 + rng() % cap;
  if (r < 90) return cap - 2 + rng() % 5;  // around the capacity (cap-2 .. cap+2)
  return cap + 1 + rng() % (2 * cap + 17);  // longer than the ring
}

PhaseResult run_phase(rtc::SampleRing& ring, const PhaseSpec& spec, uint64_t seed) {
  const char* name = spec.name;
  const size_t cap = ring.capacity();
  const size_t P = spec.frame;
  const uint64_t total = spec.samples - spec.samples % P;
  PhaseResult res;
  std::atomic<bool> producer_done{false};
  std::atomic<bool> consumer_done{false};
  uint64_t lost_sum = 0, pushes = 0;

  if (ring.pushed() != 0 || ring.dropped() != 0 || ring.available() != 0)
    fail(name, "ring not empty at the start of the phase");

  std::thread producer([&] {
    std::mt19937_64 rng(seed * 3 + 1);
    std::vector<float> block(4 * cap + 64);
    uint64_t pos = 0;
    while (pos < total) {
      size_t n;
      if (spec.mode == Mode::Frames) {
        // an audio callback block of bs frames (sometimes a longer one, as a source may deliver)
        const size_t frames_cap = cap / P;
        const size_t bs = std::max<size_t>(1, frames_cap / 8);
        const unsigned r = static_cast<unsigned>(rng() % 100);
        size_t frames = r < 80 ? bs : r < 95 ? 1 + rng() % bs : frames_cap + 1 + rng() % frames_cap;
        n = frames * P;
      } else {
        n = pick_size(rng, cap);
      }
      n = static_cast<size_t>(std::min<uint64_t>(n, total - pos));
      if (spec.mode == Mode::Lossless) {
        n = std::min(n, cap);
        // wait for room: available() may be stale-high (the consumer frees concurrently), never low
        while (cap - std::min(cap, ring.available()) < n) std::this_thread::yield();
      }
      for (size_t i = 0; i < n; ++i) block[i] = static_cast<float>(pos + i);
      const size_t lost = ring.push(block.data(), n);
      ++pushes;
      lost_sum += lost;
      if (spec.mode == Mode::Lossless && lost != 0)
        fail(name, "push dropped " + u64(lost) + " samples although there was room");
      if (n > cap && lost < n - cap)
        fail(name, "push of " + u64(n) + " > capacity dropped only " + u64(lost));
      if (lost > n + cap) fail(name, "push of " + u64(n) + " dropped " + u64(lost));
      if (spec.mode == Mode::Frames && lost % P != 0)
        fail(name, "push dropped " + u64(lost) + " samples, not whole frames of " + u64(P));
      pos += n;
      if (spec.mode != Mode::Lossless && rng() % 4 != 0) {
        // mostly paced like an audio device (wait while the ring is over 3/4 full, a bounded
        // while), sometimes a burst: the ring runs near full, so pushes overrun while pops run
        for (int spin = 0; spin < 64 && ring.available() > cap - cap / 4; ++spin) std::this_thread::yield();
      } else if (rng() % 64 == 0) {
        std::this_thread::yield();
      }
    }
    producer_done.store(true, std::memory_order_release);
  });

  std::thread consumer([&] {
    std::mt19937_64 rng(seed * 3 + 2);
    std::vector<float> out(4 * cap + 64 + 1);
    uint64_t expected = 0;
    for (;;) {
      // read before the pop: a pop that finds nothing after the producer finished means drained
      const bool finished = producer_done.load(std::memory_order_acquire);
      size_t want;
      if (spec.mode == Mode::Frames) {
        const size_t avail = ring.available();  // the Listener's worker: available, then pop
        if (avail > cap) fail(name, "available() = " + u64(avail) + " > capacity " + u64(cap));
        res.max_available = std::max(res.max_available, avail);
        const size_t pop_max = (cap / P / 4 + 1) * P;
        want = std::min(avail, pop_max);
        if (want == 0) {
          if (finished && ring.available() == 0) break;
          std::this_thread::yield();
          continue;
        }
      } else {
        want = pick_size(rng, cap);
      }
      const float sentinel = -1.0f;
      out[want] = sentinel;  // pop must not write past n
      const size_t k = ring.pop(out.data(), want);
      if (out[want] != sentinel) fail(name, "pop wrote past the n samples asked for");
      if (k > want) fail(name, "pop returned " + u64(k) + " > n = " + u64(want));
      if (k > cap) fail(name, "pop returned " + u64(k) + " > capacity " + u64(cap));
      if (k == 0) {
        if (finished) break;
        std::this_thread::yield();
        continue;
      }
      ++res.pops;
      res.popped += k;
      const double first = out[0];
      if (first < 0 || first >= static_cast<double>(total) || first != static_cast<double>(static_cast<uint64_t>(first))) {
        fail(name, "popped a value that was never pushed: " + std::to_string(first));
        break;
      }
      const uint64_t v0 = static_cast<uint64_t>(first);
      if (v0 < expected) {
        fail(name, "pop starts at sample " + u64(v0) + ", behind the expected " + u64(expected) +
                       " (duplicated or reordered)");
        break;
      }
      if (v0 > expected) {
        ++res.gaps;
        res.gap_samples += v0 - expected;
      }
      if (spec.mode == Mode::Frames && (v0 % P != 0 || k % P != 0))
        fail(name, "pop of " + u64(k) + " samples from sample " + u64(v0) + " is not whole frames of " + u64(P));
      bool torn = false;
      for (size_t i = 1; i < k; ++i) {
        if (out[i] != static_cast<float>(v0 + i)) {
          fail(name, "pop from sample " + u64(v0) + " of " + u64(k) + ": position " + u64(i) + " holds " +
                         std::to_string(out[i]) + " (a sample overwritten while it was read, or a drop inside a pop)");
          torn = true;
          break;
        }
      }
      if (torn) break;
      expected = v0 + k;
      if (spec.mode == Mode::Overrun && rng() % 128 == 0)  // a worker that falls behind for a while
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
      else if (rng() % 16 == 0)
        std::this_thread::yield();
    }
    if (expected != total) fail(name, "consumer ended at sample " + u64(expected) + " of " + u64(total));
    consumer_done.store(true, std::memory_order_release);
  });

  // A third thread: counters read while both sides run (Listener.counters() from a status sink or
  // the display). Each counter is monotonic as seen from one thread; available() is bounded.
  std::thread reader([&] {
    uint64_t last_pushed = 0, last_dropped = 0;
    size_t max_avail_reader = 0;
    while (!consumer_done.load(std::memory_order_acquire)) {
      const size_t c = ring.capacity();
      const uint64_t pushed = ring.pushed();
      const uint64_t dropped = ring.dropped();
      const size_t avail = ring.available();
      ++res.counter_reads;
      if (c != cap) fail(name, "capacity() changed");
      if (pushed < last_pushed) fail(name, "pushed() went back from " + u64(last_pushed) + " to " + u64(pushed));
      if (dropped < last_dropped)
        fail(name, "dropped() went back from " + u64(last_dropped) + " to " + u64(dropped));
      if (pushed > total) fail(name, "pushed() = " + u64(pushed) + " > " + u64(total) + " samples given");
      if (avail > cap) fail(name, "available() = " + u64(avail) + " > capacity " + u64(cap) + " (third thread)");
      max_avail_reader = std::max(max_avail_reader, avail);
      if (spec.mode == Mode::Lossless && dropped != 0) fail(name, "dropped() != 0 in a lossless phase");
      last_pushed = pushed;
      last_dropped = dropped;
      std::this_thread::yield();
    }
    res.max_available_reader = max_avail_reader;
  });

  producer.join();
  consumer.join();
  reader.join();

  res.lost_returned = lost_sum;
  res.pushes = pushes;
  // quiescent: the joins order every access above before these reads
  const uint64_t pushed = ring.pushed(), dropped = ring.dropped();
  const size_t held = ring.available();
  if (pushed != total) fail(name, "pushed() = " + u64(pushed) + ", samples given " + u64(total));
  if (dropped != lost_sum) fail(name, "dropped() = " + u64(dropped) + ", push() returned " + u64(lost_sum));
  if (res.popped + dropped + held != pushed)
    fail(name, "popped " + u64(res.popped) + " + dropped " + u64(dropped) + " + held " + u64(held) +
                   " != pushed " + u64(pushed));
  if (held != 0) fail(name, "ring holds " + u64(held) + " samples after the consumer drained it");
  if (res.gap_samples != dropped)
    fail(name, "the consumer saw " + u64(res.gap_samples) + " samples missing, dropped() = " + u64(dropped));
  if (spec.mode == Mode::Lossless && dropped != 0) fail(name, "dropped " + u64(dropped) + " in a lossless phase");
  if (spec.mode == Mode::Overrun && dropped == 0) fail(name, "the overrun phase never overran (harness too gentle)");
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t samples = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 2;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  if (samples < 1000 || samples >= (uint64_t(1) << 24) || rounds < 1) {
    std::fprintf(stderr, "usage: %s [samples_per_phase 1000..2^24-1] [rounds >= 1] [seed]\n", argv[0]);
    return 2;
  }
  const PhaseSpec phases[] = {
      {"overrun-64", Mode::Overrun, 64, 1, samples},
      {"overrun-1000", Mode::Overrun, 1000, 1, samples},
      {"lossless-4096", Mode::Lossless, 4096, 1, samples},
      {"frames-P4", Mode::Frames, 4 * 600, 4, samples},
      {"frames-P2-small", Mode::Frames, 2 * 40, 2, samples},
  };
  uint64_t moved = 0;
  for (const PhaseSpec& spec : phases) {
    rtc::SampleRing ring(spec.capacity);
    for (int r = 0; r < rounds; ++r) {
      const PhaseResult res = run_phase(ring, spec, seed * 1000 + static_cast<uint64_t>(r));
      moved += spec.samples;
      std::printf(
          "%-16s round %d: capacity %zu, %" PRIu64 " pushes, %" PRIu64 " pops, popped %" PRIu64
          ", dropped %" PRIu64 " (%" PRIu64 " gaps), max available seen %zu/%zu, %" PRIu64 " counter reads\n",
          spec.name, r, ring.capacity(), res.pushes, res.pops, res.popped, res.lost_returned, res.gaps,
          res.max_available, res.max_available_reader, res.counter_reads);
      std::fflush(stdout);
      // reset() with neither side running (its contract): an empty ring, zero counters, reusable
      ring.reset();
      if (ring.pushed() != 0 || ring.dropped() != 0 || ring.available() != 0)
        fail(spec.name, "reset() left samples or counters");
      if (g_failures.load() != 0) break;
    }
    if (g_failures.load() != 0) break;
  }
  const int f = g_failures.load();
  if (f != 0) {
    std::printf("tsan_sample_ring: %d check(s) FAILED\n", f);
    return 1;
  }
  std::printf("tsan_sample_ring: all checks passed (%" PRIu64 " samples through the ring)\n", moved);
  return 0;
}
