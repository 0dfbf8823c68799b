"""Test helper: synthetic clips, a tiny model and a tiny training config for the trainer's tests.

Needs torch (the trainer's model does): importing this module skips the importing test module without it.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from rtclassify.train.features import Clip  # noqa: E402
from rtclassify.train.model import TAGS  # noqa: E402

#: the sample rate of the synthetic clips (the training front end's)
SR = 16000
#: ModelConfig fields of a tiny, fast model
TINY = dict(width=4, multipliers=[1, 2, 2, 4], time_pools=4, embedding_dim=16)


def synthetic_clips(seed, n, seconds=3.0):
    """Synthetic clips: a harmonic tone (organ), a noise burst pattern (drums) or near silence, with frame labels."""
    rng = np.random.default_rng(seed)
    T = int(seconds * SR)
    nfr = 1 + (T - 512) // 256
    for k in range(n):
        a = (0.001 * rng.normal(size=T)).astype(np.float32)
        lab = np.zeros((nfr, 12), np.uint8)
        s = int(rng.integers(0, T // 4))  # the sound starts inside the clip and lasts to its end
        e = T
        t = np.arange(e - s) / SR
        kind = k % 3
        if kind == 0:
            f0 = rng.uniform(110, 330)
            a[s:e] += sum(0.3 / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 9))
            j = TAGS.index("organ")
        elif kind == 1:
            a[s:e] += 0.3 * rng.normal(size=e - s) * np.exp(-((t * 8) % 1) * 6)
            j = TAGS.index("drums")
        else:
            j = None
        if j is not None:
            centre = np.arange(nfr) * 256 + 256
            lab[(centre >= s) & (centre < e), j] = 1
        yield Clip(f"clip{k}", a, lab)


def tiny_config(tmp_path, windows_per_epoch: int, output: str) -> str:
    """A config of one epoch of a width-4 model on ``tmp_path/data``, run in ``tmp_path/run``; ``output`` adds
    lines to its [output] table."""
    return f"""
[data]
dir = "{tmp_path / 'data'}"
[model]
width = 4
multipliers = [1, 2, 2, 4]
embedding_dim = 16
[train]
epochs = 1
windows_per_epoch = {windows_per_epoch}
batch_size = 64
threads = 1
[output]
dir = "{tmp_path / 'run'}"
{output}
"""


def fake_data(monkeypatch, seeds: dict, counts: dict, name: str, provenance: dict) -> None:
    """Serve synthetic clips as a built data set's splits: ``counts[split]`` clips of 2 s drawn with
    ``seeds[split]``, fingerprinted ``<name>-<split>``, with ``provenance``."""
    import copy

    import rtclassify.train.data as data

    monkeypatch.setattr(data, "load_split", lambda d, split: (synthetic_clips(seeds[split], counts[split], 2.0),
                                                              counts[split]), raising=False)
    monkeypatch.setattr(data, "split_fingerprint", lambda d, split: f"{name}-{split}", raising=False)
    monkeypatch.setattr(data, "provenance", lambda d: copy.deepcopy(provenance), raising=False)
