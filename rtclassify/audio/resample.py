"""Sample-rate conversion with soxr.

:class:`StreamResampler` wraps a ``soxr.ResampleStream`` (mono float32). Its
output is time-aligned with its input (sample ``j`` of the output is at
``j / out_rate`` seconds, like sample ``i`` of the input at ``i / in_rate``),
and any split of the input into chunks gives bit-for-bit the same output. It
does, however, hold samples back: after ``t`` seconds of input have been
pushed, output is available only up to ``t - d`` seconds, where ``d`` varies
with soxr's internal block processing. :attr:`StreamResampler.latency_s` is the
largest ``d`` measured for the stream's rates, quality and chunk size, which is
what the engine reports as the resampler's share of the latency.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["StreamResampler", "resample", "measure_stream_latency", "QUALITIES"]

#: soxr quality names, fastest to best
QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")

_LATENCY_CACHE: dict = {}


def _check_rate(rate, name: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a positive number (got {rate!r})")
    if not (rate > 0) or not np.isfinite(rate) or int(rate) != rate:
        raise ParameterError(f"{name} must be a positive integer sample rate in Hz (got {rate!r})")
    return int(rate)


def _check_quality(quality: str) -> str:
    if not isinstance(quality, str) or quality.upper() not in QUALITIES:
        raise ParameterError(f"resample quality must be one of {', '.join(QUALITIES)} (got {quality!r})")
    return quality.upper()


def resample(x: np.ndarray, in_rate: int, out_rate: int, quality: str = "HQ") -> np.ndarray:
    """Resample a whole mono signal (one shot).

    Parameters
    ----------
    x : ndarray, shape (n,)
    in_rate, out_rate : int
        Sample rates in Hz.
    quality : str
        soxr quality (see :data:`QUALITIES`).

    Returns
    -------
    ndarray, float32, shape (round(n * out_rate / in_rate),)
    """
    import soxr

    in_rate = _check_rate(in_rate, "in_rate")
    out_rate = _check_rate(out_rate, "out_rate")
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
    """Streaming mono resampler (soxr).

    Parameters
    ----------
    in_rate, out_rate : int
        Sample rates in Hz.
    quality : str
        soxr quality (default ``"HQ"``).
    chunk : int
        Typical number of input samples per :meth:`process` call, used to
        measure :attr:`latency_s`.

    Attributes
    ----------
    latency_s : float
        Worst-case delay between input pushed and output available (seconds).
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ", chunk: int = 256):
        import soxr

        self.in_rate = _check_rate(in_rate, "in_rate")
        self.out_rate = _check_rate(out_rate, "out_rate")
        self.quality = _check_quality(quality)
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ParameterError(f"chunk must be an integer >= 1 (got {chunk!r})")
        self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality)
        self.latency_s = measure_stream_latency(self.in_rate, self.out_rate, self.quality, int(min(chunk, 256)))

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Push mono float32 samples (shape (n,)); returns the output now available (float32)."""
        return self._stream.resample_chunk(x, last=last)

    def reset(self) -> None:
        """Forget all buffered input (start of a new stream)."""
        self._stream.clear()
