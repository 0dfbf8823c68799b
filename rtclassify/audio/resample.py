"""Sample-rate conversion: the native low-latency resampler for streams, soxr for whole signals.

:class:`StreamResampler` runs the native polyphase resampler
(:class:`rtclassify._core.Resampler`, quality ``"NATIVE"``, the streaming
default) or a ``soxr.ResampleStream`` (mono float32). Either way its output is
time-aligned with its input (sample ``j`` of the output is at ``j / out_rate``
seconds, like sample ``i`` of the input at ``i / in_rate``), and any split of
the input into chunks gives bit-for-bit the same output. Both hold samples
back: after ``t`` seconds of input have been pushed, output is available only
up to ``t - d`` seconds. The native filter gives each output sample as soon as
its newest input sample is there, so ``d`` is the filter's newer half (5.9 ms
from 44.1, 48, 96 or 192 kHz to 16 kHz, 11.8 ms from 8 kHz); soxr filters in
blocks, and ``d`` varies with them (36.5 ms from 48 kHz with HQ, 113 ms from
8 kHz). :attr:`StreamResampler.latency_s` is the largest ``d`` (measured for
soxr, for the stream's rates, quality and chunk size), which is what the engine
reports as the resampler's share of the latency.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["StreamResampler", "resample", "measure_stream_latency", "stream_quality", "QUALITIES", "AUTO", "NATIVE"]

#: soxr quality names, fastest to best
QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
#: The native polyphase resampler (streams only): soxr's passband, 120 dB stopband, lowest latency.
NATIVE = "NATIVE"
#: The streaming default: NATIVE, or for rates whose ratio it cannot take (a filter of more than 2**22
#: coefficients, e.g. 44101 Hz), MQ or HQ, whichever holds samples back less (see :func:`stream_quality`).
AUTO = "AUTO"

_LATENCY_CACHE: dict = {}


def _check_rate(rate, name: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a positive number (got {rate!r})")
    if not (rate > 0) or not np.isfinite(rate) or int(rate) != rate:
        raise ParameterError(f"{name} must be a positive integer sample rate in Hz (got {rate!r})")
    return int(rate)


def _check_quality(quality: str, auto: bool = False) -> str:
    names = QUALITIES + ((NATIVE, AUTO) if auto else ())
    if not isinstance(quality, str) or quality.upper() not in names:
        raise ParameterError(f"resample quality must be one of {', '.join(names)} (got {quality!r})")
    return quality.upper()


_NATIVE_TAKES: dict = {}


def _native(in_rate: int, out_rate: int):
    """The native resampler for these rates, or None when their ratio needs too long a filter."""
    from .. import _core

    try:
        r = _core.Resampler(in_rate, out_rate)
    except ValueError:
        r = None
    _NATIVE_TAKES[(in_rate, out_rate)] = r is not None
    return r


def _native_takes(in_rate: int, out_rate: int) -> bool:
    """Whether the native resampler converts ``in_rate`` to ``out_rate`` (cached per pair of rates)."""
    key = (in_rate, out_rate)
    if key not in _NATIVE_TAKES:
        _native(in_rate, out_rate)
    return _NATIVE_TAKES[key]


def stream_quality(in_rate: int, out_rate: int, quality: str = AUTO, chunk: int = 256) -> str:
    """The quality a stream from ``in_rate`` to ``out_rate`` uses: ``quality``, or for ``"AUTO"``
    ``"NATIVE"`` (the native resampler), unless the rates' ratio needs a longer filter than it designs
    (e.g. 44101 Hz); then the one of soxr's MQ and HQ whose stream holds samples back less
    (:func:`measure_stream_latency`; HQ on a tie).

    The native filter has soxr's passband (flat up to 0.913 of the lower Nyquist frequency, 7.3 kHz to
    16 kHz) and a 120 dB stopband from the lower Nyquist frequency on, and holds samples back 5.9 ms from
    44.1-192 kHz (soxr: 36.5-79 ms).

    Of soxr's two, to a 16 kHz model rate MQ and HQ are alike where it matters: the same passband (flat within 0.1 dB up to
    7.5 kHz) and aliases at least 116 dB down (HQ: 140), far below the log-mel frontend's floor. But
    soxr's HQ filter for some ratios is twice as long: from 96 or 192 kHz it holds samples back 79 ms,
    MQ's 37 ms, a difference that is pure latency on stage. From 44.1 and 48 kHz HQ is the shorter one
    (40.0 against 41.1 ms, 36.5 against 37.7), so those streams are unchanged.
    """
    q = _check_quality(quality, auto=True)
    if q != AUTO:
        return q
    in_rate, out_rate = _check_rate(in_rate, "in_rate"), _check_rate(out_rate, "out_rate")
    if _native_takes(in_rate, out_rate):
        return NATIVE
    hq = measure_stream_latency(in_rate, out_rate, "HQ", chunk)
    mq = measure_stream_latency(in_rate, out_rate, "MQ", chunk)
    return "MQ" if mq < hq else "HQ"


def resample(x: np.ndarray, in_rate: int, out_rate: int, quality: str = "HQ") -> np.ndarray:
    """Resample a whole mono signal (one shot).

    Parameters
    ----------
    x : ndarray, float, shape (n,)
        Samples in [-1, 1] (integer PCM is refused: scale it first, e.g. int16 / 32768).
    in_rate, out_rate : int
        Sample rates in Hz.
    quality : str
        soxr quality (see :data:`QUALITIES`).

    Returns
    -------
    ndarray, float32, shape (round(n * out_rate / in_rate),)

    Raises
    ------
    ParameterError
        ``x`` is not a 1-D float array, or a rate or the quality is bad.
    """
    import soxr

    in_rate = _check_rate(in_rate, "in_rate")
    out_rate = _check_rate(out_rate, "out_rate")
    from .samples import check_samples_dtype

    x = check_samples_dtype(np.asarray(x), "x", int16=False)
    if x.ndim != 1:
        raise ParameterError(f"x must be mono, shape (n,); got shape {x.shape} (pick a channel or average "
                             f"the channels first)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if in_rate == out_rate:
        return x
    return soxr.resample(x, in_rate, out_rate, quality=_check_quality(quality))


def measure_stream_latency(in_rate: int, out_rate: int, quality: str = "HQ", chunk: int = 256) -> float:
    """Largest delay (seconds) between input pushed and output available, measured.

    Pushes one second of silence through a fresh stream in chunks of
    ``chunk`` samples and returns ``max(t_in - t_out)`` over the chunks.
    Results are cached per (rates, quality, chunk).
    """
    import soxr

    key = (int(in_rate), int(out_rate), quality, int(chunk))
    if key not in _LATENCY_CACHE:
        stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        zeros = np.zeros(chunk, np.float32)
        pushed = produced = 0
        worst = 0.0
        while pushed < max(in_rate, 8 * chunk):
            produced += len(stream.resample_chunk(zeros))
            pushed += chunk
            worst = max(worst, pushed / in_rate - produced / out_rate)
        _LATENCY_CACHE[key] = worst
    return _LATENCY_CACHE[key]


class StreamResampler:
    """Streaming mono resampler (native or soxr).

    Parameters
    ----------
    in_rate, out_rate : int
        Sample rates in Hz.
    quality : str
        ``"NATIVE"`` (the native low-latency resampler), a soxr quality (default ``"HQ"``), or
        ``"AUTO"``: NATIVE where it takes the rates, else MQ or HQ, whichever holds samples back
        less at these rates (:func:`stream_quality`).
    chunk : int
        Typical number of input samples per :meth:`process` call, used to
        measure :attr:`latency_s`.

    Attributes
    ----------
    quality : str
        The quality in use: ``"NATIVE"`` or a soxr quality name (``"AUTO"`` resolved).
    latency_s : float
        Worst-case delay between input pushed and output available (seconds).
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ", chunk: int = 256):
        import soxr

        self.in_rate = _check_rate(in_rate, "in_rate")
        self.out_rate = _check_rate(out_rate, "out_rate")
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ParameterError(f"chunk must be an integer >= 1 (got {chunk!r})")
        q = _check_quality(quality, auto=True)
        self._native = _native(self.in_rate, self.out_rate) if q in (NATIVE, AUTO) else None
        if self._native is not None:
            self.quality = NATIVE
            self.latency_s = float(self._native.latency_s)
            return
        if q == NATIVE:
            raise ParameterError(f"resample quality NATIVE cannot convert {self.in_rate} Hz to {self.out_rate} Hz "
                                 f"(the ratio needs too long a filter); use AUTO or a soxr quality")
        # a soxr quality, or AUTO where the native resampler cannot take the rates: MQ or HQ
        self.quality = stream_quality(self.in_rate, self.out_rate, q, int(min(chunk, 256)))
        self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality)
        self.latency_s = measure_stream_latency(self.in_rate, self.out_rate, self.quality, int(min(chunk, 256)))

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Push mono float32 samples (shape (n,)); returns the output now available (float32). ``last``: the end
        of the stream (the rest of the output follows; :meth:`reset` before new input).

        The samples are not checked here (the hot path): a NaN or infinite sample spreads over the filter's
        length of output, so a caller replaces them first, as the stream session does (counting them) and
        :func:`rtclassify.audio.files.finite_samples` does for whole signals."""
        if self._native is not None:
            return self._native.process(x, last=last)
        return self._stream.resample_chunk(x, last=last)

    def reset(self) -> None:
        """Forget all buffered input (start of a new stream)."""
        if self._native is not None:
            self._native.reset()
        else:
            self._stream.clear()
