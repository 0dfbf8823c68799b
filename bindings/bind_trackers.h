// pybind11 bindings of the pitch, vibrato, tremolo and technique trackers.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "bind_common.h"
#include "modulation.h"
#include "pitch.h"
#include "technique.h"
#include "tremolo.h"
#include "vibrato.h"

namespace py = pybind11;

namespace trackers_detail {

using f32array = py::array_t<float, py::array::c_style | py::array::forcecast>;

inline f32array as_1d(const py::handle& obj, const char* name) {
  f32array a = f32array::ensure(rtc_bind::aligned(obj));
  if (!a) throw py::type_error(std::string(name) + ": must be convertible to a float32 array");
  if (a.ndim() != 1) throw py::value_error(std::string(name) + ": must be 1-D (got " + std::to_string(a.ndim()) + "-D)");
  return a;
}

inline py::array_t<bool> as_bool_1d(const py::handle& obj, const char* name, py::ssize_t n) {
  auto a = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::type_error(std::string(name) + ": must be convertible to a bool array");
  if (a.ndim() != 1 || a.size() != n)
    throw py::value_error(std::string(name) + ": must be 1-D with " + std::to_string(n) + " values");
  return a;
}

// One TechniqueTracker frame as a row of a structured numpy array: the fields of process()'s dict, in its
// order (process_frames() returns one array of these per call instead of a dict of 15 arrays).
struct TechniqueRow {
  float f0;
  float confidence;
  float level_db;
  bool voiced;
  bool vibrato_on;
  float vibrato_rate;
  float vibrato_extent;
  float vibrato_regularity;
  bool tremolo_on;
  float tremolo_rate;
  float tremolo_depth;
  float tremolo_regularity;
  float tremolo_vibrato_share;
  bool vibrato_suppressed;
  bool tremolo_suppressed;
};

inline TechniqueRow technique_row(const rtc::TechniqueFrame& f) {
  return {f.pitch.f0_hz,      f.pitch.confidence,    f.pitch.level_db,        f.pitch.voiced,
          f.vibrato.on,       f.vibrato.rate,        f.vibrato.extent,        f.vibrato.regularity,
          f.tremolo.on,       f.tremolo.rate,        f.tremolo.depth,         f.tremolo.regularity,
          f.tremolo.vibrato_share, f.vibrato.suppressed, f.tremolo.suppressed};
}

template <class T>
py::array_t<T> column(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// An optional per-frame bool argument as bytes: the array's values, or `fallback` where None.
inline std::vector<unsigned char> flags_or(const py::object& obj, const char* name, py::ssize_t n,
                                           unsigned char fallback) {
  std::vector<unsigned char> out(static_cast<std::size_t>(n), fallback);
  if (!obj.is_none()) {
    auto a = as_bool_1d(obj, name, n);
    std::copy(a.data(), a.data() + n, out.begin());
  }
  return out;
}

// One parameter of a config struct: its keyword name and its member.
template <class C>
struct Param {
  const char* name;
  double C::*real = nullptr;
  int C::*whole = nullptr;
  bool C::*flag = nullptr;
  constexpr Param(const char* n, double C::*m) : name(n), real(m) {}
  constexpr Param(const char* n, int C::*m) : name(n), whole(m) {}
  constexpr Param(const char* n, bool C::*m) : name(n), flag(m) {}
};

// The parameters of each config struct, in the order of its config dict, and
// the kind named in the error for an unknown one.
template <class C>
struct ConfigParams;

template <>
struct ConfigParams<rtc::VibratoConfig> {
  using C = rtc::VibratoConfig;
  static constexpr const char* kind = "vibrato";
  static constexpr Param<C> list[] = {
      {"rate_min", &C::rate_min},
      {"rate_max", &C::rate_max},
      {"extent_on", &C::extent_on},
      {"extent_off", &C::extent_off},
      {"regularity_on", &C::regularity_on},
      {"regularity_off", &C::regularity_off},
      {"jump_cents", &C::jump_cents},
      {"trend_ratio", &C::trend_ratio},
      {"trend_ratio_off", &C::trend_ratio_off},
      {"max_gap", &C::max_gap},
      {"max_glitch", &C::max_glitch},
      {"hold_frames", &C::hold_frames},
      {"window_periods", &C::window_periods},
      {"release_periods", &C::release_periods},
      {"rate_step", &C::rate_step},
      {"bridge_periods", &C::bridge_periods},
  };
};

template <>
struct ConfigParams<rtc::TremoloConfig> {
  using C = rtc::TremoloConfig;
  static constexpr const char* kind = "tremolo";
  static constexpr Param<C> list[] = {
      {"rate_min", &C::rate_min},
      {"rate_max", &C::rate_max},
      {"depth_on", &C::depth_on},
      {"depth_off", &C::depth_off},
      {"regularity_on", &C::regularity_on},
      {"regularity_off", &C::regularity_off},
      {"onset_db", &C::onset_db},
      {"onset_frames", &C::onset_frames},
      {"hold_frames", &C::hold_frames},
      {"vibrato_explained", &C::vibrato_explained},
      {"vibrato_harmonics", &C::vibrato_harmonics},
      {"window_periods", &C::window_periods},
      {"release_periods", &C::release_periods},
      {"trend_ratio", &C::trend_ratio},
      {"rate_step", &C::rate_step},
      {"bridge_periods", &C::bridge_periods},
      {"rate_stability", &C::rate_stability},
      {"stability_periods", &C::stability_periods},
      {"crest_floor", &C::crest_floor},
  };
};

// The scalar parameters of TechniqueConfig (its config dict starts with the
// sample rate and ends with the vibrato and tremolo dicts).
template <>
struct ConfigParams<rtc::TechniqueConfig> {
  using C = rtc::TechniqueConfig;
  static constexpr const char* kind = "technique";
  static constexpr Param<C> list[] = {
      {"hop_length", &C::hop_length},
      {"fmin", &C::fmin},
      {"fmax", &C::fmax},
      {"threshold", &C::threshold},
      {"silence_db", &C::silence_db},
      {"level_window", &C::level_window_s},
      {"tremolo_min_confidence", &C::tremolo_min_confidence},
      {"tremolo_restart_on_pitch_jump", &C::tremolo_restart_on_pitch_jump},
      {"compensate", &C::compensate},
      {"explained_high", &C::explained_high},
      {"explained_low", &C::explained_low},
      {"am_per_cent", &C::am_per_cent},
      {"cents_per_db", &C::cents_per_db},
      {"harmonics", &C::harmonics},
      {"purity_weight", &C::purity_weight},
      {"hz_pivot", &C::hz_pivot},
      {"attribution_margin", &C::attribution_margin},
      {"tremolo_under_vibrato", &C::tremolo_under_vibrato},
      {"exclusion", &C::exclusion},
      {"under_vibrato_regularity", &C::under_vibrato_regularity},
      {"level_follows_pitch", &C::level_follows_pitch},
  };
};

// Fills a config struct from keyword arguments; unknown keys are errors naming `where` and the key,
// values of the wrong type errors naming `prefix` + the key.
template <class C>
void set_config(C& c, const py::dict& kw, const char* where, const std::string& prefix = "") {
  const auto& list = ConfigParams<C>::list;
  for (auto item : kw) {
    const std::string k = py::str(item.first);
    const py::handle v = item.second;
    const auto* p = std::find_if(std::begin(list), std::end(list), [&](const Param<C>& q) { return k == q.name; });
    if (p == std::end(list))
      throw py::value_error(std::string(where) + ": unknown " + ConfigParams<C>::kind + " parameter '" + k + "'");
    const std::string name = prefix + k;
    if (p->real) c.*(p->real) = rtc_bind::real_arg(v, name.c_str());
    else if (p->whole) c.*(p->whole) = rtc_bind::int_arg(v, name.c_str());
    else c.*(p->flag) = rtc_bind::flag_arg(v, name.c_str());
  }
}

// Adds the parameters of a config struct to a dict, in order.
template <class C>
void add_config(py::dict& d, const C& c) {
  for (const Param<C>& p : ConfigParams<C>::list) {
    if (p.real) d[p.name] = c.*(p.real);
    else if (p.whole) d[p.name] = c.*(p.whole);
    else d[p.name] = c.*(p.flag);
  }
}

// The parameters of a config struct as a dict, in order.
template <class C>
py::dict config_dict(const C& c) {
  py::dict d;
  add_config(d, c);
  return d;
}

// Frames of a vibrato or tremolo tracker as columns: on, rate, the size
// (`size_name`, member `size`), regularity, restarted.
template <class Frame>
py::dict modulation_columns(const std::vector<Frame>& fr, const char* size_name, float Frame::*size) {
  const std::size_t n = fr.size();
  std::vector<float> rate(n), sz(n), reg(n);
  py::array_t<bool> on(static_cast<py::ssize_t>(n)), re(static_cast<py::ssize_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    rate[i] = fr[i].rate;
    sz[i] = fr[i].*size;
    reg[i] = fr[i].regularity;
    on.mutable_data()[i] = fr[i].on;
    re.mutable_data()[i] = fr[i].restarted;
  }
  py::dict d;
  d["on"] = on;
  d["rate"] = column(rate);
  d[size_name] = column(sz);
  d["regularity"] = column(reg);
  d["restarted"] = re;
  return d;
}

// Runs a block-based tracker (pitch, technique) on a 1-D block of samples
// without the GIL; returns the frames it completed.
template <class Frame, class Tracker>
std::vector<Frame> process_block(Tracker& t, const py::handle& block, const char* what) {
  rtc_bind::require_float_samples(block, "block");
  f32array x = as_1d(block, "block");
  const rtc_bind::ExclusiveUse in_use(&t, what);
  const std::size_t n = static_cast<std::size_t>(x.size());
  std::vector<Frame> fr(t.max_frames(n));
  {
    py::gil_scoped_release nogil;
    fr.resize(t.process(x.data(), n, fr.data()));
  }
  return fr;
}

// A block's TechniqueTracker frames as a structured array of TechniqueRow (process_frames; process's dict).
inline py::array_t<TechniqueRow> technique_rows(rtc::TechniqueTracker& t, const py::handle& block, const char* what) {
  const std::vector<rtc::TechniqueFrame> fr = process_block<rtc::TechniqueFrame>(t, block, what);
  py::array_t<TechniqueRow> out(static_cast<py::ssize_t>(fr.size()));
  TechniqueRow* row = out.mutable_data();
  for (const rtc::TechniqueFrame& f : fr) *row++ = technique_row(f);
  return out;
}

// Binds what VibratoTracker and TremoloTracker share: the constructor
// (frame_rate and the config's keyword parameters), reset(), frame_rate and
// config. The caller adds process().
template <class Tracker, class Config>
py::class_<Tracker> bind_modulation_tracker(py::module_& m, const char* name, const char* doc) {
  py::class_<Tracker> cls(m, name, doc);
  cls.def(py::init([name](py::handle frame_rate, py::kwargs kw) {
            const double rate = rtc_bind::real_arg(frame_rate, "frame_rate");
            Config c;
            set_config(c, kw, name);
            return new Tracker(rate, c);
          }),
          py::arg("frame_rate"));
  cls.def("reset", rtc_bind::exclusive_reset<Tracker>(std::string(name) + ".reset"), "Forget the contour.");
  cls.def_property_readonly("frame_rate", &Tracker::frame_rate);
  cls.def_property_readonly("config", [](const Tracker& t) { return config_dict(t.config()); });
  return cls;
}

inline int default_hop(double sample_rate) {
  return std::max(1, static_cast<int>(std::lround(0.005 * sample_rate)));
}

// The hop_length argument: None (5 ms) or an integer (Python or numpy); the tracker checks its
// range. Anything else, or a value beyond int, is named in the error instead of a cast failure.
inline int hop_length_arg(const py::object& hop, double sample_rate) {
  if (hop.is_none()) return default_hop(sample_rate);
  return rtc_bind::positive_int_arg(hop, "hop_length");
}

}  // namespace trackers_detail

inline void bind_trackers(py::module_& m) {
  PYBIND11_NUMPY_DTYPE(trackers_detail::TechniqueRow, f0, confidence, level_db, voiced, vibrato_on, vibrato_rate, vibrato_extent,
                       vibrato_regularity, tremolo_on, tremolo_rate, tremolo_depth, tremolo_regularity,
                       tremolo_vibrato_share, vibrato_suppressed, tremolo_suppressed);
  using namespace trackers_detail;

  py::class_<rtc::PitchTracker>(m, "PitchTracker", R"doc(
Streaming f0 tracker of the YIN family with a voicing confidence.
One object serves one thread at a time (a concurrent call raises RuntimeError),
and the samples must be float32 or float64 (integer PCM is refused, not read unscaled).

A coarse YIN search (cumulative mean normalized difference, absolute
threshold, first dip) runs on a low-passed copy decimated to 11-22 kHz; the
period is then refined at the input rate around the coarse lag with a short
window (two periods, at least 12.5 ms) and parabolic interpolation. One frame
every ``hop_length`` samples; frame k is decided after sample
``(k + 1) * hop_length``. Any split of the stream into blocks gives the same
frames.

Parameters
----------
sample_rate : float
    Input rate in Hz, 4000 to 384000 and above ``4 * fmax``.
hop_length : int, optional
    Samples between frames (default: 5 ms).
fmin, fmax : float
    f0 search range in Hz (default 50 to 2000).
threshold : float
    YIN absolute threshold on the normalized difference, in (0, 1).
silence_db : float
    Frames whose level is below this (dBFS) are unvoiced.
level_window : float
    Length of the Hann window of the level estimate, seconds.
)doc")
      .def(py::init([](py::handle sample_rate, py::object hop_length, py::handle fmin, py::handle fmax,
                       py::handle threshold, py::handle silence_db, py::handle level_window) {
             using rtc_bind::real_arg;
             const double sr = real_arg(sample_rate, "sample_rate");
             const int hop = hop_length_arg(hop_length, sr);
             return new rtc::PitchTracker(sr, hop, real_arg(fmin, "fmin"), real_arg(fmax, "fmax"),
                                          real_arg(threshold, "threshold"), real_arg(silence_db, "silence_db"),
                                          real_arg(level_window, "level_window"));
           }),
           py::arg("sample_rate"), py::arg("hop_length") = py::none(), py::arg("fmin") = 50.0,
           py::arg("fmax") = 2000.0, py::arg("threshold") = 0.15, py::arg("silence_db") = -60.0,
           py::arg("level_window") = 0.025)
      .def(
          "process",
          [](rtc::PitchTracker& t, py::handle block) {
            const std::vector<rtc::PitchFrame> frames = process_block<rtc::PitchFrame>(t, block, "PitchTracker.process");
            const std::size_t k = frames.size();
            std::vector<float> f0(k), conf(k), level(k);
            py::array_t<bool> voiced(static_cast<py::ssize_t>(k));
            for (std::size_t i = 0; i < k; ++i) {
              f0[i] = frames[i].f0_hz;
              conf[i] = frames[i].confidence;
              level[i] = frames[i].level_db;
              voiced.mutable_data()[i] = frames[i].voiced;
            }
            py::dict d;
            d["f0"] = column(f0);
            d["confidence"] = column(conf);
            d["level_db"] = column(level);
            d["voiced"] = voiced;
            return d;
          },
          py::arg("block"),
          R"doc(Consume a 1-D block of samples.

Returns
-------
dict
    ``f0`` (n_frames,) float32 Hz, 0 where unvoiced; ``confidence`` (n_frames,)
    float32 in [0, 1]; ``level_db`` (n_frames,) float32 dBFS; ``voiced``
    (n_frames,) bool. Non-finite samples are replaced by 0 and counted.)doc")
      .def("reset", rtc_bind::exclusive_reset<rtc::PitchTracker>("PitchTracker.reset"), "Forget the stream.")
      .def_property_readonly("sample_rate", &rtc::PitchTracker::sample_rate)
      .def_property_readonly("hop_length", &rtc::PitchTracker::hop_length)
      .def_property_readonly("frame_rate", &rtc::PitchTracker::frame_rate)
      .def_property_readonly("fmin", &rtc::PitchTracker::fmin)
      .def_property_readonly("fmax", &rtc::PitchTracker::fmax)
      .def_property_readonly("threshold", &rtc::PitchTracker::threshold)
      .def_property_readonly("decimation", &rtc::PitchTracker::decimation)
      .def_property_readonly("samples", &rtc::PitchTracker::samples, "Samples consumed.")
      .def_property_readonly("nonfinite_count", &rtc::PitchTracker::nonfinite_count,
                             "Non-finite samples replaced by 0.");

  bind_modulation_tracker<rtc::VibratoTracker, rtc::VibratoConfig>(m, "VibratoTracker", R"doc(
Streaming vibrato detector on an f0 contour.

A quadratic trend plus a sinusoid is fitted by least squares over the newest
``window_periods`` periods of each candidate rate (grid ``rate_step``); the
contour is in cents, restarts at note changes (``jump_cents``) and at gaps
longer than ``max_gap`` frames. On/off with hysteresis on the regularity
(variance explained by the sinusoid) and the extent (half peak-to-peak,
cents).

Parameters
----------
frame_rate : float
    f0 frames per second, 20 to 2000.
**config
    rate_min, rate_max, extent_on, extent_off, regularity_on, regularity_off,
    jump_cents, trend_ratio, trend_ratio_off, max_gap, max_glitch, hold_frames, window_periods,
    release_periods, rate_step, bridge_periods (periods a vibrato that was on
    stays on across a note change until the new note confirms it; 0: off at
    once). A grid whose candidate fits need more than 2**20 values (too
    fine a ``rate_step`` over too wide a rate range and window) is refused: it
    would not run in real time.
)doc")
      .def(
          "process",
          [](rtc::VibratoTracker& t, py::handle f0) {
            rtc_bind::require_float_samples(f0, "f0", false);
            f32array x = as_1d(f0, "f0");
            const std::size_t n = static_cast<std::size_t>(x.size());
            std::vector<rtc::VibratoFrame> fr(n);
            const rtc_bind::ExclusiveUse in_use(&t, "VibratoTracker.process");
            {
              py::gil_scoped_release nogil;
              t.process(x.data(), n, fr.data());
            }
            return modulation_columns(fr, "extent", &rtc::VibratoFrame::extent);
          },
          py::arg("f0"),
          R"doc(Consume f0 frames (Hz; 0, negative or NaN = unvoiced).

Returns
-------
dict
    ``on`` (n,) bool; ``rate`` (n,) float32 Hz; ``extent`` (n,) float32 cents
    (half peak-to-peak); ``regularity`` (n,) float32; ``restarted`` (n,) bool.
    rate/extent/regularity are the newest analysis (0 where none).)doc");

  bind_modulation_tracker<rtc::TremoloTracker, rtc::TremoloConfig>(m, "TremoloTracker", R"doc(
Streaming tremolo detector on a level contour in dB.

A quadratic trend plus a sinusoid is fitted by least squares over the newest
``window_periods`` periods of each candidate rate; the contour restarts at
invalid frames, at given restarts and at onsets (a rise of more than
``onset_db`` within ``onset_frames`` frames). On/off with hysteresis on the
regularity and the depth (peak-to-peak, dB). While a vibrato is reported, a
level modulation that a periodic signal at the vibrato rate (with
``vibrato_harmonics`` harmonics) explains at least ``vibrato_explained``
times as well as the tremolo's sinusoid is attributed to the vibrato.

Parameters
----------
frame_rate : float
    Level frames per second, 40 to 2000.
**config
    rate_min, rate_max, depth_on, depth_off, regularity_on, regularity_off,
    trend_ratio, onset_db, onset_frames, hold_frames, vibrato_explained,
    vibrato_harmonics, window_periods, release_periods, rate_step (its grid limited as
    for VibratoTracker), bridge_periods (across an onset, as for VibratoTracker).
)doc")
      .def(
          "process",
          [](rtc::TremoloTracker& t, py::handle level_db, py::object valid, py::object restart,
             py::object vibrato_on, py::object vibrato_rate) {
            rtc_bind::require_float_samples(level_db, "level_db", false);
            f32array x = as_1d(level_db, "level_db");
            const py::ssize_t n = x.size();
            const std::vector<unsigned char> va = flags_or(valid, "valid", n, 1);
            const std::vector<unsigned char> rs = flags_or(restart, "restart", n, 0);
            const std::vector<unsigned char> vo = flags_or(vibrato_on, "vibrato_on", n, 0);
            std::vector<float> vr(static_cast<std::size_t>(n), 0.0f);
            if (!vibrato_rate.is_none()) {
              f32array a = as_1d(vibrato_rate, "vibrato_rate");
              if (a.size() != n) throw py::value_error("vibrato_rate: must have " + std::to_string(n) + " values");
              for (py::ssize_t i = 0; i < n; ++i) vr[static_cast<std::size_t>(i)] = a.data()[i];
            }
            std::vector<rtc::TremoloFrame> fr(static_cast<std::size_t>(n));
            const rtc_bind::ExclusiveUse in_use(&t, "TremoloTracker.process");
            {
              py::gil_scoped_release nogil;
              for (std::size_t i = 0; i < fr.size(); ++i)
                fr[i] = t.push(x.data()[i], va[i] != 0, rs[i] != 0, vo[i] != 0, vr[i]);
            }
            return modulation_columns(fr, "depth", &rtc::TremoloFrame::depth);
          },
          py::arg("level_db"), py::arg("valid") = py::none(), py::arg("restart") = py::none(),
          py::arg("vibrato_on") = py::none(), py::arg("vibrato_rate") = py::none(),
          R"doc(Consume level frames (dB) with optional per-frame flags.

Parameters
----------
level_db : (n,) float array
valid, restart, vibrato_on : (n,) bool arrays, optional
    Defaults: all valid, no restarts, no vibrato.
vibrato_rate : (n,) float array, optional

Returns
-------
dict
    ``on`` (n,) bool; ``rate`` (n,) float32 Hz; ``depth`` (n,) float32 dB
    peak-to-peak; ``regularity`` (n,) float32; ``restarted`` (n,) bool.)doc");

  py::class_<rtc::TechniqueTracker>(m, "TechniqueTracker", R"doc(
Pitch, vibrato and tremolo tracked together on one audio stream.
One object serves one thread at a time (a concurrent call raises RuntimeError),
and the samples must be float32 or float64 (integer PCM is refused, not read unscaled).

Parameters
----------
sample_rate : float
    Input rate in Hz.
hop_length : int, optional
    Samples between frames (default: 5 ms).
fmin, fmax, threshold, silence_db, level_window :
    As for :class:`PitchTracker`.
tremolo_min_confidence : float
    Pitch confidence from which the level counts as tonal for the tremolo.
tremolo_restart_on_pitch_jump : bool
    Also restart the level contour when the f0 contour restarts (a note change).
compensate : bool
    Undo the analysis windows' smoothing of the extent and depth.
explained_high, explained_low, am_per_cent, cents_per_db, harmonics, purity_weight,
hz_pivot, attribution_margin, tremolo_under_vibrato, exclusion, under_vibrato_regularity :
    Joint attribution of by-products: a level wobble explained by the
    vibrato's periodicity (or an f0 wobble explained by the tremolo's) is not
    reported; see csrc/technique.h.
level_follows_pitch : bool
    Attribute a level modulation that a cubic polynomial of the f0 (held
    through gaps and note changes) explains, with a plausible coupling, to
    the pitch (a trill, a pitch wobble outside the vibrato's rates), not to
    a tremolo; see csrc/technique.h.
vibrato, tremolo : dict, optional
    Keyword parameters of :class:`VibratoTracker` / :class:`TremoloTracker`.
)doc")
      .def(py::init([](py::handle sample_rate_in, py::object hop_length, py::kwargs kw) {
             const double sample_rate = rtc_bind::real_arg(sample_rate_in, "sample_rate");
             rtc::TechniqueConfig c;
             c.hop_length = hop_length_arg(hop_length, sample_rate);
             py::dict scalars;
             for (auto item : kw) {
               const std::string k = py::str(item.first);
               if (k != "vibrato" && k != "tremolo") {
                 scalars[item.first] = item.second;
               } else if (!item.second.is_none()) {
                 if (!py::isinstance<py::dict>(item.second)) throw py::type_error(k + ": must be a dict");
                 const py::dict d = py::reinterpret_borrow<py::dict>(item.second);
                 if (k == "vibrato") set_config(c.vibrato, d, "vibrato", "vibrato.");
                 else set_config(c.tremolo, d, "tremolo", "tremolo.");
               }
             }
             set_config(c, scalars, "TechniqueTracker");
             if (c.hop_length < 1) throw py::value_error("hop_length: must be >= 1");
             return new rtc::TechniqueTracker(sample_rate, c);
           }),
           py::arg("sample_rate"), py::arg("hop_length") = py::none())
      .def(
          "process",
          [](rtc::TechniqueTracker& t, py::handle block) {
            // the rows of process_frames, a contiguous array per field (TechniqueRow lists them once)
            const py::array rows = technique_rows(t, block, "TechniqueTracker.process");
            py::dict d;
            for (const py::handle name : rows.dtype().attr("names")) d[name] = rows[name].attr("copy")();
            return d;
          },
          py::arg("block"),
          R"doc(Consume a 1-D block of samples.

Returns
-------
dict of (n_frames,) arrays
    ``f0`` (Hz, 0 unvoiced), ``confidence``, ``level_db``, ``voiced``,
    ``vibrato_on``, ``vibrato_rate`` (Hz), ``vibrato_extent`` (cents, half
    peak-to-peak), ``vibrato_regularity``, ``tremolo_on``, ``tremolo_rate``
    (Hz), ``tremolo_depth`` (dB peak-to-peak), ``tremolo_regularity``.
    Rates/extent/depth are the newest analysis (0 where none), also while
    off. Frame k of the stream is decided after sample (k + 1) * hop_length.)doc")
      .def(
          "process_frames",
          [](rtc::TechniqueTracker& t, py::handle block) {
            return technique_rows(t, block, "TechniqueTracker.process_frames");
          },
          py::arg("block"),
          R"doc(Consume a 1-D block of samples, as :meth:`process` does.

Returns
-------
ndarray, shape (n_frames,), structured
    One record per frame with the fields of :meth:`process`'s dict, in its
    order (``out["f0"]``, ``out["vibrato_on"]``, ...): one array per call
    instead of a dict of fifteen, for the stream's per-block path.)doc")
      .def("reset", rtc_bind::exclusive_reset<rtc::TechniqueTracker>("TechniqueTracker.reset"), "Forget the stream.")
      .def_property_readonly("sample_rate", [](const rtc::TechniqueTracker& t) { return t.pitch().sample_rate(); })
      .def_property_readonly("hop_length", [](const rtc::TechniqueTracker& t) { return t.pitch().hop_length(); })
      .def_property_readonly("frame_rate", [](const rtc::TechniqueTracker& t) { return t.pitch().frame_rate(); })
      .def_property_readonly("frames", &rtc::TechniqueTracker::frames, "Frames emitted.")
      .def_property_readonly("samples", [](const rtc::TechniqueTracker& t) { return t.pitch().samples(); })
      .def_property_readonly("nonfinite_count",
                             [](const rtc::TechniqueTracker& t) { return t.pitch().nonfinite_count(); })
      .def_property_readonly("config", [](const rtc::TechniqueTracker& t) {
        const rtc::TechniqueConfig& c = t.config();
        py::dict d;
        d["sample_rate"] = t.pitch().sample_rate();
        add_config(d, c);
        d["vibrato"] = config_dict(c.vibrato);
        d["tremolo"] = config_dict(c.tremolo);
        return d;
      });
}
