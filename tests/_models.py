"""Test helper: small ShortChunkCNN models, their checkpoints and their exported bundles.

Imports without torch: each helper needing it imports it when called and skips the calling test
(``pytest.importorskip``) where torch is missing, so a test module that runs without torch may import
this one at module level.
"""

from __future__ import annotations

import numpy as np
import pytest


def random_model(seed=0, **kw):
    """A model with non-trivial weights and batch-norm statistics (so folding is exercised); ``kw`` are
    ModelConfig fields over the small default here (width 4, six blocks, a 24-d embedding)."""
    torch = pytest.importorskip("torch")
    from rtclassify.train.model import ModelConfig, ShortChunkCNN

    torch.manual_seed(seed)
    cfg = ModelConfig(**{"width": 4, "multipliers": [1, 2, 2, 4, 4, 8], "embedding_dim": 24, **kw})
    m = ShortChunkCNN(cfg)
    m.set_normalization(np.linspace(-70, -30, 128), np.linspace(8, 20, 128))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()


def checkpoint_of(model, **extra):
    """A training checkpoint (the dict the trainer saves) holding ``model``, with every key export reads;
    ``extra`` adds or replaces keys."""
    pytest.importorskip("torch")
    from rtclassify.train.model import TAGS
    from rtclassify.train.trainer import CHECKPOINT_FORMAT

    tags = list(TAGS)
    ck = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "tags": tags,
        "thresholds": {t: {"on": 0.5, "off": 0.35} for t in tags},
        "hop_frames": 6,
        "decoder": {"smoothing_s": 0.15, "min_on_s": 0.1, "min_off_s": 0.2},
        "provenance": {"recipe": "test", "sources": [{"name": "synthetic", "license": "CC0"}]},
        "metrics": {"validation": {"macro": {"roc_auc": 0.5}}},
        "name": "test-model",
        "history": [{"epoch": 1, "train_loss": 0.5}],
    }
    ck.update(extra)
    return ck


def write_cnn_bundle(folder, randomize_bn: bool = True):
    """A tiny exported ShortChunkCNN bundle (random weights; batch-norm statistics made non-trivial unless
    ``randomize_bn`` is false)."""
    torch = pytest.importorskip("torch")
    from rtclassify.train.export import export_bundle
    from rtclassify.train.model import TAGS, ModelConfig, ShortChunkCNN
    from rtclassify.train.trainer import CHECKPOINT_FORMAT

    cfg = ModelConfig(width=2, multipliers=[1, 2, 2, 2], time_pools=4, embedding_dim=16, lookahead_frames=2)
    torch.manual_seed(0)
    m = ShortChunkCNN(cfg)
    if randomize_bn:
        with torch.no_grad():
            for blk in m.blocks:
                bn = blk[1]
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
    ck = {"format": CHECKPOINT_FORMAT, "model_config": cfg.to_dict(), "state_dict": m.state_dict(),
          "tags": list(TAGS), "thresholds": {t: {"on": 0.5, "off": 0.35} for t in TAGS}, "name": "tiny-cnn"}
    return export_bundle(ck, folder)
