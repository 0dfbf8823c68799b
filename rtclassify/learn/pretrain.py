"""Contrastive self-supervised pretraining of the short-chunk CNN encoder (SimCLR / CLMR style; ``train`` extra).

Unlabelled audio in, an encoder out. Each training example is a chunk of
:data:`CHUNK_SECONDS` of audio; two *views* of it are made by independent
random augmentations of the waveform (CLMR's chain):

=============  ======================================================================
random crop    each view is a window-long crop (``(W-1)*hop + n_fft`` samples, 1.04 s)
               at a random offset inside the chunk, so the two views overlap partly
polarity       inversion with p = 0.5 (kept from CLMR; invisible to a power spectrum,
               so a no-op for this log-mel encoder)
noise          white or pink noise at 5-40 dB SNR (p = 0.5)
gain           -20..0 dB (always)
filters        high-pass 40-600 Hz, low-pass 1.5-7 kHz or a +-9 dB peaking band (p = 0.6)
delay          one echo, 40-300 ms, gain 0.2-0.6 (p = 0.3)
pitch shift    resampling by -3..+3 semitones, length kept (p = 0.4)
reverb         exponentially decaying noise, RT60 0.2-1.5 s, 10-50 % wet (p = 0.4)
=============  ======================================================================

The views go through the native log-mel frontend (the bundle's, so the
encoder sees what it will see live), then the CNN
(:class:`rtclassify.train.model.ShortChunkCNN`, same configuration as the
base bundle, its embedding layer included) and a projection MLP
(``D -> D -> 64``). The loss is InfoNCE / NT-Xent: for each view, the other
view of its chunk is the positive and the other ``2B - 2`` views of the batch
are negatives, on cosine similarities divided by a temperature.

``rtclassify pretrain --data FOLDER --out DIR`` writes ``DIR/encoder.pt`` and
``DIR/pretrain_history.json``; with ``--labelled DATA_DIR`` (an ``rtclassify
data build`` folder) it then trains the usual supervised head (the whole
network, the training loop of the default model, starting from the pretrained
encoder) into the same folder (its checkpoints, ``history.json``) and exports
``DIR/bundle``. A folder that already holds such a run is replaced only with
``--force`` (:func:`check_pretrain_out`, before any work).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio.files import AUDIO_EXTENSIONS, audio_files_under
from ..errors import ParameterError, require
from ..train import MAX_EPOCHS, MAX_LR, MAX_MINUTES, MAX_PRETRAIN_HOURS, MAX_SEED, MAX_TEMPERATURE, MIN_TEMPERATURE

__all__ = ["PretrainParams", "AudioPool", "Augmenter", "pretrain", "load_encoder", "ssl_encoder", "nt_xent",
           "check_supervised_step", "check_pretrain_out", "train_supervised_head", "toml_string", "ENCODER_FORMAT",
           "AUDIO_EXTENSIONS", "HISTORY_NAME", "RUN_FILES", "remove_stale_run_files"]

ENCODER_FORMAT = "rtclassify-ssl-encoder-1"
CHUNK_SECONDS = 1.5
#: the pretraining loss history in the output folder (``history.json`` there is the supervised step's)
HISTORY_NAME = "pretrain_history.json"
#: the files only a pretraining run writes (the rest of :data:`RUN_FILES` are its supervised step's)
PRETRAIN_FILES = ("encoder.pt", HISTORY_NAME)
#: what a pretraining run leaves in its folder (with ``--labelled``, the supervised run's files and bundle too;
#: ``history.json`` also held the pretraining history before it had a name of its own)
RUN_FILES = PRETRAIN_FILES + ("last.pt", "best.pt", "model.pt", "history.json", "curves.png", "bundle")


@dataclass
class PretrainParams:
    """Pretraining settings.

    Attributes
    ----------
    minutes : float
        Budget of the optimization in minutes of this process's CPU time (not
        wall-clock time, so a run on a shared machine does the same work);
        the learning-rate schedule follows it.
    max_steps : int
        Most optimizer steps (0: no limit besides ``minutes``).
    epochs : float
        Most passes over the loaded audio, counted in chunks of
        :data:`CHUNK_SECONDS` (0: no limit besides ``minutes``).
    batch_size : int
        Chunks per batch (each gives two views).
    lr : float
        Peak AdamW learning rate (warm-up over 5 %, cosine decay).
    weight_decay : float
    temperature : float
        NT-Xent temperature.
    projection_dim : int
    max_hours : float
        Most audio loaded from the folder (files drawn at random beyond it).
    seed : int
    threads : int
        torch intra-op threads.
    """

    minutes: float = 10.0
    max_steps: int = 0
    epochs: float = 0.0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    projection_dim: int = 64
    max_hours: float = 1.0
    seed: int = 0
    threads: int = 1

    def validate(self) -> "PretrainParams":
        for name in ("minutes", "lr", "temperature", "max_hours"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be a positive number (got {v!r})")
        for name, hi in (("minutes", MAX_MINUTES), ("max_hours", MAX_PRETRAIN_HOURS)):
            if getattr(self, name) > hi:
                raise ParameterError(f"{name} must be at most {hi:g} (got {getattr(self, name)!r})")
        if not (isinstance(self.epochs, (int, float)) and math.isfinite(self.epochs)
                and 0 <= self.epochs <= MAX_EPOCHS):
            raise ParameterError(f"epochs must be a number from 0 to {MAX_EPOCHS} (got {self.epochs!r})")
        if not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE:
            # below it the similarities over the temperature overflow at once; SimCLR's range is 0.05-1
            raise ParameterError(f"temperature must be {MIN_TEMPERATURE:g}-{MAX_TEMPERATURE:g} (got {self.temperature!r})")
        if self.lr > MAX_LR:
            raise ParameterError(f"lr must be at most {MAX_LR:g} (got {self.lr!r})")
        for name, lo in (("batch_size", 2), ("projection_dim", 1), ("threads", 1), ("max_steps", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ParameterError(f"{name} must be an integer >= {lo} (got {v!r})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or not 0 <= self.seed <= MAX_SEED:
            raise ParameterError(f"seed must be an integer from 0 to {MAX_SEED} (got {self.seed!r})")
        return self


# ------------------------------------------------------------------------------------------------ data
def list_audio(folder) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted, by extension; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError(f"--data: {folder} is not a folder")
    files = audio_files_under(folder)
    if not files:
        raise ParameterError(f"--data: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {folder}")
    return files


class AudioPool:
    """Unlabelled audio at the model rate, kept as int16, with a chunk sampler.

    Parameters
    ----------
    files : list of Path
    sample_rate : int
        The model's rate (files are resampled to it).
    max_hours : float
        Files are drawn in a seeded random order until this much audio is loaded.
    seed : int
    """

    def __init__(self, files, sample_rate: int, max_hours: float = 1.0, seed: int = 0):
        from ..audio.files import finite_samples, read_audio
        from ..audio.resample import resample

        self.sample_rate = int(sample_rate)
        order = np.random.default_rng(seed).permutation(len(files))
        budget = int(max_hours * 3600 * sample_rate)
        chunk = int(CHUNK_SECONDS * sample_rate)
        self.clips: list[np.ndarray] = []
        self.names: list[str] = []
        #: file -> NaN or infinite samples replaced by 0 (before resampling, which would spread them)
        self.nonfinite: dict[str, int] = {}
        total = 0
        for i in order:
            x, sr = read_audio(files[i])
            x, bad = finite_samples(x)
            if bad:
                self.nonfinite[str(files[i])] = bad
            if sr != self.sample_rate:
                x = resample(x, sr, self.sample_rate)
            if len(x) < chunk:
                continue
            self.clips.append(np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16))
            self.names.append(str(files[i]))
            total += len(x)
            if total >= budget:
                break
        if not self.clips:
            raise ParameterError(f"--data: no file is at least {CHUNK_SECONDS} s long")
        lengths = np.array([len(c) for c in self.clips], np.float64)
        self._p = (lengths - chunk + 1) / np.sum(lengths - chunk + 1)
        self.seconds = float(total / sample_rate)

    def chunk(self, rng: np.random.Generator, n: int, min_dbfs: float = -55.0, tries: int = 8) -> np.ndarray:
        """A random chunk of ``n`` samples (float32), avoiding near-silent ones when possible."""
        for _ in range(tries):
            c = self.clips[int(rng.choice(len(self.clips), p=self._p))]
            a = int(rng.integers(0, len(c) - n + 1))
            x = c[a:a + n].astype(np.float32) / 32768.0
            if 10 * np.log10(np.mean(x * x) + 1e-20) > min_dbfs:
                return x
        return x


class Augmenter:
    """The view-making chain of the module notes, at one sample rate."""

    def __init__(self, sample_rate: int, view_samples: int):
        self.sr = int(sample_rate)
        self.n = int(view_samples)

    def _noise(self, rng, n):
        if rng.random() < 0.5:
            return rng.standard_normal(n)
        spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
        f = np.arange(n // 2 + 1, dtype=np.float64)
        f[0] = 1.0
        return np.fft.irfft(spec / np.sqrt(f), n)

    def view(self, chunk: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One augmented view (float32, ``view_samples`` long) of a chunk."""
        from scipy import signal

        sr, n = self.sr, self.n
        # pitch shift first (it needs a longer or shorter source crop)
        ratio = 2.0 ** (float(rng.uniform(-3, 3)) / 12.0) if rng.random() < 0.4 else 1.0
        need = min(len(chunk), int(math.ceil(n * ratio)) + 8)
        a = int(rng.integers(0, len(chunk) - need + 1))
        x = chunk[a:a + need].astype(np.float64)
        if ratio != 1.0:
            import soxr

            x = soxr.resample(x, sr * ratio, sr, quality="HQ")
        if len(x) < n:
            x = np.pad(x, (0, n - len(x)))
        x = x[:n]
        if rng.random() < 0.5:
            x = -x
        if rng.random() < 0.6:
            kind = rng.integers(3)
            if kind == 0:
                sos = signal.butter(2, float(rng.uniform(40, 600)), "highpass", fs=sr, output="sos")
            elif kind == 1:
                sos = signal.butter(2, float(rng.uniform(1500, min(7000, sr * 0.45))), "lowpass", fs=sr, output="sos")
            else:
                f0 = float(np.exp(rng.uniform(np.log(150), np.log(min(6000, sr * 0.4)))))
                g = 10 ** (float(rng.uniform(-9, 9)) / 40)
                w0 = 2 * np.pi * f0 / sr
                al = np.sin(w0) / (2 * float(rng.uniform(0.5, 2.0)))
                sos = signal.tf2sos([1 + al * g, -2 * np.cos(w0), 1 - al * g], [1 + al / g, -2 * np.cos(w0), 1 - al / g])
            x = signal.sosfilt(sos, x)
        if rng.random() < 0.3:
            d = int(float(rng.uniform(0.04, 0.3)) * sr)
            if d < n:
                x = x.copy()
                x[d:] += float(rng.uniform(0.2, 0.6)) * x[:-d]
        if rng.random() < 0.4:
            rt60 = float(rng.uniform(0.2, 1.5))
            m = int(rt60 * sr)
            t = np.arange(m) / sr
            ir = rng.standard_normal(m) * np.exp(-6.9 * t / rt60)
            ir /= np.sqrt(np.sum(ir * ir)) + 1e-12
            wet = float(rng.uniform(0.1, 0.5))
            x = (1 - wet) * x + wet * signal.fftconvolve(x, ir)[:n]
        if rng.random() < 0.5:
            p = float(np.mean(x * x))
            if p > 0:
                nz = self._noise(rng, n)
                x = x + nz * np.sqrt(p / (np.mean(nz * nz) + 1e-20) / 10 ** (float(rng.uniform(5, 40)) / 10))
        x = x * 10 ** (float(rng.uniform(-20, 0)) / 20)
        return np.clip(x, -1.0, 1.0).astype(np.float32)


def _mel(fe, x: np.ndarray) -> np.ndarray:
    fe.reset()
    m = fe.push(np.ascontiguousarray(x, np.float32))
    return np.ascontiguousarray(np.asarray(m, np.float32).T)


# ------------------------------------------------------------------------------------------------ model
@contextmanager
def _signals_held():
    """SIGINT and SIGTERM arriving inside the block take effect when it ends (their handlers are swapped for
    ones that note them, then put back and the signal raised again), so that Ctrl-C in an optimizer step does
    not leave the weights half updated. Anywhere but the main thread (where handlers cannot be set) the block
    just runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    before: dict = {}
    try:
        for k in (signal.SIGTERM, signal.SIGINT):  # each put back below once it was swapped, whatever happens
            before[k] = signal.signal(k, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for k, handler in before.items():  # None: a handler that was not set from Python
            signal.signal(k, handler if handler is not None else signal.SIG_DFL)
        # the first raises (SIGTERM's Terminated, Ctrl-C's KeyboardInterrupt); a second one arriving in the
        # same step asked for the same stop
        for k in dict.fromkeys(caught):
            signal.raise_signal(k)


def nt_xent(z1, z2, temperature: float):
    """NT-Xent (InfoNCE) loss of two batches of projections, shape (B, d) each (torch tensors).

    For view ``i`` of the 2B views, the other view of its chunk is the
    positive and the remaining 2B - 2 views are negatives.
    """
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def _projector(dim: int, out: int):
    from torch import nn

    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, out))


def learned_tags(bundle) -> list[str]:
    """The tags ``rtclassify learn`` added to a bundle: heads appended to its graph after the network's own
    output (the last labels), not rows of the network's output layer.

    Raises
    ------
    BundleError
        ``learned_tags`` of model.json does not name the last labels of the bundle.
    """
    from ..errors import BundleError

    rec = bundle.meta.get("learned_tags") or []
    names = [e.get("tag") for e in rec if isinstance(e, dict)] if isinstance(rec, list) else None
    labels = list(bundle.labels)
    if names is None or len(names) != len(rec) or len(names) >= len(labels) or labels[len(labels) - len(names):] != names:
        raise BundleError(f"{bundle.file_label('model.json')}: 'learned_tags' does not name the last labels "
                          f"of the bundle ({', '.join(labels)})")
    return names


def _base_model_config(bundle) -> dict:
    """The base bundle's ShortChunkCNN configuration (model.json ``training.model``), or the defaults.

    ``n_tags`` counts the network's own outputs: the labels less the learned tags (:func:`learned_tags`).
    """
    from ..train.model import ModelConfig

    mc = (bundle.meta.get("training") or {}).get("model")
    if isinstance(mc, dict):
        cfg = ModelConfig.from_dict(dict(mc))
    else:
        cfg = ModelConfig(n_mels=bundle.n_mels, window_frames=bundle.window_frames,
                          lookahead_frames=bundle.lookahead_frames)
    cfg.n_tags = len(bundle.labels) - len(learned_tags(bundle))
    return cfg.to_dict()


def pretrain(data, out_dir, bundle=None, params: PretrainParams | None = None, console=None) -> Path:
    """Contrastive pretraining on a folder of audio; writes ``out_dir/encoder.pt`` and ``pretrain_history.json``.

    Parameters
    ----------
    data : path
        Folder of unlabelled audio files (searched recursively).
    out_dir : path
    bundle : Bundle, optional
        Gives the frontend and the CNN configuration (default: the default bundle).
    params : PretrainParams

    Returns
    -------
    Path
        The encoder checkpoint.
    """
    torch = require("torch", extra="train")
    require("scipy", extra="train")
    from rich.console import Console

    from ..model.bundle import load_bundle
    from ..model.bundle_write import output_folder

    console = console or Console()
    p = (params or PretrainParams()).validate()
    bundle = bundle if bundle is not None else load_bundle(None)
    # an error or Ctrl-C (write_atomic leaves no half-written checkpoint): no empty folder left by this run
    with output_folder(out_dir) as folder:
        return _pretrain_into(torch, data, folder, bundle, p, console)


def _pretrain_into(torch, data, out_dir: Path, bundle, p: PretrainParams, console) -> Path:
    """:func:`pretrain`'s work, into the existing folder ``out_dir``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..model.bundle_write import write_atomic, write_json_atomic
    from ..train.model import ModelConfig, ShortChunkCNN

    torch.set_num_threads(p.threads)
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    files = list_audio(data)
    t_load = time.perf_counter()
    pool = AudioPool(files, bundle.sample_rate, p.max_hours, p.seed)
    for name, n in pool.nonfinite.items():
        console.print(f"note: {name}: {n} NaN or infinite samples replaced by 0")
    console.print(f"pretraining data: {pool.seconds / 3600:.2f} h from {len(pool.clips)} of {len(files)} files "
                  f"({time.perf_counter() - t_load:.0f} s to load)")
    need = p.batch_size * CHUNK_SECONDS
    if pool.seconds < need:
        # the chunks of a batch would overlap: each view's negatives the same sound as its positive
        raise ParameterError(f"--data: {pool.seconds:.1f} s of audio is too little to pretrain with batches of "
                             f"{p.batch_size} chunks of {CHUNK_SECONDS:g} s (the other chunks of a batch are the "
                             f"negatives, so they must be other sound): give {need:g} s or more, or a smaller "
                             f"--batch-size")

    from .. import MelFrontend

    fe = MelFrontend(**bundle.frontend)
    W = bundle.window_frames
    view_n = (W - 1) * bundle.hop_length + bundle.n_fft
    chunk_n = max(view_n + 1, int(CHUNK_SECONDS * bundle.sample_rate))
    aug = Augmenter(bundle.sample_rate, view_n)

    mc = _base_model_config(bundle)
    cfg = ModelConfig.from_dict(mc)
    model = ShortChunkCNN(cfg)
    # per-mel normalization from unaugmented windows of the data
    sample = np.stack([_mel(fe, pool.chunk(rng, view_n)) for _ in range(256)])  # (256, n_mels, W)
    mean = sample.mean(axis=(0, 2))
    std = np.maximum(sample.std(axis=(0, 2)), 1.0)
    model.set_normalization(mean, std)
    proj = _projector(cfg.embedding_dim, p.projection_dim)
    params_all = list(model.blocks.parameters()) + list(model.embed.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params_all, lr=p.lr, weight_decay=p.weight_decay)
    budget = p.minutes * 60.0
    max_steps = p.max_steps
    if p.epochs:
        by_epochs = max(1, int(p.epochs * pool.seconds / CHUNK_SECONDS / p.batch_size))
        max_steps = min(max_steps, by_epochs) if max_steps else by_epochs
    history = []
    step = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    running = None

    def save(interrupted: bool) -> Path:
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        ck = {
            "format": ENCODER_FORMAT,
            "model_config": cfg.to_dict(),
            "state_dict": model.state_dict(),
            "projector": proj.state_dict(),
            "frontend": dict(bundle.frontend),
            "params": asdict(p),
            "history": history,
            "steps": step,
            "interrupted": interrupted,
            "seconds": dt,
            "cpu_seconds": cpu,
            "data": {"folder": str(Path(data).resolve()), "files": len(pool.clips), "hours": pool.seconds / 3600},
            "augmentations": ["random crop", "polarity", "noise", "gain", "filters", "delay", "pitch shift", "reverb"],
        }
        path = out_dir / "encoder.pt"
        write_atomic(path, lambda f: torch.save(ck, f))
        write_json_atomic(out_dir / HISTORY_NAME, history)
        return path

    model.train()
    proj.train()
    try:
        with Progress(TextColumn("pretraining"), BarColumn(),
                      TextColumn("step {task.fields[step]} loss {task.fields[loss]:.3f}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("pretrain", total=budget, step=0, loss=0.0)
            while True:
                elapsed = time.process_time() - c0
                frac = elapsed / budget
                if max_steps:
                    frac = max(frac, step / max_steps)
                if frac >= 1.0:
                    break
                lr = p.lr * (min(1.0, frac / 0.05) if frac < 0.05 else 0.5 * (1 + math.cos(math.pi * frac)))
                for g in opt.param_groups:
                    g["lr"] = max(lr, p.lr * 0.01)
                v1, v2 = [], []
                for _ in range(p.batch_size):
                    c = pool.chunk(rng, chunk_n)
                    v1.append(_mel(fe, aug.view(c, rng)))
                    v2.append(_mel(fe, aug.view(c, rng)))
                x = torch.from_numpy(np.stack(v1 + v2))
                _, emb = model.logits_and_embedding(x)
                z = proj(emb)
                loss = nt_xent(z[:p.batch_size], z[p.batch_size:], p.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                with _signals_held():  # an interruption never saves weights or counts half an update
                    opt.step()
                    step += 1
                li = float(loss.item())
                if not math.isfinite(li):
                    raise ParameterError(f"pretraining diverged: the loss became {li} at step {step} (lr {p.lr:g}, "
                                         f"temperature {p.temperature:g}); pretrain again with a lower learning rate")
                running = li if running is None else 0.95 * running + 0.05 * li
                if step % 10 == 0 or step == 1:
                    history.append({"step": step, "loss": li, "loss_smoothed": running, "lr": lr,
                                    "seconds": round(time.perf_counter() - t0, 1),
                                    "cpu_seconds": round(time.process_time() - c0, 1)})
                bar.update(task, completed=min(budget, time.process_time() - c0), step=step, loss=running)
    except KeyboardInterrupt:
        # Ctrl-C, SIGTERM: the steps made so far are kept (an encoder marked interrupted), then the command ends
        if step:
            model.eval()
            path = save(interrupted=True)
            console.print(f"interrupted after {step} steps: {path} holds the encoder as it was then")
        raise
    model.eval()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    chance = math.log(2 * p.batch_size - 1)
    console.print(f"pretrained {step} steps in {cpu / 60:.1f} CPU min ({dt / 60:.1f} min wall): NT-Xent {running:.3f} "
                  f"(chance level {chance:.3f})")
    return save(interrupted=False)


def load_encoder(path):
    """Load ``encoder.pt``: the ShortChunkCNN (eval mode) and the checkpoint dict."""
    torch = require("torch", extra="train")
    from ..train.model import ModelConfig, ShortChunkCNN

    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ParameterError(f"encoder {path} not found") from None
    except Exception as exc:
        raise ParameterError(f"{path}: not a readable encoder checkpoint ({exc})") from exc
    if not isinstance(ck, dict) or ck.get("format") != ENCODER_FORMAT:
        raise ParameterError(f"{path}: not an rtclassify self-supervised encoder (format {ENCODER_FORMAT})")
    model = ShortChunkCNN(ModelConfig.from_dict(dict(ck["model_config"])))
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def ssl_encoder(path, name: str = "self-supervised", batch: int = 256):
    """An :class:`~rtclassify.learn.fewshot.Encoder` giving the pretrained encoder's embedding of windows."""
    torch = require("torch", extra="train")
    from .fewshot import Encoder

    model, _ = load_encoder(path)

    def fn(windows):
        out = []
        with torch.no_grad():
            for i in range(0, len(windows), batch):
                out.append(model.logits_and_embedding(torch.from_numpy(np.ascontiguousarray(
                    windows[i:i + batch], np.float32)))[1].numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.embedding_dim), np.float32)

    return Encoder(name, fn)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string, for a ``section.key=value`` override: quotes, backslashes and control
    characters escaped (JSON's escapes are TOML's, and TOML wants DEL escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def check_pretrain_out(out_dir, force: bool | None = None, supervised=None) -> Path:
    """Refuse ``pretrain``'s outputs that cannot be written, before any work.

    Parameters
    ----------
    out_dir : path
        The ``--out`` folder.
    force : bool or None
        ``False`` (the command without ``--force``) refuses a folder that holds a pretraining run (any of
        :data:`RUN_FILES`); ``True`` or ``None`` (the Python API) lets the run replace it. An ``--out`` that
        holds a supervised training run's files without a pretraining run's (:data:`PRETRAIN_FILES`) is refused
        either way.
    supervised : RunConfig, optional
        The supervised step's config (:func:`check_supervised_step`): its run folder and bundle are checked too.

    Returns
    -------
    Path
        ``out_dir`` with ``~`` expanded.

    Raises
    ------
    ParameterError
        Naming ``--out`` (or the ``--set`` key that moved an output elsewhere).
    """
    from ..model.bundle_write import check_bundle_out

    out = Path(os.path.expanduser(os.fspath(out_dir)))
    again = "pass --force to replace it, or give another folder"

    def check_run_folder(folder: Path, what: str, own: bool = False) -> None:
        if folder.exists() and not folder.is_dir():
            raise ParameterError(f"{what} {folder}: exists and is not a folder")
        held = [n for n in RUN_FILES if (folder / n).exists()] if folder.is_dir() else []
        checkpoints = any(n in held for n in ("last.pt", "best.pt", "model.pt"))
        if checkpoints and own and not any(n in held for n in PRETRAIN_FILES):
            # checkpoints without an encoder: a supervised training run, which --force must not remove
            raise ParameterError(f"{what} {folder}: holds a training run ({', '.join(held)}), not a pretraining "
                                 "run; give another folder")
        if held and force is False:
            raise ParameterError(f"{what} {folder}: holds a pretraining run ({', '.join(held)}); {again}")

    check_run_folder(out, "--out", own=True)
    if supervised is not None:
        run_dir = Path(supervised.output["dir"])
        if run_dir != out.resolve():
            check_run_folder(run_dir, "--set output.dir")
        bundle = Path(supervised.output["bundle"])
        named = "--out" if bundle == (out / "bundle").resolve() else "--set output.bundle"
        check_bundle_out(bundle, named, force=force, shipped=False)
    return out


def remove_stale_run_files(out_dir, since: float) -> list[str]:
    """Remove the files of :data:`RUN_FILES` in ``out_dir`` that were last written before ``since`` (a
    :func:`time.time`): what an earlier run left that a ``--force`` run did not write over (the checkpoints and
    bundle of an earlier run with ``--labelled`` beside a new encoder). A ``bundle`` folder goes only when it is
    a bundle (it has model.json). Returns the names removed."""
    import shutil

    out = Path(out_dir)
    gone = []
    for name in RUN_FILES:
        f = out / name
        try:
            if f.is_dir() and not f.is_symlink():
                if (f / "model.json").is_file() and (f / "model.json").stat().st_mtime < since:
                    shutil.rmtree(f)
                    gone.append(name)
            elif f.exists() and f.stat().st_mtime < since:
                f.unlink()
                gone.append(name)
        except OSError:
            continue
    return gone


def check_supervised_step(data_dir, out_dir, config_path=None, overrides=None):
    """The supervised step's config (``config_path`` or default.toml, with ``overrides``), its data folder
    checked: cheap, so ``pretrain --labelled`` can refuse a bad folder, config or ``--set`` before pretraining.

    Returns
    -------
    RunConfig

    Raises
    ------
    ParameterError, ConfigError
        The config or an override is invalid, or ``data_dir`` is not a finished ``rtclassify data build`` folder
        with clips in its training and validation splits.
    """
    from ..train.data.build import split_records
    from ..train.trainer import load_config

    cfg_path = Path(config_path) if config_path else Path(__file__).resolve().parent.parent / "train" / "configs" / "default.toml"
    # the paths are values, not TOML text: 'ssl\test' is a backslash and a t, not a tab
    ov = [f"data.dir={toml_string(str(Path(data_dir).resolve()))}",
          f"output.dir={toml_string(str(Path(out_dir).resolve()))}",
          f"output.bundle={toml_string(str((Path(out_dir) / 'bundle').resolve()))}",
          'output.name="rtclassify-ssl"'] + list(overrides or [])
    cfg = load_config(cfg_path, ov)
    d = Path(cfg.data["dir"])
    if not d.is_dir():
        raise ParameterError(f"--labelled: {d} is not a folder (give an rtclassify data build output folder)")
    for split in (cfg.data["train"], cfg.data["val"]):
        if not split_records(d, split):
            raise ParameterError(f"--labelled {d}: the {split!r} split has no clips; rebuild it with rtclassify "
                                 f"data build")
    return cfg


def train_supervised_head(encoder_path, data_dir, out_dir, config_path=None, overrides=None, console=None) -> dict:
    """The usual supervised training (the default model's loop and config), starting from a pretrained encoder.

    The pretrained convolution blocks and embedding layer initialize the
    network; the tag head starts from scratch. Returns what
    :func:`rtclassify.train.trainer.run_training` returns (checkpoint, bundle, test report).
    """
    from rich.console import Console

    from ..train.export import export_bundle
    from ..train.features import DEFAULT_FRONTEND, full_frontend
    from ..train.model import TAGS, ShortChunkCNN
    from ..train.trainer import Trainer, data_provenance, finalize_checkpoint, split_features

    torch = require("torch", extra="train")
    console = console or Console()
    cfg = check_supervised_step(data_dir, out_dir, config_path, overrides)
    check_pretrain_out(out_dir, None, cfg)  # the bundle's path, before the training
    model, ck = load_encoder(encoder_path)
    if ck["model_config"] != {**cfg.model.to_dict(), "n_tags": ck["model_config"]["n_tags"]}:
        console.print("[yellow]the config's \\[model] differs from the encoder's; using the encoder's[/]")
    from ..train.model import ModelConfig

    mcfg = ModelConfig.from_dict({**ck["model_config"], "n_tags": len(TAGS)})
    # the new tag head's initial weights come from torch's generator: seeded, so a seed gives one run
    torch.manual_seed(int(cfg.train.seed))
    init = ShortChunkCNN(mcfg).state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("head."):
            init[k] = v
    fe = full_frontend(ck.get("frontend", {}))  # the frontend the encoder was pretrained on
    if cfg.frontend != DEFAULT_FRONTEND and cfg.frontend != fe:
        console.print(f"[yellow]the config's \\[frontend] differs from the encoder's; using the encoder's "
                      f"(n_fft {fe['n_fft']})[/]")
    train_set = split_features(cfg.data["dir"], cfg.data["train"], TAGS, fe, cfg.data["cache"])
    val_set = split_features(cfg.data["dir"], cfg.data["val"], TAGS, fe, cfg.data["cache"])
    extra = {"frontend": fe, "hop_frames": cfg.bundle["hop_frames"], "decoder": cfg.bundle["decoder"],
             "name": cfg.output["name"], "config": cfg.raw, "provenance": data_provenance(cfg.data["dir"]),
             "pretrained_encoder": str(Path(encoder_path).resolve())}
    trainer = Trainer(mcfg, cfg.train, train_set, val_set, cfg.output["dir"], TAGS, extra, console, init_state=init)
    result = trainer.fit()
    model_pt = finalize_checkpoint(trainer, result["best"])
    bundle = export_bundle(model_pt, cfg.output["bundle"])
    return {"checkpoint": model_pt, "bundle": bundle, "history": result["history"]}
