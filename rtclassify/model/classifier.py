"""The user-facing classifier: a bundle plus a backend.

::

    from rtclassify import Classifier

    clf = Classifier.load()                      # the default bundle, ONNX Runtime on the CPU
    result = clf.tag(audio, 44100)               # offline, whole signal
    session = clf.stream(sample_rate=48000, max_block=1024)
    for block in blocks:                         # a host's own audio loop
        for event in session.process(block):
            ...
    session.flush()

Offline tagging (:meth:`Classifier.tag`, :meth:`Classifier.tag_file`) runs
the same :class:`~rtclassify.engine.session.StreamSession` as live audio, fed
with large blocks, so a file gives bit-for-bit the same outputs and the same
events as the same samples streamed in any block size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Callable, Iterable

import numpy as np

from ..errors import ParameterError
from .backends import Backend, make_backend
from .bundle import Bundle, load_bundle

__all__ = ["Classifier", "TagResult"]

#: samples per block fed to the session by the offline path
OFFLINE_BLOCK = 65536
#: most hops of a block run through the model in one call by the offline path (several times fewer
#: calls; about 20% less CPU per window with two ONNX Runtime threads, and what a GPU backend wants)
OFFLINE_BATCH = 16


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on (taskset, a container's limit)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: inference threads of ``rtclassify tag`` by default: the CPUs this process may use, up to 8 (a file is not
#: real time; live sessions keep one thread)
OFFLINE_THREADS = max(1, min(8, _usable_cpus()))
#: most channels accepted in a 2-D signal given to :meth:`Classifier.tag`
MAX_CHANNELS = 8


@dataclass
class TagResult:
    """Outputs of offline tagging.

    Attributes
    ----------
    times : ndarray, float64, shape (n_out,)
        Time (seconds of input) of the frame each output refers to.
    probs : ndarray, float32, shape (n_out, n_tags)
        Model probabilities.
    labels : tuple of str
        Tag names (columns of ``probs`` and ``active``).
    active : ndarray, bool, shape (n_out, n_tags)
        Decoder state after each output (bundle thresholds, smoothing and
        minimum durations, or the overrides given).
    smoothed : ndarray, float32, shape (n_out, n_tags)
        The decoder's smoothed probabilities.
    events : list of Event
        Decoder events in order (TagOn/TagOff; TagLevel too when a level rate
        was asked for), ending with a TagOff for every tag still on at the
        end of the signal and, with levels, a TagLevel of 0 for every tag:
        the end of the stream, as a live run sends it to MIDI and OSC.
    event_times : ndarray, float64, shape (n_events,)
        For each event, the ``times`` value of the output that decided it
        (the end of the signal for the final TagOffs and levels).
    duration : float
        Length of the input in seconds.
    sample_rate : int
        Input sample rate.
    techniques : TechniqueFrames or None
        With ``techniques=True``: per output, a dict of pitch (Hz or None),
        vibrato {on, rate, extent} and tremolo {on, rate, depth} (a sequence
        that makes each dict on access); None otherwise.
    technique_events : list of Event
        With ``techniques=True``: VibratoOn/Off and TremoloOn/Off, each at its
        own stream time.
    nonfinite_replaced : int
        NaN or infinite input samples, taken as 0.
    missing_frames : int
        Frames a WAV stream's header declared beyond what came (:meth:`Classifier.tag_file` of a pipe or
        standard input cut short: a writer that died); 0 otherwise (a cut file is said by
        :func:`rtclassify.audio.files.info` before it is read).
    """

    times: np.ndarray
    probs: np.ndarray
    labels: tuple
    active: np.ndarray
    smoothed: np.ndarray
    events: list = field(default_factory=list)
    event_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duration: float = 0.0
    sample_rate: int = 0
    techniques: TechniqueFrames | None = None
    technique_events: list = field(default_factory=list)
    nonfinite_replaced: int = 0
    missing_frames: int = 0

    def __len__(self) -> int:
        return len(self.times)

    def active_tags(self, i: int) -> list[str]:
        """Names of the tags on at output ``i``."""
        return [self.labels[j] for j in np.flatnonzero(self.active[i])]


_TECHNIQUE_SWITCHES = ("vibrato_on", "vibrato_off", "tremolo_on", "tremolo_off")


class _Rows:
    """Rows of one width and type, appended one at a time into blocks allocated ahead, then one array.

    The outputs of a long file are kept this way: as a FrameResult each (its arrays, and its trackers' values
    as nested dicts) they took about 0.8-1.7 kB an output, over 200 MB of resident memory an hour of audio,
    nearly all of it Python objects around a few dozen numbers."""

    BLOCK = 4096

    def __init__(self, width: int, dtype):
        self._shape, self._dtype = (self.BLOCK, width), dtype
        self._full: list[np.ndarray] = []
        self._cur = np.empty(self._shape, dtype)
        self._n = 0

    def append(self, row) -> None:
        if self._n == self.BLOCK:
            self._full.append(self._cur)
            self._cur = np.empty(self._shape, self._dtype)
            self._n = 0
        self._cur[self._n] = row
        self._n += 1

    def array(self) -> np.ndarray:
        return np.concatenate(self._full + [self._cur[:self._n]])


#: the columns of :class:`TechniqueFrames`' array
_TECH_COLUMNS = (("pitch", None), ("vibrato", "on"), ("vibrato", "rate"), ("vibrato", "extent"),
                 ("tremolo", "on"), ("tremolo", "rate"), ("tremolo", "depth"))


def _technique_row(d: dict) -> tuple:
    """A frame's technique dict (:func:`rtclassify.detect.techniques.frame_dict`) as a row of numbers (pitch NaN
    for None)."""
    return tuple(np.nan if d[k] is None else d[k] if sub is None else d[k][sub] for k, sub in _TECH_COLUMNS)


class TechniqueFrames(Sequence):
    """:attr:`TagResult.techniques`: a read-only sequence of one dict per output (see
    :func:`rtclassify.detect.techniques.frame_dict`), made on access from one array of numbers (so a change to
    a dict it gave is not kept). Not a list: :meth:`tolist` gives one (for ``json.dumps``, say)."""

    def __init__(self, values: np.ndarray):
        self._v = values

    def __len__(self) -> int:
        return len(self._v)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        d: dict = {"pitch": None, "vibrato": {}, "tremolo": {}}
        for (k, sub), v in zip(_TECH_COLUMNS, self._v[i].tolist()):
            if sub is None:
                d[k] = None if v != v else v  # (pitch: NaN for None)
            else:
                d[k][sub] = bool(v) if sub == "on" else v
        return d

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def tolist(self) -> list[dict]:
        """The dicts as a list."""
        return list(self)

    def __eq__(self, other) -> bool:
        try:
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        except TypeError:
            return NotImplemented

    def __repr__(self) -> str:
        return f"<TechniqueFrames: {len(self)} outputs>"


def _collect(session, blocks: Iterable, total: int | None, progress: Callable | None) -> TagResult:
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress must be a callable progress(done, total) or None (got {progress!r})")
    n_tags = len(session.labels)
    with_techniques = session.technique_detector is not None
    times, probs = _Rows(1, np.float64), _Rows(n_tags, np.float32)
    smoothed, active = _Rows(n_tags, np.float32), _Rows(n_tags, bool)
    techniques = _Rows(len(_TECH_COLUMNS), np.float64) if with_techniques else None
    events: list = []
    event_times: list = []
    technique_events: list = []

    def take(frames) -> int:
        n_events = 0
        for fr in frames:
            times.append(fr.time)
            probs.append(fr.probs)
            smoothed.append(fr.smoothed)
            active.append(fr.active)
            if techniques is not None:
                techniques.append(_technique_row(fr.technique))
            events.extend(fr.events)
            event_times.extend([fr.time] * len(fr.events))
            n_events += len(fr.events)
        return n_events

    done = 0
    for block in blocks:
        technique_events.extend(e for e in session.process(block) if e.kind in _TECHNIQUE_SWITCHES)
        take(session.last_frames)
        done += len(block)
        if progress is not None:
            progress(done, total)
    tail = session.flush()
    technique_events.extend(e for e in tail if e.kind in _TECHNIQUE_SWITCHES)
    tail = [e for e in tail if e.kind not in _TECHNIQUE_SWITCHES]
    n_tail_frame_events = take(session.last_frames)
    end = session.stream_time
    final = tail[n_tail_frame_events:]
    events.extend(final)
    event_times.extend([end] * len(final))
    return TagResult(times=times.array()[:, 0], probs=probs.array(), labels=session.labels, active=active.array(),
                     smoothed=smoothed.array(), events=events, event_times=np.array(event_times, np.float64),
                     duration=end, sample_rate=session.sample_rate,
                     techniques=TechniqueFrames(techniques.array()) if techniques is not None else None,
                     technique_events=technique_events,
                     nonfinite_replaced=int(session.counters["nonfinite_replaced"]))


class Classifier:
    """A model bundle and the backend that runs it.

    Parameters
    ----------
    bundle : Bundle
    backend : Backend

    Attributes
    ----------
    bundle : Bundle
    backend : Backend
    """

    def __init__(self, bundle: Bundle, backend: Backend):
        self.bundle = bundle
        self.backend = backend

    def __copy__(self) -> "Classifier":
        """A shallow copy shares the bundle and the backend, as two sessions of one Classifier do."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce__(self):  # (copy.deepcopy comes here too)
        where = getattr(self.bundle, "path", None)
        raise TypeError(f"a Classifier cannot be pickled or deep-copied (its {self.backend.name} backend holds a "
                        f"native session); load it in the process that uses it, with Classifier.load("
                        f"{'' if where is None else repr(str(where))})")

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, backend: str = "auto", threads: int = 1) -> "Classifier":
        """Load a bundle and open its model.

        Parameters
        ----------
        path : str or Path, optional
            Bundle folder or zip; None: the default bundle shipped in the package.
        backend : {"auto", "onnx", "tensorrt", "torch"}
            ``"onnx"``: ONNX Runtime on the CPU; ``"tensorrt"``: TensorRT on a
            CUDA GPU (``gpu`` extra); ``"auto"``: TensorRT when a GPU, tensorrt
            and cupy are all there (its first use on a GPU builds and caches
            the engine, which can take minutes), else ONNX Runtime; ``"torch"``:
            development backend (``train`` extra). See
            :func:`rtclassify.model.backends.make_backend`.
        threads : int
            Intra-op threads of the backend (1 suits real time).

        Raises
        ------
        BundleError
            Missing or corrupt bundle (the message names the file).
        MissingDependencyError
            ``backend="torch"`` without torch, ``"tensorrt"`` without tensorrt or cupy.
        GpuUnavailableError
            ``backend="tensorrt"`` without a CUDA GPU.
        ParameterError
            Unknown backend or bad ``threads``.
        """
        bundle = load_bundle(path)
        return cls(bundle, make_backend(bundle, backend, threads=threads))

    @property
    def labels(self) -> tuple:
        """Tag names, in the order of the probabilities."""
        return self.bundle.labels

    @property
    def config(self) -> dict:
        """The bundle's ``model.json`` (a copy): frontend, window, hop, lookahead, thresholds, provenance, metrics."""
        return self.bundle.to_config()

    @property
    def sample_rate(self) -> int:
        """The model's sample rate (input of any rate is resampled to it)."""
        return self.bundle.sample_rate

    def stream(self, sample_rate: int = 48000, max_block: int = 1024, hop: float | None = None,
               channel: int | str = 0, decoder: dict | None = None, level_rate: float | None = None,
               resample_quality: str = "auto", record_frames: bool = True, on_frame=None,
               techniques: bool | dict = False, batch: int = 1):
        """A synchronous streaming session (plugin style, no threads).

        See :class:`rtclassify.engine.session.StreamSession` for the
        parameters, timing conventions and counters.

        Returns
        -------
        StreamSession
        """
        from ..engine.session import StreamSession

        return StreamSession(self.bundle, self.backend, sample_rate=sample_rate, max_block=max_block, hop=hop,
                             channel=channel, decoder=decoder, level_rate=level_rate,
                             resample_quality=resample_quality, record_frames=record_frames, on_frame=on_frame,
                             techniques=techniques, batch=batch)

    def multistream(self, channels, sample_rate: int = 48000, max_block: int = 1024, hop: float | None = None,
                    decoder: dict | None = None, level_rate: float | None = None, resample_quality: str = "auto",
                    record_frames: bool = True, on_frame=None, techniques: bool | dict = False):
        """A synchronous session that tags several channels as separate streams, one batched model run per hop.

        ``channels`` (e.g. ``[0, 1, 2, 3]`` or ``"0-3"``, 0-based) gives the
        input channel of each stream; blocks are ``(frames, len(channels))``.
        See :class:`rtclassify.engine.multistream.MultiStreamSession`.

        Returns
        -------
        MultiStreamSession
        """
        from ..engine.multistream import MultiStreamSession

        return MultiStreamSession(self.bundle, self.backend, channels, sample_rate=sample_rate, max_block=max_block,
                                  hop=hop, decoder=decoder, level_rate=level_rate,
                                  resample_quality=resample_quality, record_frames=record_frames, on_frame=on_frame,
                                  techniques=techniques)

    def tag(self, audio, sample_rate: int, *, channel: int | None = None, hop: float | None = None,
            decoder: dict | None = None, level_rate: float | None = 0, progress: Callable | None = None,
            techniques: bool | dict = False) -> TagResult:
        """Tag a whole signal.

        Parameters
        ----------
        audio : ndarray, shape (n,), (n, channels) or (channels, n)
            float32/float64 in [-1, 1] or int16 (float16 is taken as float32). A 2-D signal's channel axis is
            the shorter one and may hold at most 8 channels; ``(2, 2)`` and
            other square shapes are read as ``(n, channels)``.
        sample_rate : int
            Rate of ``audio`` in Hz (any rate; resampled to the model's by the session's resampler, see
            ``resample_quality`` in :meth:`stream`).
        channel : int, optional
            Channel to use; None averages all channels.
        hop, decoder : optional
            As in :meth:`stream`.
        level_rate : float or None
            TagLevel events in ``events``: 0 (default) none, None every hop.
        progress : callable, optional
            ``progress(samples_done, samples_total)`` after each block.
        techniques : bool or dict
            Also run the pitch, vibrato and tremolo trackers
            (:attr:`TagResult.techniques`, :attr:`TagResult.technique_events`).

        Returns
        -------
        TagResult

        Raises
        ------
        ParameterError
            Wrong shape, dtype, sample rate or channel.
        """
        from ..audio.samples import check_samples_dtype

        a = check_samples_dtype(audio if isinstance(audio, np.ndarray) else np.asarray(audio), "audio")
        if a.ndim == 2:
            n0, n1 = a.shape
            if n1 == 0:
                raise ParameterError(f"audio has no channels: shape {a.shape}")
            if n1 <= MAX_CHANNELS and (n0 >= n1 or n0 == 0):  # (0, channels): no samples yet, not transposed
                pass
            elif n0 <= MAX_CHANNELS and n0 < n1:
                a = a.T
            else:
                raise ParameterError(f"audio must have shape (n,), (n, channels) or (channels, n) with at most "
                                     f"{MAX_CHANNELS} channels; got {a.shape}")
            if channel is not None and not (isinstance(channel, (int, np.integer)) and not isinstance(channel, bool)):
                raise ParameterError(f"channel must be a whole number (0-based) or None for the average; got "
                                     f"{type(channel).__name__} {channel!r}")
            if channel is not None and not 0 <= channel < a.shape[1]:
                raise ParameterError(f"channel {channel!r} out of range: the audio has {a.shape[1]} channel(s)")
            ch = "mix" if channel is None else int(channel)
        elif a.ndim == 1:
            if channel not in (None, 0):
                raise ParameterError(f"channel {channel!r} out of range: the audio is mono")
            ch = 0
        else:
            raise ParameterError(f"audio must have shape (n,), (n, channels) or (channels, n); got {a.shape}")
        session = self.stream(sample_rate=sample_rate, max_block=OFFLINE_BLOCK, hop=hop, channel=ch,
                              decoder=decoder, level_rate=level_rate, techniques=techniques, batch=OFFLINE_BATCH)
        n = a.shape[0]
        blocks = (a[i:i + OFFLINE_BLOCK] for i in range(0, n, OFFLINE_BLOCK))
        return _collect(session, blocks, n, progress)

    def tag_file(self, path, *, channel: int | None = None, hop: float | None = None, decoder: dict | None = None,
                 level_rate: float | None = 0, progress: Callable | None = None,
                 techniques: bool | dict = False) -> TagResult:
        """Tag an audio file, read block by block (any length, any rate; channels averaged unless ``channel``).

        The file is opened once, so a WAV or Ogg stream in a named pipe or ``/dev/fd/N`` can be tagged
        too (libsndfile reads FLAC and MP3 only from a file it can seek in).

        Parameters
        ----------
        path : str or path-like
            An audio file soundfile reads (WAV, FLAC, OGG, MP3, ...), or a pipe of WAV or Ogg.
        channel : int, optional
            The 0-based channel to tag; default the channels' average.
        hop : float, optional
            Seconds between model outputs (rounded to whole frames); default the bundle's.
        decoder : dict, optional
            Decoder settings over the bundle's (``attack_s``, ``smoothing_s``, ``min_on_s``, ``min_off_s``).
        level_rate : float or None
            Tag level events per second (0: none, the default; None: one per model output).
        progress : callable, optional
            ``progress(samples_done, samples_total)`` after each block read (as in :meth:`tag`): the frames
            (samples per channel) read so far and the file's length in frames
            (``rtclassify.audio.files.info(path).frames``). The fraction done is ``samples_done / samples_total``.
        techniques : bool or dict
            Also track pitch, vibrato and tremolo (a dict sets the trackers' parameters).

        Returns
        -------
        TagResult
            ``times``, ``probs``, ``active``, ``labels`` and the events, as :meth:`tag` gives.

        Raises
        ------
        AudioFileError
            Missing, unreadable or unsupported file.
        ParameterError
            ``channel`` out of range, or a sample rate the session does not take (the message names the file).
        """
        from ..audio import files
        from ..engine.session import check_sample_rate

        # one open for the header and the samples: a named pipe or /dev/fd/N can be read only once
        with files.open_blocks(path, OFFLINE_BLOCK, channel) as (info, blocks):
            check_sample_rate(info.sample_rate, f"{path}: the sample rate")
            # mono blocks of the chosen channel; the events carry it (as Classifier.tag's and the listener's)
            session = self.stream(sample_rate=info.sample_rate, max_block=OFFLINE_BLOCK, hop=hop,
                                  channel=channel or 0, decoder=decoder, level_rate=level_rate, techniques=techniques,
                                  batch=OFFLINE_BATCH)
            result = _collect(session, blocks, info.frames, progress)
            if info.stream_frames is not None:
                read = int(round(result.duration * info.sample_rate))
                result.missing_frames = max(0, info.stream_frames - read)
            return result

    def learn(self, name: str, positives, negatives=None, sample_rate: int | None = None, **options) -> "Classifier":
        """A classifier with this one's tags plus ``name``, learned from examples.

        The original tags' outputs are unchanged; the new tag's head reads the model's embedding.

        Parameters
        ----------
        name : str
            The new tag: 1-64 letters, digits, ``_``, ``-`` or ``.``, not one of :attr:`labels`.
        positives : sequence
            Examples of the sound: file paths, arrays at ``sample_rate``, or ``(array, rate)`` pairs; at
            least one, each at least 0.2 s long and not silent.
        negatives : sequence, optional
            Examples of other sounds, as ``positives``; default generic audio and the bundle's own.
        sample_rate : int, optional
            The rate of array examples given without one.
        **options
            Passed to :func:`rtclassify.learn.learn_tag` (``out``, ``backend``, ``pitch_shifts``, ...).

        Returns
        -------
        Classifier
            A new classifier; this one is unchanged.

        Raises
        ------
        ParameterError
            Too few, silent or unreadable examples, a bad name or rate (the message names the example).
        """
        from ..learn import learn_tag

        return learn_tag(self, name, positives, negatives, sample_rate, **options)

    def save(self, path) -> "os.PathLike":
        """Write this classifier's bundle (model.onnx + model.json, and weights.pt when it has one) to a folder or
        a .zip file (not the package's own default bundle); returns the path."""
        from ..learn import save_classifier

        return save_classifier(self, path)

    def __repr__(self) -> str:
        return f"<Classifier {self.bundle.name!r} ({len(self.labels)} tags, backend {self.backend.name})>"
