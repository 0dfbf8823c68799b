"""Fine-tuning the tagger on your own labelled audio: ``rtclassify train --data FOLDER`` (``train`` extra).

Two layouts of ``--data``:

folder per tag
    ``FOLDER/<tag>/*.wav`` (any audio format soundfile reads, searched
    recursively inside each tag folder). A file is labelled with its folder's
    tag wherever it sounds (frames within 40 dB of the file's loudest frame
    and above -70 dBFS, gaps up to 6 frames filled: the data recipe's rule);
    its silent frames are negatives. Files in a folder named ``_none``,
    ``none`` or ``negatives`` (in any case) carry no tag (pure negatives). A
    tag whose files have no sounding frame at all is an error. One file in
    several tag folders (a link or the same real path) carries each of their
    tags. Hidden files and folders (names starting with ``.``) are skipped;
    audio files directly in ``FOLDER`` carry no tag and are left out, with a
    note.
CSV file
    Rows ``file,start,end,tag`` (UTF-8 text; seconds; paths relative to the
    CSV's folder). The first row may be a header: ``file,start,end,tag`` in
    any case, or a row whose start and end cells are names (``t0``, ``begin``);
    a first row with a mistyped number (``1s``) is reported like any other.
    Lines starting with ``#`` and blank lines are skipped anywhere. Frames
    whose centre lies in ``[start, end)`` carry the tag; several rows may
    label one file (multi-label), under any spelling of its path. Every other
    frame of a listed file is a negative; a row tagged ``none``, ``_none`` or
    ``negatives`` lists a file as negatives only. A row that labels no frame
    (it starts after the file's end, or is shorter than a frame step) is an
    error; one that ends past the file's end gets a note.

Tag names (the tag folders' names, the CSV's tags) are checked before any
audio is read: the rule of :func:`rtclassify.learn.bundle_ext.check_tag_name`,
and no two tags that differ only by case. NaN or infinite samples are
replaced by 0, with a note naming the file.

The network starts from the base bundle's weights (its torch weights when the
bundle has ``weights.pt`` or names an existing training checkpoint, else
the ONNX graph's, see :func:`state_from_onnx`), with a new output head for the
user's tags, and is trained by the default model's training loop
(:class:`rtclassify.train.trainer.Trainer`: balanced sampling, mixup, gain and
EQ augmentation, early stopping on validation, checkpoints) with the settings
of ``rtclassify/train/configs/default.toml`` except a smaller learning rate
and budget. Files are split into training and validation files
(``--val-fraction``, at least one file of each tag on each side when a tag has
two files or more, and every tag keeps a training file; 0 holds out none and
validates on the training files). The run's features and checkpoints go to the
folder ``OUT.run`` beside the bundle ``OUT`` (checked with it before any work).
The exported bundle has the user's tags only; to add a tag to the built-in
ones, use ``rtclassify learn``. A base bundle written by
``rtclassify learn`` gives its base network: its learned tags (heads appended
to the graph, on the embedding and mel statistics, which the network's
output layer cannot hold) are left out like its other tags, with a note.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from ..audio.files import AUDIO_EXTENSIONS, AudioFileError, audio_files_under
from ..errors import ParameterError, require
from ..train import MAX_EPOCHS, MAX_LR, MAX_MINUTES, MAX_SEED, MAX_THREADS, MAX_WINDOWS

__all__ = ["read_labelled_data", "state_from_onnx", "base_state", "finetune", "check_settings", "add_arguments",
           "check_config_run", "run", "run_folder", "load_init", "NONE_FOLDERS"]

NONE_FOLDERS = ("_none", "none", "negatives")


# ------------------------------------------------------------------------------------------------ data
def _looks_like_audio(path: Path) -> bool:
    """An audio file by its extension or its first bytes (RIFF/WAVE, FLAC, Ogg, MP3, AIFF)."""
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return (head[:4] in (b"fLaC", b"OggS", b"ID3\x03", b"ID3\x04", b"ID3\x02")
            or (head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE")
            or (head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")))


def _frames(n: int, hop: int, n_fft: int) -> int:
    return 0 if n < n_fft else 1 + (n - n_fft) // hop


def _load(path: Path, frontend: dict, warn) -> np.ndarray:
    """A file at the frontend's rate; NaN and infinite samples are replaced by 0 (before resampling, which would
    spread them) and counted in a note through ``warn`` naming the file, so that labels and features come from
    its finite audio."""
    from ..audio.files import finite_samples, read_audio
    from ..audio.resample import resample

    x, sr = read_audio(path)
    x, bad = finite_samples(x)
    if bad:
        warn(f"{path}: {bad} of {len(x)} samples are NaN or infinite; replaced by 0")
    if sr != int(frontend["sample_rate"]):
        x = resample(x, sr, int(frontend["sample_rate"]))
    return np.asarray(x, np.float32)


def _sounding(x: np.ndarray, frontend: dict, rel_db=40.0, floor_db=-70.0, max_gap=6) -> np.ndarray:
    hop, n_fft = int(frontend["hop_length"]), int(frontend["n_fft"])
    n = _frames(len(x), hop, n_fft)
    if n == 0:
        return np.zeros(0, bool)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    w2 = w * w / np.sum(w * w)
    seg = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n_fft)[::hop][:n]
    db = 10 * np.log10(np.maximum((seg * seg) @ w2, 1e-20))
    on = db > max(float(db.max()) - rel_db, floor_db)
    idx = np.flatnonzero(on)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap + 1:
            on[a:b] = True
    return on


_HEADER = ("file", "start", "end", "tag")
_NUMBER_START = re.compile(r"[+-]?\.?\d")  # a cell that begins like a number


def _is_header(row) -> bool:
    """The first row of a CSV names its columns: ``file,start,end,tag`` in any case, or start and end cells
    that are names, not numbers (``t0``, ``begin``); a cell that starts like a number (``1s``, ``.5x``) is a
    mistyped number in a data row, reported."""
    cells = [c.strip() for c in row]
    if [c.casefold() for c in cells] == list(_HEADER):
        return True
    try:
        float(cells[1]), float(cells[2])
    except ValueError:
        return all(c and not _NUMBER_START.match(c) for c in cells[1:3])
    return False  # numbers (nan and inf among them): data


def _check_tag(tag: str, where: str, place: str, seen: dict) -> None:
    """Check a tag name (:func:`rtclassify.learn.bundle_ext.check_tag_name`) against the tags ``seen`` before
    (name -> where it was first seen), so that two spellings differing only by case are refused; the message
    starts with ``where``. ``place`` says where this tag is, for later messages."""
    from .bundle_ext import check_tag_name

    others = [t for t in seen if t != tag]
    clash = next((t for t in others if t.casefold() == tag.casefold()), None)
    if clash is not None:  # another tag of the same data, not one of a bundle
        raise ParameterError(f"{where}: tag {tag!r} differs from the tag {clash!r} of {seen[clash]} only by case; "
                             f"give them one spelling (or two different names)")
    try:
        check_tag_name(tag, others)
    except ParameterError as exc:
        raise ParameterError(f"{where}: tag {exc}") from None
    seen.setdefault(tag, place)


def read_labelled_data(data, frontend: dict, console=None) -> tuple[list, list]:
    """Read a folder-per-tag tree or a CSV (see the module notes).

    Tag names are checked (:func:`_check_tag`) before any audio is read. NaN
    or infinite samples of a file are replaced by 0 and counted in a note
    on ``console`` (default: standard error) that names the file.

    Returns
    -------
    items : list of (name, audio float32 at the frontend rate, labels uint8 (n_frames, n_tags))
    tags : list of str
        Sorted tag names.

    Raises
    ------
    ParameterError
        Missing folder/CSV, no tag, a bad tag name, a bad CSV row (the message names the file and line, or the
        tag folder).
    """
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True)

    def warn(text):
        console.print(f"[yellow]{escape(text)}[/]")

    data = Path(data)
    hop, n_fft, sr = int(frontend["hop_length"]), int(frontend["n_fft"]), int(frontend["sample_rate"])
    seen: dict = {}
    if data.is_file():
        if _looks_like_audio(data):
            raise ParameterError(f"--data: {data} is an audio file; give a folder of tag folders "
                                 f"(FOLDER/<tag>/*.wav) or a CSV file of file,start,end,tag rows")
        try:
            text = data.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParameterError(f"--data: {data} is not UTF-8 text (byte {exc.start}); expected a CSV file of "
                                 f"file,start,end,tag rows (save it as UTF-8)") from None
        except OSError as exc:
            raise ParameterError(f"--data: cannot read {data} ({exc.strerror or exc})") from None
        try:
            table = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise ParameterError(f"--data: {data} is not a valid CSV file ({exc})") from None
        rows = []
        first = True
        for ln, row in enumerate(table, start=1):
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 4:
                raise ParameterError(f"{data}:{ln}: expected 4 columns file,start,end,tag (got {len(row)})")
            header, first = first and _is_header(row), False
            if header:
                continue
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError:
                raise ParameterError(f"{data}:{ln}: start and end must be numbers of seconds (got "
                                     f"{row[1].strip()!r}, {row[2].strip()!r})") from None
            tag = row[3].strip()
            if not tag:
                raise ParameterError(f"{data}:{ln}: empty tag")
            if tag.casefold() in NONE_FOLDERS:
                tag = None  # a negatives row: the file is listed, the span carries no tag
            else:
                _check_tag(tag, f"{data}:{ln}", f"line {ln}", seen)
            if not 0 <= start < end:
                raise ParameterError(f"{data}:{ln}: need 0 <= start < end (got {start}, {end})")
            p = Path(row[0].strip())
            rows.append((p if p.is_absolute() else data.parent / p, start, end, tag, ln))
        if not rows:
            raise ParameterError(f"{data}: no labelled rows (file,start,end,tag)")
        tags = sorted({r[3] for r in rows if r[3] is not None})
        if not tags:
            raise ParameterError(f"{data}: every row is tagged none, _none or negatives (negatives only): at least "
                                 f"one row must carry a tag to train")
        # one file under several spellings (a/x.wav, ./a/../a/x.wav, a link) is one file: its rows label it together
        key = {r[0]: Path(os.path.realpath(r[0])) for r in rows}
        items = []
        for real in sorted(set(key.values())):
            path, first_ln = next((r[0], r[4]) for r in rows if key[r[0]] == real)
            if not path.is_file():
                raise ParameterError(f"{data}:{first_ln}: {path}: "
                                     f"{'not a file' if path.exists() else 'no such file'}")
            try:
                x = _load(path, frontend, warn)
            except (ParameterError, AudioFileError) as exc:  # they name the file; the row listing it is named too
                raise type(exc)(f"{data}:{first_ln}: {exc}") from exc
            n = _frames(len(x), hop, n_fft)
            centre = (np.arange(n) * hop + n_fft / 2) / sr
            lab = np.zeros((n, len(tags)), np.uint8)
            for p, start, end, tag, ln in rows:
                if key[p] == real:
                    span = (centre >= start) & (centre < end)
                    if not span.any():
                        raise ParameterError(f"{data}:{ln}: {start:g}-{end:g} s labels no frame of {p} "
                                             f"({len(x) / sr:.2f} s long, a frame centre every "
                                             f"{1000 * hop / sr:.0f} ms from {500 * n_fft / sr:.0f} ms)")
                    if end > len(x) / sr + 0.5:
                        warn(f"{data}:{ln}: the row ends at {end:g} s, past the end of {p} ({len(x) / sr:.2f} s): "
                             f"it labels the file to its end (are the times in seconds?)")
                    if tag is not None:
                        lab[span, tags.index(tag)] = 1
            items.append((str(path), x, lab))
        return items, tags
    if not data.is_dir():
        raise ParameterError(f"--data: {data} is neither a folder of tag folders nor a CSV file")
    folders = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    tags = [p.name for p in folders if p.name.casefold() not in NONE_FOLDERS]
    if not tags:
        raise ParameterError(f"--data: {data} has no tag folder (expected {data}/<tag>/*.wav)")
    loose = sorted(f.name for f in data.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
                   and not f.name.startswith("."))
    if loose:
        warn(f"--data: {len(loose)} audio file(s) directly in {data} carry no tag and are left out "
             f"({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}); put them in a tag folder, or in "
             f"{data}/_none as negatives")
    # one file in several tag folders (copies by link) is one file carrying each of their tags
    listed: dict = {}
    for folder in folders:
        files = audio_files_under(folder)
        tag = None if folder.name.casefold() in NONE_FOLDERS else folder.name
        if tag is not None:
            _check_tag(tag, f"--data: {folder}", f"the folder {folder}", seen)
            if not files:
                raise ParameterError(f"--data: the tag folder {folder} holds no audio file")
        for f in files:
            path, file_tags = listed.setdefault(Path(os.path.realpath(f)), (f, set()))
            if tag is not None:
                file_tags.add(tag)
    items = []
    for path, file_tags in listed.values():
        x = _load(path, frontend, warn)
        n = _frames(len(x), hop, n_fft)
        lab = np.zeros((n, len(tags)), np.uint8)
        if file_tags:
            on = _sounding(x, frontend)
            for tag in file_tags:
                lab[:, tags.index(tag)] = on
        items.append((str(path), x, lab))
    return items, tags


def _check_tags_sound(items, tags, data, frontend: dict) -> None:
    """ParameterError naming the tags that label no frame (a tag folder of silent files, or of files shorter than
    one frame): such a tag would be trained to be always off; and the tags on in every sounding frame of the
    data (one tag folder of continuous sound, no negatives): such a tag would be trained to be on for any sound."""
    counts = np.zeros(len(tags), np.int64)
    off = np.zeros(len(tags), np.int64)  # sounding frames where the tag is off
    for _, x, lab in items:
        counts += lab.sum(axis=0, dtype=np.int64)
        sounding = _sounding(x, frontend)
        if len(sounding):
            off += (sounding[:, None] & (lab[:len(sounding)] == 0)).sum(axis=0, dtype=np.int64)
    empty = [t for t, c in zip(tags, counts) if c == 0]
    if empty:
        n_fft, rate = int(frontend["n_fft"]), int(frontend["sample_rate"])
        raise ParameterError(f"--data: no sounding frame (above -70 dBFS) carries the tag(s) {', '.join(empty)} in "
                             f"{data}: the files of their folders are silent or shorter than one frame ({n_fft} "
                             f"samples at {rate} Hz, {1000 * n_fft / rate:.0f} ms); a tag needs examples of its sound")
    always = [t for t, c in zip(tags, off) if c == 0]
    if always:
        raise ParameterError(f"--data: the tag(s) {', '.join(always)} are on in every sounding frame of {data}, so "
                             f"they would be trained to be on for any sound; add audible audio without them (a "
                             f"'_none' folder of other sounds, or other tags' folders; frames under -70 dBFS, or 40 dB "
                             f"under their file's loudest, count as silence)")


def _split_files(items, tags, val_fraction: float, seed: int) -> tuple[list, list]:
    """Training and validation files.

    Files are grouped by their main tag (the tag of most of their frames; none for negatives); of a group of
    two files or more, ``val_fraction`` of them (at least one, never all) are held out at random. Then held-out
    files go back to training until every tag labels some frame of a training file (a tag that labels part of
    one file, in a CSV, would otherwise have no training example). ``val_fraction`` 0 holds out no file.
    """
    if val_fraction <= 0:
        return list(items), []
    rng = np.random.default_rng(seed)
    main_tag = [int(np.argmax(lab.sum(axis=0))) if lab.any() else -1 for _, _, lab in items]
    val = set()
    for t in sorted(set(main_tag)):
        idx = [i for i, m in enumerate(main_tag) if m == t]
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, int(round(len(idx) * val_fraction))))
        val.update(rng.choice(idx, size=k, replace=False).tolist())
    for t in range(len(tags)):
        if not any(items[i][2][:, t].any() for i in range(len(items)) if i not in val):
            back = [i for i in sorted(val) if items[i][2][:, t].any()]
            if back:
                val.discard(back[0])
    train = [items[i] for i in range(len(items)) if i not in val]
    valid = [items[i] for i in sorted(val)]
    return train, valid


# ------------------------------------------------------------------------------------------------ weights
def state_from_onnx(bundle, calibration: np.ndarray | None = None) -> dict:
    """A ShortChunkCNN state dict from a bundle's ONNX graph (batch norm folded at export, unfolded here).

    The exported graph has each convolution with batch norm folded into its
    weights and bias. Here the convolution keeps the folded weights and the
    batch norm layer is set so that, in eval mode, it adds the folded bias.
    With ``calibration`` windows ``(n, n_mels, W)``, the batch norm's running
    statistics are set to the convolution outputs' per-channel mean and
    variance on them, and its scale and shift to undo them, so the function is
    unchanged in eval mode and nearly unchanged in training mode (batch
    statistics close to the running ones): fine-tuning starts where the
    exported model is.

    A bundle written by ``rtclassify learn`` gives its base network: the
    learned tags' heads are appended to the graph (see
    :mod:`rtclassify.learn.bundle_ext`) and are not part of it.

    Returns
    -------
    dict
        ``{"model_config": dict, "state_dict": dict, "tags": list, "learned_tags": list}``: ``tags`` are the
        network's outputs, ``learned_tags`` the bundle's learned tags left out.
    """
    onnx = require("onnx", extra="train")
    torch = require("torch", extra="train")
    from onnx import numpy_helper

    from ..train.model import ModelConfig, ShortChunkCNN
    from .pretrain import _base_model_config, learned_tags

    model = onnx.load_from_string(bundle.read_bytes("model.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # the exporter shares equal initializers (equal folded biases) through Identity nodes
    aliases = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity" and n.input and n.output}
    for name in aliases:
        src, seen = aliases[name], {name}
        while src in aliases and src not in seen:
            seen.add(src)
            src = aliases[src]
        if src in inits and name not in inits:
            inits[name] = inits[src]
    learned = learned_tags(bundle)
    mc = ModelConfig.from_dict(_base_model_config(bundle))
    net = ShortChunkCNN(mc)
    sd = net.state_dict()
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    sub = [n for n in model.graph.node if n.op_type == "Sub"]
    div = [n for n in model.graph.node if n.op_type == "Div"]
    n_blocks = len(mc.multipliers)
    where = bundle.file_label("model.onnx")
    if len(convs) != n_blocks or len(gemms) != 2 or not sub or not div:
        raise ParameterError(f"{where}: the graph does not look like an exported ShortChunkCNN "
                             f"({len(convs)} Conv, {len(gemms)} Gemm for {n_blocks} blocks)")
    eps = net.blocks[0][1].eps
    missing = [n for node in convs + gemms for n in node.input[1:] if n and n not in inits]
    missing += [n for node in (sub[0], div[0]) for n in node.input[1:] if n not in inits]
    if missing:
        raise ParameterError(f"{where}: the graph does not look like an exported ShortChunkCNN "
                             f"(no initializer {', '.join(missing)})")
    for i, node in enumerate(convs):
        w = inits[node.input[1]]
        b = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32)
        if tuple(w.shape) != tuple(sd[f"blocks.{i}.0.weight"].shape):
            raise ParameterError(f"{where}: Conv {i} has shape {w.shape}, the config expects "
                                 f"{tuple(sd[f'blocks.{i}.0.weight'].shape)}")
        sd[f"blocks.{i}.0.weight"] = torch.from_numpy(w.copy())
        sd[f"blocks.{i}.1.weight"] = torch.ones(len(b))
        sd[f"blocks.{i}.1.bias"] = torch.from_numpy(b.copy())
        sd[f"blocks.{i}.1.running_mean"] = torch.zeros(len(b))
        sd[f"blocks.{i}.1.running_var"] = torch.full((len(b),), 1.0 - eps)
    for node, prefix in zip(gemms, ("embed.0", "head")):
        for k, name in (("weight", 1), ("bias", 2)):
            v = inits.get(node.input[name]) if len(node.input) > name else None
            if v is None or tuple(v.shape) != tuple(sd[f"{prefix}.{k}"].shape):
                raise ParameterError(f"{where}: the {prefix} layer's {k} has shape "
                                     f"{None if v is None else tuple(v.shape)}, the config "
                                     f"({mc.n_tags} tags of the network"
                                     + (f", learned tags {', '.join(learned)} left out" if learned else "")
                                     + f") expects {tuple(sd[f'{prefix}.{k}'].shape)}")
            sd[f"{prefix}.{k}"] = torch.from_numpy(v.copy())
    sd["mel_mean"] = torch.from_numpy(inits[sub[0].input[1]].reshape(-1).copy())
    sd["mel_std"] = torch.from_numpy(inits[div[0].input[1]].reshape(-1).copy())
    net.load_state_dict(sd)
    if calibration is not None and len(calibration):
        stats = {}
        hooks = [net.blocks[i][0].register_forward_hook(
            lambda m, inp, out, i=i: stats.setdefault(i, []).append(
                (out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False)))) for i in range(n_blocks)]
        net.eval()
        with torch.no_grad():
            net(torch.from_numpy(np.ascontiguousarray(calibration, np.float32)))
        for h in hooks:
            h.remove()
        for i in range(n_blocks):
            mu, var = stats[i][0]
            bn = net.blocks[i][1]
            bias = sd[f"blocks.{i}.1.bias"]
            with torch.no_grad():
                bn.running_mean.copy_(mu)
                bn.running_var.copy_(var)
                bn.weight.copy_(torch.sqrt(var + eps))
                bn.bias.copy_(mu + bias)
        sd = net.state_dict()
    return {"model_config": mc.to_dict(), "state_dict": sd, "tags": list(bundle.labels)[:mc.n_tags],
            "learned_tags": learned}


def load_init(init, bundle) -> dict:
    """The ``--init`` checkpoint, checked against the base bundle: its network must read the bundle's frames
    (mel bands, window, lookahead) and, where the checkpoint records it, from the same frontend.

    Raises
    ------
    ParameterError
        An unreadable checkpoint, or the first setting that differs, naming ``--init``.
    """
    from ..train.trainer import load_checkpoint

    ck = load_checkpoint(init)
    mc = ck["model_config"]
    for key, want in (("n_mels", bundle.n_mels), ("window_frames", bundle.window_frames),
                      ("lookahead_frames", bundle.lookahead_frames)):
        if key in mc and int(mc[key]) != int(want):
            raise ParameterError(f"--init {init}: its network has {key} {mc[key]}, the base bundle {bundle.path} "
                                 f"{want}: a checkpoint must come from a run on the base bundle's frontend and window")
    fe = ck.get("frontend")
    if isinstance(fe, dict):
        from ..train.features import frontend_differences

        diff = frontend_differences(fe, bundle.frontend)
        if diff:
            raise ParameterError(f"--init {init}: its frontend differs from the base bundle's ({bundle.path}) in "
                                 + ", ".join(f"{k} ({fe.get(k)!r} against {bundle.frontend.get(k)!r})" for k in diff)
                                 + ": its network was trained on other frames")
    return ck


def base_state(bundle, init=None, calibration=None) -> tuple[dict, str]:
    """Weights to start from: ``init`` checkpoint (checked by :func:`load_init`), the bundle's torch weights, or
    its ONNX graph.

    Returns
    -------
    (checkpoint-like dict, description of the source)
    """
    if init is not None:
        return load_init(init, bundle), f"checkpoint {init}"
    if not bundle.is_zip:
        from ..model.backend_torch import TorchBackend

        from ..errors import BundleError

        try:
            return TorchBackend._load(bundle.path), f"torch weights of {bundle.path}"
        except (BundleError, ParameterError):
            pass
    return state_from_onnx(bundle, calibration), f"ONNX graph of {bundle.file_label('model.onnx')}"


# ------------------------------------------------------------------------------------------------ training


def check_settings(epochs=6, minutes=10.0, lr=5e-4, val_fraction=0.2, seed=0, threads=1,
                   windows_per_epoch=4000) -> None:
    """Check the numbers of :func:`finetune` (named as the ``train --data`` options).

    Raises
    ------
    ParameterError
        The first bad value, with the option's name, the allowed range and the value given.
    """
    def integer(v, name, lo, hi=None):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
            rng = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
            raise ParameterError(f"--{name} must be an integer {rng} (got {v!r})")

    def real(v, name, lo, hi, lo_open=True, hi_open=False):
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if not ok:
            rng = f"> {lo:g}" if hi == math.inf else f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise ParameterError(f"--{name} must be a finite number {rng} (got {v!r})")

    integer(epochs, "epochs", 1, MAX_EPOCHS)
    integer(windows_per_epoch, "windows-per-epoch", 1, MAX_WINDOWS)
    integer(threads, "threads", 1, MAX_THREADS)
    integer(seed, "seed", 0, MAX_SEED)
    real(minutes, "minutes", 0.0, MAX_MINUTES)
    real(lr, "lr", 0.0, MAX_LR)
    real(val_fraction, "val-fraction", 0.0, 1.0, lo_open=False, hi_open=True)


def finetune(data, out, bundle=None, init=None, epochs: int = 6, minutes: float = 10.0, lr: float = 5e-4,
             val_fraction: float = 0.2, seed: int = 0, threads: int = 1, windows_per_epoch: int = 4000,
             console=None, force: bool | None = None, shipped: bool = True) -> dict:
    """Fine-tune on labelled audio and export a bundle with the user's tags (see the module notes).

    ``force`` and ``shipped`` say what happens to a bundle already at ``out``, checked before any work
    (:func:`rtclassify.model.bundle_write.check_bundle_out`): the Python API replaces it (``None``);
    the command refuses it without ``--force`` and never writes over the package's own bundle.

    Returns
    -------
    dict
        ``bundle`` (Path), ``checkpoint``, ``tags``, ``history``, ``validation`` metrics, ``source`` of the weights.
    """
    require("torch", extra="train")
    from rich.console import Console

    from ..model.bundle_write import check_bundle_out, output_folder

    console = console or Console()
    t0 = time.perf_counter()
    check_settings(epochs, minutes, lr, val_fraction, seed, threads, windows_per_epoch)
    out = check_bundle_out(out, "--out", force=force, shipped=shipped)  # before the training, not after it
    if not (Path(data).is_dir() or Path(data).is_file()):
        raise ParameterError(f"--data: {data} is neither a folder of tag folders nor a CSV file")
    run_dir = run_folder(out)
    if Path(data).is_dir() and Path(data).resolve() in run_dir.resolve().parents:
        raise ParameterError(f"--out {out} is inside --data {data}: the bundle and its run folder {run_dir.name} "
                             f"would be read as tag folders; write them outside the data folder")
    # refused data or an interruption before anything was written: no empty run folder left by this run
    with output_folder(run_dir, "--out's run folder"):
        return _finetune_into(data, out, run_dir, bundle, init, epochs, minutes, lr, val_fraction, seed, threads,
                              windows_per_epoch, console, t0)


def run_folder(out) -> Path:
    """The folder beside the bundle ``out`` that holds a fine-tuning run's features and checkpoints: ``OUT.run``
    (``NAME.run`` for ``NAME.zip``)."""
    out = Path(out)
    return out.with_name(out.name + ".run") if out.suffix.lower() != ".zip" else out.with_suffix(".run")


def _finetune_into(data, out: Path, run_dir: Path, bundle, init, epochs, minutes, lr, val_fraction, seed, threads,
                   windows_per_epoch, console, t0) -> dict:
    """:func:`finetune`'s work, its outputs checked and its run folder made."""
    torch = require("torch", extra="train")

    from ..model.bundle import load_bundle
    from ..train.export import export_bundle
    from ..train.features import Clip, build_feature_set, window_batch
    from ..train.model import ModelConfig, ShortChunkCNN
    from ..train.trainer import Trainer, TrainParams, finalize_checkpoint, load_config

    base = load_bundle(bundle)
    from .pretrain import learned_tags, toml_string

    dropped = learned_tags(base)
    fe = dict(base.frontend)
    init_ck = load_init(init, base) if init is not None else None  # before the data is read
    items, tags = read_labelled_data(data, fe, console)
    _check_tags_sound(items, tags, data, fe)
    train_items, val_items = _split_files(items, tags, val_fraction, seed)
    if not val_items:
        console.print("[yellow]--val-fraction 0: validating on the training files[/]" if val_fraction == 0 else
                      "[yellow]too few files for a validation split: validating on the training files[/]")
        val_items = train_items
    W = base.window_frames

    def feats(its, split):
        clips = [Clip(name, x, lab) for name, x, lab in its]
        return build_feature_set(clips, run_dir / "features" / split, tags, fe, n_clips=len(clips), progress=False)

    train_set, val_set = feats(train_items, "train"), feats(val_items, "val")
    if len(train_set.target_frames(W, base.lookahead_frames)) == 0:
        raise ParameterError(f"--data: no training file is long enough for one {W}-frame window "
                             f"({W * base.hop_length / base.sample_rate:.2f} s)")
    # weights: calibrate an ONNX-converted start on training windows
    tt = train_set.target_frames(W, base.lookahead_frames, 4)
    calib = window_batch(train_set.mel, tt[np.linspace(0, len(tt) - 1, min(256, len(tt))).astype(int)]
                         + base.lookahead_frames, W)
    # the new output head's initial weights come from torch's generator: seeded, so a seed gives one run
    torch.manual_seed(int(seed))
    ck, source = (init_ck, f"checkpoint {init}") if init is not None else base_state(base, None, calib)
    if dropped:
        console.print(f"[yellow]note: {base.path} has learned tag(s) {', '.join(dropped)} (rtclassify learn): "
                      f"fine-tuning starts from its base network, whose tags are replaced by yours, so "
                      f"{'they are' if len(dropped) > 1 else 'it is'} not in the new bundle; label "
                      f"{'them' if len(dropped) > 1 else 'it'} in --data to train "
                      f"{'them' if len(dropped) > 1 else 'it'} with your tags, or learn "
                      f"{'them' if len(dropped) > 1 else 'it'} again on the new bundle[/]")
    mcfg = ModelConfig.from_dict({**dict(ck["model_config"]), "n_tags": len(tags)})
    init_sd = ShortChunkCNN(mcfg).state_dict()
    for k, v in ck["state_dict"].items():
        if not k.startswith("head."):
            init_sd[k] = v
    default_cfg = load_config(Path(__file__).resolve().parent.parent / "train" / "configs" / "default.toml",
                              [f"data.dir={toml_string(str(run_dir))}"])
    p = dict(default_cfg.train.__dict__)
    p.update(epochs=int(epochs), time_budget_min=float(minutes), lr=float(lr), seed=int(seed), threads=int(threads),
             windows_per_epoch=int(windows_per_epoch), patience=max(2, int(epochs) // 2),
             batch_size=min(int(p["batch_size"]), 64))
    params = TrainParams(**p)
    extra = {"frontend": fe, "hop_frames": base.hop_frames, "decoder": dict(base.decoder),
             "name": f"{base.name}-finetuned", "config": {"finetune": {"data": str(Path(data).resolve()),
                                                                       "base": str(base.path), "weights": source,
                                                                       "learned_tags_left_out": dropped}},
             "provenance": {"data": "user-labelled audio (rtclassify train --data)",
                            "folder": str(Path(data).resolve()), "files": len(items),
                            "train_files": [n for n, _, _ in train_items], "val_files": [n for n, _, _ in val_items],
                            "base_bundle": base.name, "base_provenance": base.meta.get("provenance", {})}}
    console.print(f"fine-tuning from the {source} on {len(train_items)} training / {len(val_items)} validation "
                  f"files, tags: {', '.join(tags)}")
    trainer = Trainer(mcfg, params, train_set, val_set, run_dir, tags, extra, console, init_state=init_sd)
    result = trainer.fit()
    model_pt = finalize_checkpoint(trainer, result["best"])
    bundle_path = export_bundle(model_pt, out)
    from ..train.trainer import load_checkpoint

    final = load_checkpoint(model_pt)
    console.print(f"bundle: {bundle_path} ({time.perf_counter() - t0:.0f} s)")
    return {"bundle": bundle_path, "checkpoint": model_pt, "tags": tags, "history": result["history"],
            "validation": final.get("metrics", {}).get("validation"), "source": source}


# ------------------------------------------------------------------------------------------------ command
#: Defaults of the ``--data`` options (None on the parsed arguments: given or not can be told apart).
_OPTION_DEFAULTS = {"epochs": 6, "minutes": 10.0, "lr": 5e-4, "val_fraction": 0.2, "windows_per_epoch": 4000,
                    "seed": 0, "threads": 1}
_DATA_OPTIONS = ("out", "bundle", "init") + tuple(_OPTION_DEFAULTS)
#: Options of ``rtclassify train --config`` that fine-tuning does not read.
_CONFIG_OPTIONS = {"config": "--config", "set": "--set", "resume": "--resume", "no_export": "--no-export",
                   "no_test": "--no-test"}


def add_arguments(parser) -> None:
    """The ``--data`` options of ``rtclassify train``."""
    from ..commands._args import nonempty, number

    g = parser.add_argument_group("fine-tuning on your own labelled audio (instead of --config)")
    g.add_argument("--data", metavar="FOLDER|CSV", type=nonempty("a folder or CSV file"),
                   help="labelled audio: a folder per tag (FOLDER/<tag>/*.wav; '_none', 'none' or 'negatives', in "
                        "any case, for negatives) or a CSV of file,start,end,tag rows")
    g.add_argument("--out", metavar="BUNDLE", type=nonempty("a bundle folder or .zip"),
                   help="output bundle folder or .zip (with --data; required); the run's features and checkpoints "
                        "go to the folder BUNDLE.run beside it (NAME.run for NAME.zip)")
    g.add_argument("--bundle", metavar="IN", help="base bundle to start from (default: the bundled model)")
    g.add_argument("--init", metavar="CHECKPOINT", type=nonempty("a checkpoint file"),
                   help="start from this training checkpoint instead of the bundle")
    g.add_argument("--force", action="store_true", default=None,
                   help="replace a bundle already at --out (whole, once the new one is written); with --config, "
                        "one at the config's [output] bundle that another run wrote")
    d = _OPTION_DEFAULTS  # the defaults apply in run(): None here tells a given option from an absent one
    g.add_argument("--epochs", type=number(int, "a whole number", lo=1, hi=MAX_EPOCHS), default=None,
                   help=f"most epochs (default {d['epochs']})")
    g.add_argument("--minutes", type=number(float, "a number", above=0, hi=MAX_MINUTES), default=None,
                   help=f"time budget in minutes (default {d['minutes']:g}; at most {MAX_MINUTES}, a week)")
    g.add_argument("--lr", type=number(float, "a number", above=0, hi=MAX_LR), default=None,
                   help=f"peak learning rate (default {d['lr']:g}; at most {MAX_LR:g})")
    g.add_argument("--val-fraction", type=float, default=None,
                   help=f"share of files held out for validation, 0 to below 1 (0: none, validating on the "
                        f"training files; default {d['val_fraction']:g})")
    g.add_argument("--windows-per-epoch", type=number(int, "a whole number", lo=1, hi=MAX_WINDOWS), default=None,
                   help=f"training windows per epoch (default {d['windows_per_epoch']})")
    g.add_argument("--seed", type=number(int, "an integer", lo=0, hi=MAX_SEED), default=None,
                   help=f"random seed, 0..{MAX_SEED} (default {d['seed']})")
    g.add_argument("--threads", type=number(int, "a whole number", lo=1, hi=MAX_THREADS), default=None,
                   help=f"torch threads, 1..{MAX_THREADS} (default {d['threads']})")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_config_run(args) -> None:
    """Refuse ``--data`` options on a ``train --config`` run (the config's training reads none of them).

    Raises
    ------
    ParameterError
        Naming the options given.
    """
    given = [_option(k) for k in _DATA_OPTIONS if getattr(args, k, None) is not None]
    if given:
        raise ParameterError(f"{', '.join(given)}: for fine-tuning with --data, not for training from --config "
                             f"(set the run's values in its config or with --set SECTION.KEY=VALUE)")


def run(args) -> int:
    """Run ``rtclassify train --data``."""
    given = [flag for k, flag in _CONFIG_OPTIONS.items() if getattr(args, k, None)]
    if given:
        raise ParameterError(f"{', '.join(given)}: for training from --config, not for fine-tuning with --data "
                             f"(which takes --epochs, --minutes, --lr and the other options of its group)")
    if not args.out:
        raise ParameterError("train --data needs --out BUNDLE")
    opts = {k: (v if (v := getattr(args, k, None)) is not None else d) for k, d in _OPTION_DEFAULTS.items()}
    check_settings(opts["epochs"], opts["minutes"], opts["lr"], opts["val_fraction"], opts["seed"], opts["threads"],
                   opts["windows_per_epoch"])
    res = finetune(args.data, args.out, bundle=args.bundle, init=args.init, force=bool(args.force), shipped=False,
                   **opts)
    val = res.get("validation") or {}
    macro = val.get("macro", {}) if isinstance(val, dict) else {}
    if macro:
        print(json.dumps({"bundle": str(res["bundle"]), "tags": res["tags"], "validation_macro": macro}, indent=1,
                         default=float))
    return 0
