"""Training loop of the short-chunk CNN (torch; the ``train`` extra).

The loop is independent of where the frames come from: :class:`Trainer` takes
a training :class:`~rtclassify.train.features.FeatureSet` and a validation one,
so fine-tuning on other labelled audio only needs another way to build them.

``rtclassify train --config FILE`` reads a TOML config (see
``rtclassify/train/configs/default.toml``), caches features of the data
builder's splits, trains with a fixed seed, balanced window sampling, mixup
in the power domain and gain augmentation, keeps a checkpoint per epoch
(``--resume`` continues from the last), stops early on validation macro PR-AUC
(or at the time budget), saves loss curves as a PNG, chooses per-tag
thresholds on validation, exports the bundle and evaluates it on the test split.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ParameterError, require
from . import MAX_EPOCHS, MAX_LR, MAX_MINUTES, MAX_SEED, MAX_THREADS, MAX_WINDOWS
from .features import (DEFAULT_FRONTEND, FeatureSet, clip_index, frontend_differences, grid_label_offset,
                       split_features, window_batch)
from .model import TAGS, ModelConfig

__all__ = [
    "TrainParams",
    "RunConfig",
    "load_config",
    "split_features",
    "Trainer",
    "run_training",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "rtclassify-checkpoint-1"
_DB = 10.0 / math.log(10.0)  # dB = _DB * ln(power)
_FLOOR_DB = -100.0           # 10*log10(amin) of the default frontend


#: ``[train]`` settings a ``--resume`` may change: how long, how patiently and how fast it runs (the precision of
#: the steps included: the weights and the optimizer stay float32, and each epoch's record says which ran), and
#: the thresholds' hysteresis (applied after training). Any other change makes the resumed run a different one.
RESUME_MAY_CHANGE = ("epochs", "time_budget_min", "patience", "threads", "off_ratio", "quiet_false_rate",
                     "channels_last", "precision")


@dataclass
class TrainParams:
    """Optimization and augmentation parameters (the ``[train]`` table).

    Attributes
    ----------
    seed : int
    threads : int
        torch intra-op threads.
    epochs : int
        Maximum epochs.
    windows_per_epoch : int
        Windows drawn (with balanced sampling) per epoch.
    batch_size : int
    lr : float
        Peak learning rate (AdamW; linear warm-up, then cosine decay).
    weight_decay : float
    patience : int
        Epochs without validation improvement before stopping.
    balance : float
        Exponent of the inverse tag frequency used to weight windows
        (0: uniform, 1: fully balanced).
    mixup : float
        Probability that a window is mixed with another one (power-domain sum,
        labels OR-ed).
    mixup_gain_db : float
        The second window is attenuated by a uniform gain in [-mixup_gain_db, 0].
    gain_db : float
        Uniform random gain in [-gain_db, gain_db] added to each window.
    eq_db : float
        Random spectral colouring per window (a microphone/room "EQ" in the
        feature domain): a linear tilt across the mel bands from -t to +t dB and
        one Gaussian bump of height b dB, with t and b uniform in
        [-eq_db, eq_db]; 0 disables it.
    freq_shift_bins : int
        Random shift of each window along the mel axis by a whole number of bands, uniform in
        [-freq_shift_bins, freq_shift_bins] (the edge band repeated into the gap): moves the
        spectral envelope (formants, body resonances) with the partials (on the default 128-band
        HTK scale one band is about half a semitone above 1 kHz, 1-3 semitones under 200 Hz),
        so a timbre family is learned over a range of body sizes
        rather than the few instruments of the data; 0 disables it. Labels are unchanged.
    freq_masks : int
        Frequency masks per window (SpecAugment, Park et al. 2019): each sets a run of
        1..``freq_mask_bins`` neighbouring mel bands, over the whole window, to the window's mean
        level, so that no single region of the spectrum can decide a tag; 0 disables it.
        Labels are unchanged. (No time masks: the labels are per frame.)
    freq_mask_bins : int
        Widest frequency mask, in mel bands.
    onset_fraction : float
        Share of each batch's windows whose target frame lies within ``onset_ms`` after a tag
        turned on (the tag still on): oversamples the moments a live classifier must recognize
        a new sound from its first frames; 0 samples all frames alike.
    onset_ms : float
        Length of that stretch after each onset.
    time_budget_min : float
        Minutes of training (epochs + validation). The learning-rate schedule
        follows the larger of step progress and time progress, so a run that is
        slower than planned still anneals and ends inside the budget (on a fast
        machine the steps bound it and the run is reproducible for a seed).
    val_stride : int
        Validation windows every this many frames.
    max_val_windows : int
        Cap on validation windows (evenly subsampled).
    off_ratio : float
        Hysteresis: off threshold = on threshold * off_ratio.
    stream_starts : bool
        Train (and validate) on the frames of each clip's first window too, their windows padded
        before the clip with the frontend's frame for digital silence, as the runtime's windows are
        for the first second of every stream and file. Without them the model never sees that
        padding, and noise that starts after it (a file of rain, a live input opened in a noisy
        room) reads as a drum hit.
    quiet_false_rate : float
        In [0, 0.5): each tag's on threshold is at least the ``1 - quiet_false_rate`` quantile of its
        validation probability over the frames where every tag is off (noise, ambiences, silence);
        0 leaves the thresholds to F1 alone (:func:`rtclassify.train.evaluate.choose_thresholds`).
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"auto"``. ``"bf16"``: the training steps' forward and backward
        passes in bfloat16 under torch's CPU autocast, and so is the per-epoch validation (early
        stopping); the weights, the optimizer, the thresholds' predictions and the export stay
        float32. Fast on CPUs with AMX or AVX-512 BF16; elsewhere torch emulates it, about ten
        times slower than fp32 (measured on an AVX2 CPU: 3.8 s against 0.41 s per width-16 step).
        ``"auto"`` takes bf16 where the CPU has it and fp32 elsewhere (:attr:`Trainer.precision`
        says which; ``history.json`` records it per epoch).
    channels_last : bool
        Keep the convolutions' tensors in channels-last memory format (faster convolutions on
        the CPU; the weights and the exported graph are the same).
    """

    seed: int = 0
    threads: int = 2
    epochs: int = 12
    windows_per_epoch: int = 60000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    balance: float = 0.7
    mixup: float = 0.4
    mixup_gain_db: float = 12.0
    gain_db: float = 6.0
    eq_db: float = 6.0
    freq_shift_bins: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 16
    onset_fraction: float = 0.0
    onset_ms: float = 400.0
    time_budget_min: float = 50.0
    val_stride: int = 6
    max_val_windows: int = 30000
    off_ratio: float = 0.7
    stream_starts: bool = False
    quiet_false_rate: float = 0.0
    precision: str = "fp32"  # "auto" in the shipped configs
    channels_last: bool = False

    def validate(self) -> "TrainParams":
        # types first: a string, a bool or a fraction where a whole number belongs is refused, not converted
        for k, default in TrainParams.__dataclass_fields__.items():
            v, want = getattr(self, k), type(default.default)
            if want is bool:
                ok = isinstance(v, bool)
            elif want is int:
                ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            elif want is float:
                ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
                    and math.isfinite(v)
            else:
                ok = isinstance(v, want)
            if not ok:
                kind = {bool: "true or false", int: "a whole number", float: "a finite number"}.get(want, want.__name__)
                raise ConfigError(f"[train] {k} must be {kind}, got {v!r}")
        for k, hi in (("threads", MAX_THREADS), ("epochs", MAX_EPOCHS), ("windows_per_epoch", MAX_WINDOWS),
                      ("batch_size", 65536),
                      ("patience", 10 ** 6), ("val_stride", 10 ** 6), ("max_val_windows", 10 ** 9)):
            if not 1 <= int(getattr(self, k)) <= hi:
                raise ConfigError(f"[train] {k} must be from 1 to {hi}, got {getattr(self, k)}")
        for k in ("weight_decay", "mixup_gain_db", "gain_db", "eq_db"):
            if not 0 <= float(getattr(self, k)) <= 1000:
                raise ConfigError(f"[train] {k} must be from 0 to 1000, got {getattr(self, k)}")
        if not 0 <= int(self.freq_shift_bins) <= 16:
            raise ConfigError(f"[train] freq_shift_bins must be in 0..16, got {self.freq_shift_bins}")
        if not 0 <= int(self.freq_masks) <= 4:
            raise ConfigError(f"[train] freq_masks must be in 0..4, got {self.freq_masks}")
        if not 1 <= int(self.freq_mask_bins) <= 64:
            raise ConfigError(f"[train] freq_mask_bins must be in 1..64, got {self.freq_mask_bins}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"[train] seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if not (math.isfinite(float(self.lr)) and 0 < float(self.lr) <= MAX_LR):
            raise ConfigError(f"[train] lr must be a finite number in (0, {MAX_LR:g}], got {self.lr}")
        if not 0 < float(self.time_budget_min) <= MAX_MINUTES:
            raise ConfigError(f"[train] time_budget_min must be > 0 and at most {MAX_MINUTES} (a week), got "
                              f"{self.time_budget_min}")
        if not float(self.onset_ms) > 0:
            raise ConfigError(f"[train] onset_ms must be > 0, got {self.onset_ms}")
        for k in ("mixup", "balance", "onset_fraction"):
            if not 0 <= float(getattr(self, k)) <= 1:
                raise ConfigError(f"[train] {k} must be in [0, 1], got {getattr(self, k)}")
        if not 0 < self.off_ratio <= 1:
            raise ConfigError(f"[train] off_ratio must be in (0, 1], got {self.off_ratio}")
        if not 0 <= self.quiet_false_rate < 0.5:
            raise ConfigError(f"[train] quiet_false_rate must be in [0, 0.5), got {self.quiet_false_rate}")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ConfigError(f"[train] precision must be 'fp32', 'bf16' or 'auto', got {self.precision!r}")
        if not isinstance(self.channels_last, bool):
            raise ConfigError(f"[train] channels_last must be true or false, got {self.channels_last!r}")
        return self


def _cpu_has_bf16(torch) -> bool:
    """Whether this CPU runs bfloat16 natively (AMX tiles or AVX-512 BF16), as torch reports it."""
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, f, lambda: False)()) for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


@dataclass
class RunConfig:
    """A whole training config (the TOML file).

    Attributes
    ----------
    data : dict
        ``dir`` (data builder output), ``train``/``val``/``test`` split names,
        ``cache`` (feature cache folder; default ``<dir>/features``).
    model : ModelConfig
    train : TrainParams
    output : dict
        ``dir`` (run folder: checkpoints, curves, reports), ``bundle`` (bundle
        folder, default ``<dir>/bundle``), ``name`` (bundle name).
    bundle : dict
        ``hop_frames`` and ``decoder`` defaults written to model.json.
    source : str
        The config file (for messages and provenance).
    raw : dict
        The config as read.
    frontend : dict
        The model's log-mel frontend: :data:`DEFAULT_FRONTEND` with the ``[frontend]`` table's
        values (``n_fft``, ``win_length``).
    """

    data: dict
    model: ModelConfig
    train: TrainParams
    output: dict
    bundle: dict
    source: str = ""
    raw: dict = field(default_factory=dict)
    frontend: dict = field(default_factory=lambda: dict(DEFAULT_FRONTEND))


_DATA_DEFAULTS = {"dir": None, "train": "train", "val": "val", "test": "test", "cache": None}
_OUTPUT_DEFAULTS = {"dir": "runs/default", "bundle": None, "name": "rtclassify-default"}
_BUNDLE_DEFAULTS = {"hop_frames": 6, "decoder": {"smoothing_s": 0.15, "min_on_s": 0.1, "min_off_s": 0.2}}
#: ``[frontend]`` keys a config may set. The sample rate, hop and mel bands are the data builder's
#: frame grid and the model's input, so only the analysis window may grow (finer frequency resolution).
_FRONTEND_KEYS = ("n_fft", "win_length")


def _frontend_table(raw: dict, source: str) -> dict:
    t = _table(raw, "frontend", {k: None for k in _FRONTEND_KEYS}, source)
    f = dict(DEFAULT_FRONTEND)
    if t["n_fft"] is not None:
        f["n_fft"] = t["n_fft"]
        f["win_length"] = t["n_fft"]
    try:
        grid_label_offset(f)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    win = t["win_length"]
    if win is not None:
        if isinstance(win, bool) or not isinstance(win, int) or not 1 <= win <= f["n_fft"]:
            raise ConfigError(f"{source}: [frontend] win_length must be a whole number from 1 to n_fft "
                              f"({f['n_fft']}), got {win!r}")
        f["win_length"] = win
    return f


def _table(raw: dict, name: str, defaults: dict, path: str) -> dict:
    t = raw.get(name, {})
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    unknown = set(t) - set(defaults)
    if unknown:
        raise ConfigError(f"{path}: [{name}] unknown key(s) {sorted(unknown)}; known: {sorted(defaults)}")
    out = copy.deepcopy(defaults)
    out.update(t)
    return out


def parse_config(raw: dict, source: str = "<config>", base: Path | None = None) -> RunConfig:
    """Validate a config dict (as read from TOML) into a :class:`RunConfig`.

    Relative paths are taken relative to ``base`` (default: the current directory).
    """
    unknown = set(raw) - {"data", "model", "train", "output", "bundle", "frontend"}
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {sorted(unknown)}")
    data = _table(raw, "data", _DATA_DEFAULTS, source)
    if not data["dir"]:
        raise ConfigError(f"{source}: [data] dir is required")
    output = _table(raw, "output", _OUTPUT_DEFAULTS, source)
    named = [(k, data[k]) for k in ("train", "val", "test")]
    for i, (k, v) in enumerate(named):
        if k == "test" and v == "":
            continue  # no test split: training without the test evaluation (README)
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{source}: [data] {k} must be a split name, got {v!r}")
        for k2, v2 in named[:i]:
            if v == v2:  # thresholds and the best epoch chosen on the test split would not be a test
                raise ConfigError(f"{source}: [data] {k2} and {k} are both the split {v!r}; each needs its own")
    for table, d, keys in (("data", data, ("dir", "cache")), ("output", output, ("dir", "bundle"))):
        for key in keys:
            if d[key] is not None and not isinstance(d[key], str):
                raise ConfigError(f"{source}: [{table}] {key} must be a path (a string), got {d[key]!r}")
    bundle = _table(raw, "bundle", _BUNDLE_DEFAULTS, source)
    frontend = _frontend_table(raw, source)
    base = Path(base) if base else Path.cwd()

    def resolve(p):
        return None if p is None else str((base / os.path.expanduser(str(p))).resolve())

    data["dir"] = resolve(data["dir"])
    data["cache"] = resolve(data["cache"]) if data["cache"] else str(Path(data["dir"]) / "features")
    output["dir"] = resolve(output["dir"])
    output["bundle"] = resolve(output["bundle"]) if output["bundle"] else str(Path(output["dir"]) / "bundle")
    try:
        model = ModelConfig.from_dict(dict(raw.get("model", {})))
    except (ParameterError, TypeError) as exc:
        raise ConfigError(f"{source}: [model] {exc}") from exc
    # the input and output sizes follow the frontend and the tag set: checked now, not after the features
    if model.n_mels != int(frontend["n_mels"]):
        raise ConfigError(f"{source}: [model] n_mels {model.n_mels} differs from the frontend's "
                          f"{frontend['n_mels']} mel bands (the data builder's frame grid); leave it out")
    if model.n_tags != len(TAGS):
        raise ConfigError(f"{source}: [model] n_tags {model.n_tags} differs from the {len(TAGS)} tags of the "
                          f"training data ({', '.join(TAGS)}); leave it out (rtclassify train --data trains "
                          f"your own tags)")
    tdefaults = TrainParams().__dict__
    t = _table(raw, "train", tdefaults, source)
    try:
        # an integer where a float belongs is fine (lr = 1); anything else keeps its type for validate()
        train = TrainParams(**{k: (float(v) if type(tdefaults[k]) is float and isinstance(v, int)
                                   and not isinstance(v, bool) else v) for k, v in t.items()}).validate()
    except ConfigError as exc:  # already names its table
        raise ConfigError(f"{source}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: [train] {exc}") from exc
    hop = bundle["hop_frames"]
    if isinstance(hop, bool) or not isinstance(hop, int) or not 1 <= hop <= model.window_frames:
        raise ConfigError(f"{source}: [bundle] hop_frames must be a whole number from 1 to the model's window "
                          f"({model.window_frames} frames), got {hop!r}")
    dec_raw = bundle.get("decoder", {})
    if not isinstance(dec_raw, dict):
        raise ConfigError(f"{source}: [bundle.decoder] must be a table, got {dec_raw!r}")
    from ..model.bundle import DECODER_KEYS

    carried_not = sorted(set(dec_raw) - set(DECODER_KEYS))
    if carried_not:
        raise ConfigError(f"{source}: [bundle.decoder] unknown decoder key(s) for a bundle: {carried_not} (it "
                          f"carries {', '.join(DECODER_KEYS)}; its thresholds are chosen on validation, and "
                          f"level_rate is a mapping file's setting)")
    dec = dict(_BUNDLE_DEFAULTS["decoder"], **dec_raw)
    try:  # the keys and values the runtime decoder takes, checked now rather than when the bundle loads
        from ..detect.decoder import DecoderConfig

        DecoderConfig(labels=("t",), thresholds={"t": (0.5, 0.35)}).override(dec)
    except ParameterError as exc:
        raise ConfigError(f"{source}: [bundle.decoder] {exc}") from None
    bundle = {"hop_frames": hop, "decoder": {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 else v) for k, v in dec.items()}}
    for key in ("dir", "bundle"):
        if not str(raw.get("output", {}).get(key, "x")).strip():
            raise ConfigError(f"{source}: [output] {key} is empty; give a folder")
    if not isinstance(output["name"], str) or not output["name"].strip():
        raise ConfigError(f"{source}: [output] name must be a non-empty string (the bundle's name), got "
                          f"{output['name']!r}")
    return RunConfig(data, model, train, output, bundle, source, raw, frontend)


def load_config(path, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML training config; ``overrides`` are ``section.key=value`` strings (TOML values)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a TOML file must be UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    for ov in overrides or []:
        if "=" not in ov or "." not in ov.split("=", 1)[0]:
            raise ConfigError(f"--set {ov!r}: expected section.key=value")
        key, value = ov.split("=", 1)
        *tables, name = [part.strip() for part in key.strip().split(".")]
        if not all(tables) or not name:
            raise ConfigError(f"--set {ov!r}: expected section.key=value (or section.table.key=value)")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # a bare word: a string (data.dir=datasets/v3)
            try:
                number = float(parsed)
            except ValueError:
                pass
            else:  # .001, 1., +.5: numbers to Python, not to TOML
                raise ConfigError(f"--set {ov!r}: {parsed} is not a TOML number; write it as {number!r}") from None
        node = raw
        for t in tables:  # bundle.decoder.smoothing_s reaches the [bundle.decoder] table
            node = node.setdefault(t, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {ov!r}: {t} is a value, not a table")
        node[name] = parsed
    try:
        return parse_config(raw, str(path))
    except ConfigError as exc:
        # a value that came from --set is named as such, not blamed on the file
        msg = str(exc)
        for ov in reversed(overrides or []):
            *tables, name = [part.strip() for part in ov.split("=", 1)[0].strip().split(".")]
            section = f"{path}: [{'.'.join(tables)}] "
            named = msg.split(";")[0].split(" (")[0]  # (a list of unknown keys, before what is known)
            if msg.startswith(f"{section}{name} ") or (msg.startswith(f"{section}unknown ") and repr(name) in named) \
                    or (msg.startswith(f"{path}: unknown table") and repr(tables[0]) in named):
                raise ConfigError(f"--set {ov}: {msg[len(f'{path}: '):]}") from None
        raise


# ----------------------------------------------------------------------------- data
def data_provenance(data_dir) -> dict:
    """Provenance of the training data (recipe, seed, sources and licenses) from the data manifest."""
    from .data import provenance

    return provenance(Path(data_dir))


# ----------------------------------------------------------------------------- sampling
def windows(fs: FeatureSet, targets: np.ndarray, window_frames: int, lookahead: int, starts: bool) -> np.ndarray:
    """The windows (n, n_mels, W) float32 of target frames; with ``starts``, padded with silence before
    each clip (see ``stream_starts``)."""
    if starts:
        return window_batch(fs.mel, targets + lookahead, window_frames, fs.offsets, fs.silence_frame())
    return window_batch(fs.mel, targets + lookahead, window_frames)


class WindowSampler:
    """Draws training windows from a FeatureSet with tag-balanced weights.

    Parameters
    ----------
    fs : FeatureSet
    window_frames, lookahead : int
    balance : float
        Weight of a target frame = max over its active tags (or the "no tag"
        class) of ``frequency ** -balance``.
    onset_fraction : float
        Share of the drawn targets taken (with the same weights) from the first
        ``onset_frames`` frames after a tag turned on inside a clip, while it is
        still on: the frames a live classifier must decide with only a few
        frames of the new sound in its window. 0 draws from all targets alike.
    onset_frames : int
    starts : bool
        Also draw the frames of each clip's first window, padded with silence before the clip
        (``stream_starts``).
    """

    def __init__(self, fs: FeatureSet, window_frames: int, lookahead: int, balance: float,
                 onset_fraction: float = 0.0, onset_frames: int = 25, starts: bool = False):
        self.fs = fs
        self.W = window_frames
        self.L = lookahead
        self.starts = bool(starts)
        self.targets = fs.target_frames(window_frames, lookahead, 1, starts=self.starts)
        if len(self.targets) == 0:
            need = lookahead + 1 if self.starts else window_frames
            raise ParameterError(f"no clip is long enough for a {window_frames}-frame window (at least {need} "
                                 f"frames{' with stream_starts' if self.starts else ''})")
        y = np.asarray(fs.labels[self.targets]).astype(bool)
        none = ~y.any(axis=1)
        freq = np.concatenate([y.mean(axis=0), [none.mean()]])
        inv = np.where(freq > 0, np.maximum(freq, 1e-6) ** -balance, 0.0)
        yy = np.concatenate([y, none[:, None]], axis=1)
        w = (yy * inv[None, :]).max(axis=1)
        self.p = w / w.sum()
        self._cdf = np.cumsum(self.p)
        self.tag_frequency = freq[:-1]
        self.onset_fraction = float(onset_fraction)
        self.onset_targets = np.zeros(0, np.int64)
        if self.onset_fraction > 0:
            near = fs.after_onsets(int(onset_frames)).any(axis=1)[self.targets]
            if near.any():
                self.onset_targets = self.targets[near]
                self._onset_cdf = np.cumsum(w[near])

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Target frames (absolute indices), shape (n,)."""
        i = np.searchsorted(self._cdf, rng.random(n) * self._cdf[-1], side="right")
        out = self.targets[np.minimum(i, len(self.targets) - 1)]
        if self.onset_fraction > 0 and len(self.onset_targets):
            near = np.flatnonzero(rng.random(n) < self.onset_fraction)
            j = np.searchsorted(self._onset_cdf, rng.random(len(near)) * self._onset_cdf[-1], side="right")
            out[near] = self.onset_targets[np.minimum(j, len(self.onset_targets) - 1)]
        return out

    def batch(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows (n, n_mels, W) float32 and labels (n, n_tags) float32 for target frames."""
        return (windows(self.fs, targets, self.W, self.L, self.starts),
                np.asarray(self.fs.labels[targets], np.float32))


def augment(x, y, rng: np.random.Generator, params: TrainParams, partner=None):
    """Power-domain mixup, random gain, random EQ, band shifts and frequency masks on a batch (inputs are not modified).

    Parameters
    ----------
    x : torch.Tensor, shape (B, n_mels, W)  log-mel dB
    y : torch.Tensor, shape (B, n_tags)
    partner : (x2, y2) tensors of the same shapes, optional
        Windows to mix in.
    """
    import torch

    B = x.shape[0]
    if partner is not None and params.mixup > 0:
        x2, y2 = partner
        sel = torch.from_numpy(np.flatnonzero(rng.random(B) < params.mixup))
        g = torch.from_numpy(rng.uniform(-params.mixup_gain_db, 0.0, len(sel)).astype(np.float32))
        if len(sel):
            x = x.clone()
            y = y.clone()
            x[sel] = _DB * torch.logaddexp(x[sel] / _DB, (x2[sel] + g[:, None, None]) / _DB)
            y[sel] = torch.maximum(y[sel], y2[sel])
    shift = np.zeros((B, x.shape[1]), np.float32)
    if params.gain_db > 0:
        shift += rng.uniform(-params.gain_db, params.gain_db, (B, 1))
    if params.eq_db > 0:
        n = x.shape[1]
        pos = np.linspace(-1.0, 1.0, n)[None, :]
        tilt = rng.uniform(-params.eq_db, params.eq_db, (B, 1))
        height = rng.uniform(-params.eq_db, params.eq_db, (B, 1))
        centre = rng.uniform(-1.0, 1.0, (B, 1))
        width = rng.uniform(0.1, 0.5, (B, 1))
        shift += tilt * pos + height * np.exp(-0.5 * ((pos - centre) / width) ** 2)
    if params.gain_db > 0 or params.eq_db > 0:
        x = torch.clamp(x + torch.from_numpy(shift.astype(np.float32))[:, :, None], min=_FLOOR_DB)
    k = int(params.freq_shift_bins)
    if k > 0:
        n = x.shape[1]
        s = rng.integers(-k, k + 1, B)
        idx = np.clip(np.arange(n)[None, :] - s[:, None], 0, n - 1)  # band m reads band m - s
        x = torch.gather(x, 1, torch.from_numpy(idx)[:, :, None].expand(-1, -1, x.shape[2]))
    if int(params.freq_masks) > 0:
        n = x.shape[1]
        band = np.arange(n)[None, :]
        masked = np.zeros((B, n), bool)
        for _ in range(int(params.freq_masks)):
            width = rng.integers(1, int(params.freq_mask_bins) + 1, (B, 1))
            lo = rng.integers(0, n - width + 1)
            masked |= (band >= lo) & (band < lo + width)
        m = torch.from_numpy(masked)[:, :, None]
        x = torch.where(m, x.mean(dim=(1, 2), keepdim=True), x)
    return x, y


# ----------------------------------------------------------------------------- training
def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _seed_all(seed: int):
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def mel_statistics(fs: FeatureSet, max_frames: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel mean and std (dB) of a FeatureSet (on up to ``max_frames`` random frames)."""
    n = fs.mel.shape[0]
    idx = np.arange(n) if n <= max_frames else np.sort(np.random.default_rng(seed).choice(n, max_frames, False))
    m = np.asarray(fs.mel[idx], np.float64)
    return m.mean(axis=0).astype(np.float32), np.maximum(m.std(axis=0), 1.0).astype(np.float32)


def _key_differences(prefix: str, old: dict, new: dict) -> list[str]:
    """``PREFIX.KEY old -> new`` for each key whose value differs between two dicts."""
    return [f"{prefix}{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def _train_param_conflicts(ck: dict, params: TrainParams) -> list[str]:
    """The training settings a checkpoint's run and ``params`` disagree on, beyond :data:`RESUME_MAY_CHANGE`."""
    out = []
    saved = ck.get("train_params") or {}
    defaults = TrainParams.__dataclass_fields__
    for key, now in params.__dict__.items():
        if key in RESUME_MAY_CHANGE:
            continue
        # a setting newer than the checkpoint was off there: its default, which is how older runs trained
        was = saved[key] if key in saved else defaults[key].default
        if was != now:
            out.append(f"train.{key} {was!r} -> {now!r}")
    return out


def _frontend_conflicts(ck: dict, frontend: dict | None) -> list[str]:
    old = ck.get("frontend")
    if old is None or frontend is None:
        return []
    return [f"frontend.{k} {old.get(k)!r} -> {frontend.get(k)!r}" for k in frontend_differences(old, frontend)]


def resume_setting_conflicts(ck: dict, model: ModelConfig, params: TrainParams, frontend: dict | None) -> list[str]:
    """What a checkpoint's run and a run of these settings disagree on, beyond the settings a resume may change
    (:data:`RESUME_MAY_CHANGE`): ``model.KEY`` and ``train.KEY`` entries, and ``frontend.KEY`` when ``frontend``
    is given. The data are compared by :class:`Trainer` once their features are made."""
    return (_key_differences("model.", ck.get("model_config") or {}, model.to_dict())
            + _train_param_conflicts(ck, params) + _frontend_conflicts(ck, frontend))


def _resume_refused(path, conflicts: list[str]) -> ConfigError:
    return ConfigError(f"{path}: this run differs from the checkpoint's in {'; '.join(conflicts)}; cannot resume "
                       f"(only {', '.join(RESUME_MAY_CHANGE)} may change): restore those settings or start a new "
                       f"run in another output.dir")


class Trainer:
    """Trains a :class:`~rtclassify.train.model.ShortChunkCNN` on FeatureSets.

    Parameters
    ----------
    model_config : ModelConfig
    params : TrainParams
    train_set, val_set : FeatureSet
    out_dir : path
        Run folder: ``last.pt``, ``best.pt``, ``history.json``, ``curves.png``.
    tags : sequence of str
    extra : dict, optional
        Stored in every checkpoint (config, provenance, bundle defaults...).
    console : rich.console.Console, optional
    init_state : dict, optional
        A state dict to start from (fine-tuning); normalization is kept from it.
    """

    def __init__(self, model_config: ModelConfig, params: TrainParams, train_set: FeatureSet, val_set: FeatureSet,
                 out_dir, tags=TAGS, extra: dict | None = None, console=None, init_state: dict | None = None):
        torch = require("torch", extra="train")
        from rich.console import Console

        from .model import ShortChunkCNN

        self.torch = torch
        self.cfg = model_config.validate()
        self.params = params.validate()
        self.train_set, self.val_set = train_set, val_set
        self.tags = list(tags)
        if self.cfg.n_tags != len(self.tags):
            raise ParameterError(f"model n_tags={self.cfg.n_tags} but {len(self.tags)} tags given")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.extra = dict(extra or {})
        self.console = console or Console()
        torch.set_num_threads(int(params.threads))
        _seed_all(params.seed)
        self.model = ShortChunkCNN(self.cfg)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        else:
            self.model.set_normalization(*mel_statistics(train_set, seed=params.seed))
        if params.channels_last:
            self.model.to(memory_format=torch.channels_last)
        native_bf16 = _cpu_has_bf16(torch)
        #: the precision the steps run in: params.precision, with "auto" resolved for this CPU
        self.precision = ("bf16" if native_bf16 else "fp32") if params.precision == "auto" else params.precision
        if params.precision == "auto":
            self.console.print(f"precision = 'auto': {self.precision} (this CPU "
                               f"{'has' if native_bf16 else 'has no'} native bfloat16)")
        elif self.precision == "bf16" and not native_bf16:
            self.console.print("[yellow]precision = 'bf16' on a CPU without AMX or AVX-512 BF16: torch emulates "
                               "bfloat16 and training will be about ten times slower than with 'fp32' "
                               "(precision = 'auto' chooses for the CPU)[/yellow]")
        self.sampler = WindowSampler(train_set, self.cfg.window_frames, self.cfg.lookahead_frames, params.balance,
                                     params.onset_fraction, train_set.frames_in(params.onset_ms),
                                     starts=params.stream_starts)
        self.steps_per_epoch = max(1, params.windows_per_epoch // params.batch_size)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        self.total_steps = self.steps_per_epoch * params.epochs
        self.global_step = 0
        self.rng = np.random.default_rng(params.seed)
        self.epoch = 0
        self.history: list[dict] = []
        self.best_score = -math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.elapsed_s = 0.0
        vt = val_set.target_frames(self.cfg.window_frames, self.cfg.lookahead_frames, params.val_stride,
                                   starts=params.stream_starts)
        if len(vt) == 0:
            raise ParameterError("the validation split has no clip long enough for one window")
        if len(vt) > params.max_val_windows:
            vt = vt[np.linspace(0, len(vt) - 1, params.max_val_windows).astype(np.int64)]
        self.val_targets = vt

    # -- checkpoints
    def state(self) -> dict:
        """Everything needed to resume or export."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.cfg.to_dict(),
            "state_dict": self.model.state_dict(),
            "tags": self.tags,
            "optimizer": self.opt.state_dict(),
            "global_step": self.global_step,
            "epoch": self.epoch,
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "elapsed_s": self.elapsed_s,
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.torch.get_rng_state(),
            "train_params": self.params.__dict__,
            "data_frames": self._data_frames(),
            "data_clips": self._data_clips(),
            **self.extra,
        }

    def _data_frames(self) -> dict:
        return {"train": [int(self.train_set.mel.shape[0]), int(self.train_set.n_clips)],
                "val": [int(self.val_set.mel.shape[0]), int(self.val_set.n_clips)]}

    def _data_clips(self) -> dict:
        """A digest of each split's clip names: a validation split swapped for the test split of the same size
        has the same frame counts, not the same clips."""
        import hashlib

        return {split: hashlib.sha256("\n".join(fs.names).encode()).hexdigest()[:16]
                for split, fs in (("train", self.train_set), ("val", self.val_set))}

    def _resume_conflicts(self, ck: dict) -> list[str]:
        """What a checkpoint's run and this one disagree on, beyond the settings a resume may change."""
        out = _train_param_conflicts(ck, self.params)
        frames, now_frames = ck.get("data_frames"), self._data_frames()
        if frames is not None:
            for split in ("train", "val"):
                old, new = frames.get(split), now_frames[split]
                if old != new:
                    out.append(f"the {split} split ({old[0]} frames in {old[1]} clips -> {new[0]} in {new[1]})"
                               if old else f"the {split} split")
        clips, now_clips = ck.get("data_clips") or {}, self._data_clips()
        out.extend(f"the {split} split's clips" for split in ("train", "val")
                   if split in clips and clips[split] != now_clips[split]
                   and not any(o.startswith(f"the {split} split") for o in out))
        if "provenance" in ck and "provenance" in self.extra and ck["provenance"] != self.extra["provenance"]:
            out.append("the data's provenance (another build of the data)")
        return out + _frontend_conflicts(ck, self.extra.get("frontend"))

    def save(self, name: str) -> Path:
        from ..model.bundle_write import write_atomic

        path = self.out_dir / name
        state = self.state()
        write_atomic(path, lambda f: self.torch.save(state, f))
        return path

    def resume(self, path=None) -> bool:
        """Load ``last.pt`` (or ``path``); returns False when there is none."""
        path = Path(path) if path else self.out_dir / "last.pt"
        if not path.is_file():
            return False
        ck = load_checkpoint(path)
        if ck["model_config"] != self.cfg.to_dict():
            diff = _key_differences("", ck["model_config"], self.cfg.to_dict())
            raise ConfigError(f"{path}: [model] differs from the checkpoint's ({'; '.join(diff)}); cannot resume: "
                              f"restore it or start a new run in another output.dir")
        conflicts = self._resume_conflicts(ck)
        if conflicts:
            raise _resume_refused(path, conflicts)
        self.model.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict(ck["optimizer"])
        self.global_step = ck["global_step"]
        self.epoch = ck["epoch"]
        self.history = ck["history"]
        self.best_score, self.best_epoch = ck["best_score"], ck["best_epoch"]
        self.bad_epochs = ck["bad_epochs"]
        self.elapsed_s = ck["elapsed_s"]
        self.rng.bit_generator.state = ck["rng"]
        self.torch.set_rng_state(ck["torch_rng"])
        return True

    # -- evaluation
    def predict(self, fs: FeatureSet, targets: np.ndarray, batch: int = 512, precision: str = "fp32") -> np.ndarray:
        """Probabilities (n, n_tags) of the current model for target frames of a FeatureSet.

        ``precision="bf16"`` runs the forward pass under bfloat16 autocast (the per-epoch validation
        of a bf16 run); thresholds and reports use the float32 default, the exported graph's arithmetic.
        """
        torch = self.torch
        self.model.eval()
        out = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for i in range(0, len(targets), batch):
                t = targets[i:i + batch]
                x = torch.from_numpy(windows(fs, t, self.cfg.window_frames, self.cfg.lookahead_frames,
                                             self.params.stream_starts))
                out.append(torch.sigmoid(self.model.logits_and_embedding(x)[0].float()).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.tags)), np.float32)

    def validate(self) -> dict:
        from .evaluate import tag_metrics

        probs = self.predict(self.val_set, self.val_targets, precision=self.precision)
        if not np.all(np.isfinite(probs)):
            self._diverged(f"the network's outputs became NaN after step {self.global_step}")
        y = np.asarray(self.val_set.labels[self.val_targets], np.float64)
        p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        m = tag_metrics(y, probs, self.tags)
        return {"val_loss": loss, "val_roc_auc": m["macro"]["roc_auc"], "val_pr_auc": m["macro"]["pr_auc"]}

    # -- the loop
    def _diverged(self, what: str):
        raise ParameterError(f"training diverged: {what} (epoch {self.epoch + 1}, lr {self.params.lr:g}); "
                             f"train again with a lower learning rate")

    def progress_fraction(self, running_s: float = 0.0) -> float:
        """Fraction of training done: the larger of steps done / total steps and time used / time budget."""
        return max(self.global_step / self.total_steps,
                   (self.elapsed_s + running_s) / (self.params.time_budget_min * 60.0))

    def learning_rate(self, progress: float) -> float:
        """Linear warm-up over the first 5%, then cosine decay to 1% of ``lr`` at progress 1."""
        lr = self.params.lr
        warm = min(1.0, progress / 0.05) if progress < 0.05 else 1.0
        return lr * max(0.01, warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    def train_epoch(self, progress, task, t_start: float) -> tuple[float, bool]:
        """One epoch (or until the schedule is complete). Returns (mean loss, finished)."""
        torch = self.torch
        F = torch.nn.functional
        self.model.train()
        bs = self.params.batch_size
        total, steps, finished = 0.0, 0, False
        for _ in range(self.steps_per_epoch):
            frac = self.progress_fraction(time.perf_counter() - t_start)
            if frac >= 1.0:
                finished = True
                break
            lr = self.learning_rate(frac)
            for g in self.opt.param_groups:
                g["lr"] = lr
            t1 = self.sampler.draw(self.rng, bs)
            x, y = (torch.from_numpy(a) for a in self.sampler.batch(t1))
            partner = None
            if self.params.mixup > 0:
                partner = tuple(torch.from_numpy(a) for a in self.sampler.batch(self.sampler.draw(self.rng, bs)))
            x, y = augment(x, y, self.rng, self.params, partner)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                logits, _ = self.model.logits_and_embedding(x)
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            value = loss.item()
            if not math.isfinite(value):
                self._diverged(f"the training loss became {value} at step {self.global_step + 1}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.global_step += 1
            steps += 1
            total += value
            progress.update(task, advance=1, loss=total / steps)
        return total / max(1, steps), finished or self.global_step >= self.total_steps

    def fit(self, resume: bool = False) -> dict:
        """Train until ``epochs``, early stopping, or the time budget.

        Returns
        -------
        dict
            ``{"best": Path to best.pt, "history": [...], "stopped": reason}``.
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        if resume and self.resume():
            self.console.print(f"resumed from {self.out_dir / 'last.pt'} after epoch {self.epoch}")
        p = self.params
        stopped = "epochs"
        n_params = sum(x.numel() for x in self.model.parameters())
        self.console.print(f"training {n_params} parameters on {len(self.sampler.targets)} windows "
                           f"({self.steps_per_epoch} steps x {p.batch_size} per epoch), "
                           f"validating on {len(self.val_targets)}")
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self.console, transient=True) as progress:
            while self.epoch < p.epochs and self.global_step < self.total_steps:
                if self.bad_epochs >= p.patience:
                    stopped = "early stopping"
                    break
                if self.progress_fraction() >= 1.0:
                    stopped = f"time budget ({p.time_budget_min:g} min)"
                    break
                t0 = time.perf_counter()
                task = progress.add_task(f"epoch {self.epoch + 1}/{p.epochs}", total=self.steps_per_epoch, loss=0.0)
                train_loss, finished = self.train_epoch(progress, task, t0)
                progress.remove_task(task)
                lr = self.opt.param_groups[0]["lr"]
                metrics = self.validate()
                self.epoch += 1
                dt = time.perf_counter() - t0
                self.elapsed_s += dt
                rec = {"epoch": self.epoch, "train_loss": train_loss, **metrics, "seconds": dt, "lr": lr,
                       "step": self.global_step, "precision": self.precision}
                self.history.append(rec)
                score = metrics["val_pr_auc"] if metrics["val_pr_auc"] is not None else -metrics["val_loss"]
                improved = score > self.best_score
                if improved:
                    self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
                else:
                    self.bad_epochs += 1
                # best.pt first: a run killed between the two resumes from the last.pt before and repeats
                # this epoch (last.pt first left a last.pt whose best epoch best.pt did not hold)
                if improved:
                    self.save("best.pt")
                self.save("last.pt")
                self._write_history()
                self.console.print(
                    f"epoch {self.epoch:3d}  train {train_loss:.4f}  val {metrics['val_loss']:.4f}  "
                    f"ROC-AUC {_fmt(metrics['val_roc_auc'])}  PR-AUC {_fmt(metrics['val_pr_auc'])}  "
                    f"lr {lr:.2e}  {dt:5.0f}s{'  *' if improved else ''}")
                if finished and self.global_step < self.total_steps:
                    stopped = f"time budget ({p.time_budget_min:g} min)"
                    break
        self.console.print(f"stopped: {stopped}; best epoch {self.best_epoch} (score {self.best_score:.4f}), "
                           f"{self.elapsed_s / 60:.1f} min")
        return {"best": self.out_dir / "best.pt", "history": self.history, "stopped": stopped}

    def _write_history(self):
        from ..model.bundle_write import write_atomic

        text = json.dumps(self.history, indent=1).encode()
        write_atomic(self.out_dir / "history.json", lambda f: f.write(text))
        try:
            plot_history(self.history, self.out_dir / "curves.png")
        except Exception as exc:  # a plotting problem must not stop training
            from rich.markup import escape

            self.console.print(f"[yellow]could not plot curves: {escape(str(exc))}[/]")  # "[train]" is text


def plot_history(history: list[dict], path) -> Path:
    """Loss curves (train/val) and validation AUCs per epoch, saved as PNG."""
    require("matplotlib", extra="train")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train (augmented)")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    a1.set_xlabel("epoch")
    a1.set_ylabel("binary cross-entropy")
    a1.legend()
    a2.plot(ep, [np.nan if h["val_roc_auc"] is None else h["val_roc_auc"] for h in history], "o-",
            label="macro ROC-AUC")
    a2.plot(ep, [np.nan if h["val_pr_auc"] is None else h["val_pr_auc"] for h in history], "o-",
            label="macro PR-AUC")
    a2.set_xlabel("epoch")
    a2.set_ylim(top=1.0)
    a2.legend()
    fig.tight_layout()
    from ..model.bundle_write import write_atomic

    try:  # through a temporary file: a run stopped while it is written leaves the earlier plot
        write_atomic(Path(path), lambda f: fig.savefig(f, format="png", dpi=90))
    finally:
        plt.close(fig)
    return Path(path)


def load_checkpoint(path) -> dict:
    """Load a training checkpoint (weights-only unpickling); raises ParameterError when invalid."""
    torch = require("torch", extra="train")
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ParameterError(f"checkpoint {path} not found") from exc
    except Exception as exc:  # torch's message spans lines and suggests weights_only=False (unsafe): not shown
        raise ParameterError(f"{path}: not a readable training checkpoint (a file written by rtclassify train; "
                             f"torch could not load it: {type(exc).__name__})") from exc
    if not isinstance(ck, dict) or not str(ck.get("format", "")).startswith("rtclassify-checkpoint"):
        raise ParameterError(f"{path}: not an rtclassify training checkpoint")
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise ParameterError(f"{path}: a checkpoint of another format ({ck.get('format')!r}; this version reads "
                             f"{CHECKPOINT_FORMAT!r})")
    for key in ("model_config", "state_dict"):
        if not isinstance(ck.get(key), dict):
            raise ParameterError(f"{path}: the checkpoint has no {key}")
    return ck


def quiet_clips(fs: FeatureSet) -> np.ndarray:
    """Per clip of a FeatureSet: True where every tag is off in every frame (noise, ambiences, silence)."""
    on = np.asarray(fs.labels).any(axis=1)
    cum = np.concatenate([[0], np.cumsum(on, dtype=np.int64)])
    offsets = np.asarray(fs.offsets, np.int64)
    return (cum[offsets[1:]] - cum[offsets[:-1]]) == 0


def finalize_checkpoint(trainer: Trainer, best_path: Path) -> Path:
    """Choose thresholds on validation with the best weights and write ``model.pt`` next to it."""
    from .evaluate import MIN_QUIET_FRAMES, choose_thresholds, hysteresis, tag_metrics

    ck = load_checkpoint(best_path)
    trainer.model.load_state_dict(ck["state_dict"])
    probs = trainer.predict(trainer.val_set, trainer.val_targets)
    y = np.asarray(trainer.val_set.labels[trainer.val_targets])
    clip = clip_index(trainer.val_set.offsets, trainer.val_targets)
    floors: dict = {}
    th = choose_thresholds(y, probs, trainer.tags, off_ratio=trainer.params.off_ratio,
                           quiet_false_rate=trainer.params.quiet_false_rate,
                           quiet=quiet_clips(trainer.val_set)[clip], report=floors)
    raised = {t: v for t, v in floors.items() if isinstance(v, dict)}
    if trainer.params.quiet_false_rate > 0:
        n_quiet = floors["quiet_frames"]
        if n_quiet < MIN_QUIET_FRAMES:
            said = f"not applied: {n_quiet} validation frames of clips with every tag off, {MIN_QUIET_FRAMES} needed"
        elif raised:
            said = "raised " + ", ".join(
                f"{t} {v['f1_on']:.3f} -> {v['on']:.3f}"
                + ("" if v["met"] else f" (its floor {v['quiet_floor']:.3f} is over the cap)")
                for t, v in raised.items())
        else:
            said = "raised no threshold"
        trainer.console.print(f"quiet-frame floor ({n_quiet} validation frames of clips with every tag off, at most "
                              f"{trainer.params.quiet_false_rate:g} of them over a threshold): {said}")
    on = np.array([th[t]["on"] for t in trainer.tags])
    off = np.array([th[t]["off"] for t in trainer.tags])
    active = np.zeros(probs.shape, bool)
    for c in np.unique(clip):
        sel = clip == c
        active[sel] = hysteresis(probs[sel], on, off)
    m = tag_metrics(y, probs, trainer.tags, active=active)
    final = {k: ck[k] for k in ck if k not in ("optimizer", "rng", "torch_rng")}
    final["thresholds"] = th
    # the weights are best.pt's (best_epoch says which epoch); the record is the whole run's: best.pt stops at
    # its epoch, before the epochs that came after it and before a --resume that changed the settings
    final.update(trainer.extra)
    final.update(history=list(trainer.history), epoch=trainer.epoch, elapsed_s=trainer.elapsed_s,
                 train_params=dict(trainer.params.__dict__))
    if trainer.params.quiet_false_rate > 0:
        m["quiet_floor"] = {"quiet_false_rate": trainer.params.quiet_false_rate, **floors}
    final.setdefault("metrics", {})["validation"] = m
    from ..model.bundle_write import write_atomic

    out = best_path.parent / "model.pt"
    write_atomic(out, lambda f: trainer.torch.save(final, f))
    return out


def _bundle_checkpoint(path: Path) -> tuple[str | None, str | None]:
    """The training checkpoint an existing bundle's model.json names (folder or .zip) and its sha256, each None
    when not given (no bundle there, an unreadable one, or one that names none)."""
    import zipfile

    try:
        if path.is_dir():
            text = (path / "model.json").read_text()
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == "model.json"]
                text = z.read(names[0]).decode() if names else ""
        else:
            return None, None
        training = json.loads(text).get("training", {})
        ck, sha = training.get("checkpoint"), training.get("checkpoint_sha256")
    except (OSError, ValueError, AttributeError, KeyError, zipfile.BadZipFile):
        return None, None
    return (ck if isinstance(ck, str) else None), (sha if isinstance(sha, str) else None)


def check_outputs(cfg: RunConfig, resume: bool, export: bool, console, force: bool | None = None) -> None:
    """The run folder and the bundle path, checked before any work (features take minutes).

    Refuses a run folder that is a file, or that holds another run's checkpoints when not resuming (they
    would be replaced); says when there is nothing to resume and when the bundle written is the one the
    package ships. A bundle already at [output] bundle is replaced when it is the package's (the recipe's
    own path) or this run's (its model.json names this run's model.pt, by path or sha256), or with ``force``
    True or None (the Python API); ``force=False`` (the command without ``--force``) refuses any other. The
    folder is made by :func:`run_training` once the data are checked too, so that a failed check leaves no
    empty folder.
    """
    from ..model.bundle import default_bundle_path
    from ..model.bundle_write import check_bundle_out

    run_dir = Path(cfg.output["dir"])
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{cfg.source}: [output] dir {run_dir} exists and is not a folder")
    last = run_dir / "last.pt"
    if resume and not last.is_file():
        console.print(f"[yellow]--resume: no checkpoint in {run_dir}: starting a new run[/yellow]")
    elif not resume and (last.is_file() or (run_dir / "model.pt").is_file()):
        raise ConfigError(f"{cfg.source}: [output] dir {run_dir} holds a training run (last.pt/model.pt); "
                          f"--resume continues it, or give another output.dir (--set 'output.dir=\"...\"') or "
                          f"remove that run")
    if export:
        shipped = default_bundle_path()
        bundle = Path(os.path.expanduser(str(cfg.output["bundle"])))
        try:
            same = bundle.resolve() == shipped.resolve()
        except OSError:
            same = False
        ours = False
        if not same and force is False:
            # this run's own: its model.pt by content (the path in model.json is relative to where export ran)
            ck, sha = _bundle_checkpoint(bundle)
            model_pt = run_dir / "model.pt"
            try:
                if sha is not None and model_pt.is_file():
                    import hashlib

                    ours = hashlib.sha256(model_pt.read_bytes()).hexdigest() == sha
                ours = ours or (ck is not None and Path(ck).resolve() == model_pt.resolve())
            except OSError:
                ours = False
        try:
            check_bundle_out(cfg.output["bundle"], "[output] bundle", force=True if (same or ours) else force)
        except ParameterError as exc:
            raise ConfigError(f"{cfg.source}: {exc}") from None
        if same:
            console.print(f"[yellow]this run replaces the package's shipped default bundle ({shipped}) when it "
                          f"ends[/yellow]")


def _evaluate_test(cfg: RunConfig, bundle: Path, test: str, out: dict, console) -> None:
    """Evaluate a bundle folder on the run's test split: report and plots in ``<run>/eval``, metrics into the bundle."""
    from ..model.bundle_write import write_json_atomic
    from .evaluate import evaluate_split, plot_split_report
    from .export import update_bundle_metrics

    report, curves = evaluate_split(bundle, Path(cfg.data["dir"]), test, cfg.data["cache"], threads=cfg.train.threads)
    rep_dir = Path(cfg.output["dir"]) / "eval"
    rep_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(rep_dir / f"{test}.json", report)
    plot_split_report(report, curves, TAGS, rep_dir)
    update_bundle_metrics(bundle, {"test": report})
    out["test"] = report
    m = report["macro"]
    console.print(f"test ({test}): macro ROC-AUC {_fmt(m['roc_auc'])}  PR-AUC {_fmt(m['pr_auc'])}  F1 {_fmt(m['f1'])}")


def run_training(cfg: RunConfig, resume: bool = False, export: bool = True, evaluate_test: bool = True,
                 console=None, force: bool | None = None) -> dict:
    """The whole ``rtclassify train`` recipe for a :class:`RunConfig`.

    ``force``: what a bundle already at [output] bundle gets (see :func:`check_outputs`).

    Returns
    -------
    dict
        ``checkpoint`` (model.pt), ``bundle`` (or None), ``history``, ``stopped``, ``test`` (report or None).
    """
    from rich.console import Console

    console = console or Console()
    t0 = time.perf_counter()
    from ..model.bundle_write import make_output_folder
    from .data import load_split

    check_outputs(cfg, resume, export, console, force=force)
    data_dir = Path(cfg.data["dir"])
    # a folder that is not a built data set, or one without the training or validation split, is said before
    # the run folder is made (the count of a split's records: no audio is read)
    for key in ("train", "val"):
        if load_split(data_dir, cfg.data[key])[1] == 0:
            raise ConfigError(f"{cfg.source}: [data] {key}: the data dir {data_dir} has no {cfg.data[key]!r} split "
                              f"(a build with --splits that left it out?); build it (rtclassify data build ... "
                              f"--splits {cfg.data[key]})")
    test = cfg.data.get("test") if export and evaluate_test else None
    if test:  # the test evaluation comes after the training: a split that is not there is said now
        if load_split(data_dir, test)[1] == 0:  # the count of the split's records: no audio is read
            raise ConfigError(f"{cfg.source}: [data] test: the data dir {data_dir} has no {test!r} split (a build "
                              f"with --splits that left it out?); train without the test evaluation (--no-test, or "
                              f"--set 'data.test=\"\"'), or build the split (rtclassify data build ... --splits {test})")
    fe = dict(cfg.frontend)
    last = Path(cfg.output["dir"]) / "last.pt"
    if resume and last.is_file():
        # the checkpoint and the settings are checked before the features are made (minutes the first time);
        # Trainer.resume checks them again with the data
        conflicts = resume_setting_conflicts(load_checkpoint(last), cfg.model, cfg.train, fe)
        if conflicts:
            raise _resume_refused(last, conflicts)
    # the manifest (its recipe version, the sources the bundle will name) before the features: minutes on a big set
    data_prov = data_provenance(data_dir)
    make_output_folder(cfg.output["dir"], "[output] dir")
    train_set = split_features(data_dir, cfg.data["train"], TAGS, fe, cfg.data["cache"])
    val_set = split_features(data_dir, cfg.data["val"], TAGS, fe, cfg.data["cache"])
    console.print(f"features ready in {time.perf_counter() - t0:.0f}s: train {train_set.mel.shape[0]} frames "
                  f"({train_set.n_clips} clips), val {val_set.mel.shape[0]} frames ({val_set.n_clips} clips)")
    extra = {
        "frontend": fe,
        "hop_frames": cfg.bundle["hop_frames"],
        "decoder": cfg.bundle["decoder"],
        "name": cfg.output["name"],
        "config": cfg.raw,
        "provenance": data_prov,
    }
    trainer = Trainer(cfg.model, cfg.train, train_set, val_set, cfg.output["dir"], TAGS, extra, console)
    result = trainer.fit(resume=resume)
    model_pt = finalize_checkpoint(trainer, result["best"])
    console.print(f"checkpoint with thresholds: {model_pt}")
    out = {"checkpoint": model_pt, "bundle": None, "history": result["history"], "stopped": result["stopped"],
           "test": None}
    if export:
        from ..model.bundle_write import is_zip_path, write_bundle
        from .export import export_bundle

        target = cfg.output["bundle"]
        if test and is_zip_path(target):
            # the test metrics go into model.json, which a zip cannot take in place: the zip is packed from an
            # evaluated folder in the run folder (removed after), and packed without them if the evaluation fails
            with tempfile.TemporaryDirectory(prefix=".bundle-", dir=cfg.output["dir"]) as tmp:
                via = export_bundle(model_pt, Path(tmp) / "bundle")
                try:
                    _evaluate_test(cfg, via, test, out, console)
                finally:
                    out["bundle"] = write_bundle(target, {f.name: f for f in sorted(via.iterdir())}, "[output] bundle")
                    console.print(f"bundle: {out['bundle']}" + ("" if out["test"] else " (without test metrics)"))
        else:
            out["bundle"] = export_bundle(model_pt, target)
            console.print(f"bundle: {out['bundle']}")
            if test:
                _evaluate_test(cfg, out["bundle"], test, out, console)
    return out
