// Helpers shared by the bindings: one caller at a time per native object, and input arrays.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

namespace py = pybind11;

namespace rtc_bind {

/// Refuses a second concurrent call on one native object.
///
/// The bindings release the GIL while an object works, so without this two Python threads could
/// run one single-threaded object (a frontend, a tracker, one side of a ring) at once and corrupt
/// its state. Construct it with the GIL held, before the GIL is released, in a scope that ends after
/// the GIL is taken back: the bookkeeping is then serialized by the GIL itself (no lock, and no
/// allocation once the list has grown to the number of objects ever busy at once).
class ExclusiveUse {
 public:
  /// @param obj the object (or a distinct address per side, e.g. a ring's producer and consumer)
  /// @param what "Class.method", for the message
  ExclusiveUse(const void* obj, const char* what) : obj_(obj) {
    std::vector<const void*>& b = busy();
    if (std::find(b.begin(), b.end(), obj) != b.end())
      throw std::runtime_error(std::string(what) +
                               ": this object is already running in another thread; give each thread its own");
    b.push_back(obj);
  }
  ~ExclusiveUse() {
    std::vector<const void*>& b = busy();
    b.erase(std::find(b.begin(), b.end(), obj_));
  }
  ExclusiveUse(const ExclusiveUse&) = delete;
  ExclusiveUse& operator=(const ExclusiveUse&) = delete;

 private:
  static std::vector<const void*>& busy() {
    static std::vector<const void*> b = [] {
      std::vector<const void*> v;
      v.reserve(64);
      return v;
    }();
    return b;
  }
  const void* obj_;
};

/// A reset() binding that takes the object like its push/process does: a reset from another thread
/// while a push runs without the GIL would otherwise change the state under it.
template <class T>
auto exclusive_reset(std::string what) {
  return [what](T& obj) {
    const ExclusiveUse in_use(&obj, what.c_str());
    obj.reset();
  };
}

/// True when `a` is a numpy array of element type T (by equivalence, not identity: a dtype that
/// came through pickle or another module is a different object with the same meaning).
template <class T>
bool has_dtype(const py::handle& a) {
  return py::isinstance<py::array_t<T>>(a);
}

/// Rejects a numpy array of integer, boolean or complex values, which a cast to float would
/// silently misread (int16 PCM unscaled, the imaginary part dropped). Lists and float arrays pass.
/// `pcm`: the values are audio samples (the message then says how to scale integer PCM).
inline void require_float_samples(const py::handle& obj, const char* name, bool pcm = true) {
  if (!py::isinstance<py::array>(obj)) return;
  const py::dtype dt = py::reinterpret_borrow<py::array>(obj).dtype();
  const char k = dt.kind();
  if (k == 'f') return;
  // the samples' wording is rtclassify.audio.samples.check_samples_dtype's (int16=False)
  std::string msg = pcm ? std::string(name) + " must be float32 or float64 samples (got dtype " +
                              std::string(py::str(dt)) + ")"
                        : std::string(name) + ": values must be float32 or float64 (got " + std::string(py::str(dt)) + ")";
  if (pcm && (k == 'i' || k == 'u')) msg += "; scale integer PCM to [-1, 1] first, e.g. int16 / 32768";
  throw py::type_error(msg);
}

/// "'x' (str)": an argument's value and type for an error message (the value cut at 40 characters).
inline std::string describe_arg(const py::handle& v) {
  std::string r = py::repr(v).cast<std::string>();
  if (r.size() > 40) r = r.substr(0, 37) + "...";
  return r + " (" + std::string(py::str(py::type::handle_of(v).attr("__name__"))) + ")";
}

/// A whole-number constructor argument (a Python or numpy integer; not a bool or a float) within
/// [lo, hi], named in the error: pybind's own conversion would only say "incompatible constructor
/// arguments" and list the signature.
/// whole_value: its value, or `overflow` set to -1 or 1 when it is beyond a long long.
inline long long whole_value(const py::handle& v, const char* name, int& overflow) {
  if (py::isinstance<py::bool_>(v) || !PyIndex_Check(v.ptr()))
    throw py::type_error(std::string(name) + ": must be a whole number (got " + describe_arg(v) + ")");
  overflow = 0;
  return PyLong_AsLongLongAndOverflow(py::int_(py::reinterpret_borrow<py::object>(v)).ptr(), &overflow);
}

inline long long whole_arg(const py::handle& v, const char* name, long long lo, long long hi) {
  int overflow = 0;
  const long long x = whole_value(v, name, overflow);
  if (overflow || x < lo || x > hi)
    throw py::value_error(std::string(name) + ": must be from " + std::to_string(lo) + " to " + std::to_string(hi) +
                          " (got " + describe_arg(v) + ")");
  return x;
}

/// A count argument (a Python or numpy integer, 0 to SIZE_MAX), named in the error.
inline size_t size_arg(const py::handle& v, const char* name) {
  int overflow = 0;
  const long long x = whole_value(v, name, overflow);
  if (overflow < 0 || (overflow == 0 && x < 0))
    throw py::value_error(std::string(name) + ": must be 0 or more (got " + describe_arg(v) + ")");
  if (overflow == 0) return static_cast<size_t>(x);
  const unsigned long long u = PyLong_AsUnsignedLongLong(py::int_(py::reinterpret_borrow<py::object>(v)).ptr());
  if (u == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + ": is far too large (got " + describe_arg(v) + ")");
  }
  return static_cast<size_t>(u);
}

/// A real-number constructor argument (an int or a float, numpy ones too; not a bool, a string or a
/// complex number), named in the error. Range checks stay with the native code, which names them too.
inline double real_arg(const py::handle& v, const char* name) {
  if (!py::isinstance<py::bool_>(v) && !py::isinstance<py::str>(v) && !py::isinstance<py::bytes>(v) &&
      PyNumber_Check(v.ptr()) && !PyComplex_Check(v.ptr())) {
    const double x = PyFloat_AsDouble(v.ptr());
    if (!(x == -1.0 && PyErr_Occurred())) return x;
    PyErr_Clear();
  }
  throw py::type_error(std::string(name) + ": must be a real number (got " + describe_arg(v) + ")");
}

/// A flag argument: a Python or numpy bool only (an int or a string is refused, not read as true).
inline bool flag_arg(const py::handle& v, const char* name) {
  if (PyBool_Check(v.ptr())) return v.ptr() == Py_True;
  if (py::isinstance(v, py::module_::import("numpy").attr("bool_"))) return PyObject_IsTrue(v.ptr()) == 1;
  throw py::type_error(std::string(name) + ": must be True or False (got " + describe_arg(v) + ")");
}

/// A whole number that fits a C int. Beyond that the message says only "far too large" (or "far
/// too negative"): "from -2147483648 to 2147483647" would read as the valid range, which the native
/// checks narrow and name (hold_frames: 1 to 1000, ...).
inline int int_arg(const py::handle& v, const char* name) {
  int overflow = 0;
  const long long x = whole_value(v, name, overflow);
  if (overflow > 0 || (overflow == 0 && x > std::numeric_limits<int>::max()))
    throw py::value_error(std::string(name) + ": is far too large (got " + describe_arg(v) + ")");
  if (overflow < 0 || x < std::numeric_limits<int>::min())
    throw py::value_error(std::string(name) + ": is far too negative (got " + describe_arg(v) + ")");
  return static_cast<int>(x);
}

/// A text argument (a Python str), named in the error with the values it may take (`choices`, e.g.
/// "'htk' or 'slaney'"): pybind's own conversion would only say "incompatible constructor arguments".
/// Which of the choices is valid stays with the native code, which names them too.
inline std::string text_arg(const py::handle& v, const char* name, const char* choices) {
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  throw py::type_error(std::string(name) + ": must be " + choices + " (got " + describe_arg(v) + ")");
}

/// whole_arg for a positive C int (sizes, rates, hops): 1 to INT_MAX.
/// Out of that range the message says only what is wrong (not positive, or too large for the native
/// code): "from 1 to 2147483647" would read as the valid range, which the native checks narrow (n_fft:
/// powers of two from 256 to 4096, hop_length: up to a tenth of the rate, ...).
inline int positive_int_arg(const py::handle& v, const char* name) {
  int overflow = 0;
  const long long x = whole_value(v, name, overflow);
  if (overflow < 0 || (overflow == 0 && x < 1))
    throw py::value_error(std::string(name) + ": must be positive (got " + describe_arg(v) + ")");
  if (overflow > 0 || x > std::numeric_limits<int>::max())
    throw py::value_error(std::string(name) + ": is far too large (got " + describe_arg(v) + ")");
  return static_cast<int>(x);
}

/// NPY_ARRAY_ALIGNED: the array's data is aligned for its element type.
constexpr int kNpyAligned = 0x0100;

/// ExtraFlags of a py::array_t input that the native code reads through a T pointer: C-contiguous
/// and aligned (numpy converts or copies an array that is not; a plain c_style | forcecast
/// array_t lets a misaligned one, e.g. np.frombuffer at an odd offset, through).
constexpr int kAlignedIn = py::array::c_style | py::array::forcecast | kNpyAligned;

/// `obj` itself, or an aligned copy when it is a numpy array whose data is not aligned for its
/// element type (e.g. np.frombuffer with an odd offset): a float pointer into such a buffer is
/// undefined behaviour in the native code. Rare, so the copy goes through numpy.require.
inline py::object aligned(const py::handle& obj) {
  if (py::isinstance<py::array>(obj) && !(py::reinterpret_borrow<py::array>(obj).flags() & kNpyAligned))
    return py::module_::import("numpy").attr("require")(obj, py::none(), "A");
  return py::reinterpret_borrow<py::object>(obj);
}

/// Whether an `out=` array can be written through a pointer of its element type: writable,
/// C-contiguous and aligned (an output cannot be copied aside like an input: the caller reads it).
inline bool writable_aligned(const py::array& a) {
  return (a.flags() & py::array::c_style) && (a.flags() & kNpyAligned) && a.writeable();
}

}  // namespace rtc_bind
