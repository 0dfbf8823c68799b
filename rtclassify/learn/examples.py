"""Example audio given to :func:`rtclassify.learn.learn_tag`: validation and loading.

An example is one of:

* a path (``str`` or ``os.PathLike``) to an audio file: read with soundfile at
  its own sample rate, channels averaged;
* an array of samples, shape ``(n,)``, ``(n, channels)`` or ``(channels, n)``
  (float32/float64 in [-1, 1] or int16): its rate is the ``sample_rate``
  argument, which is then required;
* a tuple ``(array, rate)``: an array with its own rate. When ``sample_rate``
  is also given, the two must agree.

Rules (each broken rule raises :class:`~rtclassify.errors.ParameterError`
naming the parameter and the example's position):

* at least :data:`MIN_POSITIVE_EXAMPLES` positive example;
* every example at least :data:`MIN_EXAMPLE_SECONDS` long and finite;
* the same audio (the same file, under any path, or an equal array) as a
  positive and as a negative is an error (a sound that is both the tag and
  not the tag cannot be learned); given twice in one list, its copies count
  as one example for cross-validation (never scored against each other);
* an array without a rate (no ``sample_rate``), or with a rate that differs
  from ``sample_rate``, is an error: rates are never guessed. Examples of
  different rates are fine when each rate is known (everything is resampled
  to the model's rate by the streaming path).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ParameterError

__all__ = ["Example", "load_examples", "check_distinct", "same_audio_groups", "MIN_POSITIVE_EXAMPLES",
           "MIN_EXAMPLE_SECONDS", "MAX_CHANNELS"]

#: Fewest positive examples accepted (one clear example already gives a usable tag; see RESULTS.md).
MIN_POSITIVE_EXAMPLES = 1
#: Shortest example accepted, in seconds (the streaming path needs about 0.15 s for its first output).
MIN_EXAMPLE_SECONDS = 0.2
#: Most channels accepted in a 2-D example.
MAX_CHANNELS = 8


@dataclass
class Example:
    """One example, mono float32 at its own rate.

    Attributes
    ----------
    name : str
        How messages and provenance name it: the file path, or ``positives[i]``.
    audio : ndarray, float32, shape (n,)
    sample_rate : int
    """

    name: str
    audio: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def _mono(a: np.ndarray, where: str) -> np.ndarray:
    from ..audio.samples import I16_SCALE, check_samples_dtype

    a = check_samples_dtype(a, where)
    if a.dtype == np.int16:
        a = a.astype(np.float32) * I16_SCALE
    if a.ndim == 2:
        n0, n1 = a.shape
        if n1 <= MAX_CHANNELS and n0 >= n1:
            axis = 1
        elif n0 <= MAX_CHANNELS and n0 < n1:
            axis = 0
        else:
            raise ParameterError(f"{where}: audio must have shape (n,), (n, channels) or (channels, n) with at most "
                                 f"{MAX_CHANNELS} channels; got {a.shape}")
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        a = a.mean(axis=axis, dtype=np.float64)
        mixed = float(np.max(np.abs(a))) if a.size else 0.0
        if peak > 1e-4 and np.isfinite(peak) and mixed < 1e-3 * peak:
            # (a channel that is another's inverse, as a miswired or polarity-flipped stereo take: it was called
            # digital silence)
            raise ParameterError(f"{where}: its channels cancel when averaged (the peak falls from "
                                 f"{20 * np.log10(peak):.1f} dBFS to {20 * np.log10(max(mixed, 1e-10)):.1f} dBFS: "
                                 f"one channel is the other's inverse?); give one channel, or fix its polarity")
    elif a.ndim != 1:
        raise ParameterError(f"{where}: audio must have shape (n,), (n, channels) or (channels, n); got {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ParameterError(f"{where}: holds NaN or infinite samples")
    return a


def load_examples(items, sample_rate, param: str) -> list[Example]:
    """Validate and load the examples of one parameter (``positives`` or ``negatives``).

    Parameters
    ----------
    items : sequence
        Paths, arrays and ``(array, rate)`` tuples (see the module notes). A
        single path is accepted as a one-item list.
    sample_rate : int or None
        Rate of the arrays given without their own rate.
    param : str
        The parameter name used in messages.

    Returns
    -------
    list of Example

    Raises
    ------
    ParameterError
        A rule of the module notes is broken.
    AudioFileError
        A file is missing or unreadable (the message names it).
    """
    from ..audio.files import read_audio
    from ..engine.session import check_sample_rate

    if items is None:
        return []
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    if isinstance(items, np.ndarray):
        raise ParameterError(f"{param} must be a list of examples (paths, arrays or (array, rate) tuples), not one "
                             f"array; wrap a single example in a list: {param}=[audio]")
    if isinstance(items, tuple) and len(items) == 2 and not isinstance(items[0], (str, os.PathLike, tuple)) \
            and isinstance(items[1], (int, float, np.integer, np.floating)) and not isinstance(items[1], bool):
        raise ParameterError(f"{param} must be a list of examples, not one (array, rate) tuple; wrap a single "
                             f"example in a list: {param}=[(audio, rate)]")
    try:
        items = list(items)
    except TypeError:
        raise ParameterError(f"{param} must be a list of examples (paths, arrays or (array, rate) tuples); "
                             f"got {type(items).__name__}") from None
    sr = None if sample_rate is None else check_sample_rate(sample_rate, "sample_rate")
    out = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        if isinstance(item, (str, os.PathLike)):
            audio, rate = read_audio(item)
            name = str(Path(os.fspath(item)))
            where = f"{where} ({name})"
            rate = check_sample_rate(rate, f"{where} sample rate")
            audio = _mono(audio, where)
        else:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise ParameterError(f"{where}: a tuple example must be (array, sample_rate); got {len(item)} items")
                arr, rate = item
                rate = check_sample_rate(rate, f"{where} sample rate")
                if sr is not None and rate != sr:
                    raise ParameterError(f"{where}: its sample rate {rate} Hz differs from sample_rate={sr}; give "
                                         f"one rate per array, not two different ones")
            else:
                arr, rate = item, sr
                if rate is None:
                    raise ParameterError(f"{where}: an array example needs its rate: pass sample_rate=<Hz> (or the "
                                         f"example as an (array, rate) tuple)")
            try:
                arr = np.asarray(arr)
            except (TypeError, ValueError) as exc:
                raise ParameterError(f"{where}: not an array of samples ({exc})") from None
            if arr.dtype == object:
                raise ParameterError(f"{where}: not a path, an array of samples or an (array, rate) tuple "
                                     f"(got {type(item).__name__})")
            audio = _mono(arr, where)
            name = where
        if len(audio) < MIN_EXAMPLE_SECONDS * rate:
            raise ParameterError(f"{where}: {len(audio) / rate:.3f} s is too short; every example needs at least "
                                 f"{MIN_EXAMPLE_SECONDS} s")
        out.append(Example(name, audio, int(rate)))
    return out


def _where(ex: Example, param: str, i: int) -> str:
    where = f"{param}[{i}]"
    return where if ex.name == where else f"{where} ({ex.name})"


def _audio_key(ex: Example) -> tuple:
    return (int(ex.sample_rate), len(ex.audio),
            hashlib.sha256(np.ascontiguousarray(ex.audio, np.float32).tobytes()).hexdigest())


def same_audio_groups(examples: list) -> np.ndarray:
    """For each example, the position of the first example with the same audio (equal samples at the same rate):
    copies of one recording must stay on one side of a cross-validation split.

    Returns
    -------
    ndarray of int64, shape (len(examples),)
    """
    first: dict = {}
    return np.array([first.setdefault(_audio_key(ex), i) for i, ex in enumerate(examples)], np.int64)


def check_distinct(positives: list, negatives: list) -> None:
    """ParameterError when a negative example holds the same audio as a positive one, naming both.

    Parameters
    ----------
    positives, negatives : list of Example
    """
    seen = {}
    for i, ex in enumerate(positives):
        seen.setdefault(_audio_key(ex), i)
    for i, ex in enumerate(negatives):
        j = seen.get(_audio_key(ex))
        if j is not None:
            raise ParameterError(f"{_where(ex, 'negatives', i)}: the same audio as "
                                 f"{_where(positives[j], 'positives', j)}; an example cannot be both a positive "
                                 f"and a negative")
