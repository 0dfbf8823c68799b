"""The sample arrays every reader of audio takes: byte order, dtype and int16's scale, checked in one place."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

#: the scale of int16 samples (full scale 1.0), as every reader of int16 blocks applies it
I16_SCALE = np.float32(1.0 / 32768.0)
#: float32 as numpy's one dtype object: the blocks the native code reads as they are (``dtype is F32``, a fast test)
F32 = np.dtype(np.float32)


def native_order(a: np.ndarray) -> np.ndarray:
    """``a`` with its values in the machine's byte order: a byte-swapped array (``'>f4'``, ``'>i2'`` from a
    big-endian file or a network stream) is converted, any other is returned as it is (no copy)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def check_samples_dtype(a: np.ndarray, name: str, *, int16: bool = True) -> np.ndarray:
    """``a`` in the machine's byte order (:func:`native_order`) if it holds samples the caller reads: float32 or
    float64, and int16 where ``int16`` (the caller scales it by :data:`I16_SCALE`); another float dtype
    (float16, long double) becomes float32. Any other dtype is a ParameterError naming ``name``: integer PCM
    read as floats would be 90 dB too hot or more, so the message says how to scale it."""
    a = native_order(a)
    if a.dtype in (np.float32, np.float64) or (int16 and a.dtype == np.int16):
        return a
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    kinds = "float32, float64 or int16" if int16 else "float32 or float64"
    hint = ""
    if a.dtype.kind in "iu":
        hint = f"; scale integer PCM to [-1, 1] first, e.g. {'int32 / 2**31' if int16 else 'int16 / 32768'}"
    raise ParameterError(f"{name} must be {kinds} samples (got dtype {a.dtype}){hint}")
