"""Short-chunk CNN adapted to frame-level, low-latency tagging.

The network follows the short-chunk CNN of Won et al. (SMC 2020): stacked
blocks of 3x3 convolution, batch normalization, ReLU and 2x2 max pooling whose
channel count grows with depth, applied to a short log-mel chunk. It is adapted
to streaming, frame-level output:

* The input is one window of ``W = 64`` raw log-mel frames in dB, shape
  ``(batch, n_mels, W)``. Normalization lives inside the graph: a fixed per-mel
  mean and standard deviation measured on the training set (buffers, exported
  as constants).
* Four blocks pool time by 2 (the last column of the final map covers the last
  16 input frames, i.e. the "now" of the window); deeper blocks pool frequency
  only, so the late layers keep the time resolution.
* After the convolutions frequency is max-pooled. The head reads two views of
  the remaining time axis: the last column ("now": the part of the window that
  ends at the newest frame) and the mean over all columns ("context": the
  whole ~1 s window). Their concatenation goes through a linear layer + ReLU
  to the embedding, and a linear layer + sigmoid to the tag probabilities.
* The output describes frame ``W - 1 - lookahead`` of the window. Lookahead is a
  property of training (which frame's labels the window is trained on): with
  ``lookahead = L`` the model sees ``L`` frames after the frame it reports,
  which costs ``L * hop`` samples of latency and helps at onsets and offsets.

Every operator exports to ONNX opset 17 with ops TensorRT's parser supports:
Sub, Div, Unsqueeze, Conv (batch norm folded), Relu, MaxPool, ReduceMax,
ReduceMean, Gather/Slice, Concat, Gemm, Sigmoid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError

__all__ = ["ModelConfig", "ShortChunkCNN", "TAGS"]

#: The tag order of the model contract.
TAGS = (
    "piano", "organ", "guitar", "bass", "strings", "brass",
    "woodwind", "mallet", "drums", "synth", "singing", "speech",
)


@dataclass
class ModelConfig:
    """Hyper-parameters of :class:`ShortChunkCNN`.

    Parameters
    ----------
    n_mels : int
        Mel bands of the input.
    window_frames : int
        Frames per input window (W).
    n_tags : int
        Number of output tags.
    width : int
        Channel width: the blocks have ``width * m`` channels for ``m`` in
        ``multipliers``.
    multipliers : list of int
        Channel multiplier of each conv block (its length is the depth).
    time_pools : int
        How many of the first blocks also pool time by 2 (the others pool
        frequency only). ``window_frames`` must be divisible by ``2**time_pools``.
    embedding_dim : int
        Size of the embedding (the layer before the output head).
    dropout : float
        Dropout before the output head (training only).
    lookahead_frames : int
        Frames after the reported frame that the window contains.
    """

    n_mels: int = 128
    window_frames: int = 64
    n_tags: int = len(TAGS)
    width: int = 8
    multipliers: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 8, 16])
    time_pools: int = 4
    embedding_dim: int = 128
    dropout: float = 0.3
    lookahead_frames: int = 0

    def validate(self) -> "ModelConfig":
        """Check the values; raises :class:`ParameterError` naming the bad one."""
        def whole(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        for k, hi in (("n_mels", 1024), ("window_frames", 16384), ("n_tags", 4096), ("width", 1024),
                      ("time_pools", 64), ("embedding_dim", 65536), ("lookahead_frames", 16384)):
            v = getattr(self, k)
            if not whole(v) or not 0 <= v <= hi:
                raise ParameterError(f"{k} must be a whole number from 0 to {hi}, got {v!r}")
        if not isinstance(self.multipliers, (list, tuple)) or not all(whole(m) and 1 <= m <= 1024
                                                                      for m in self.multipliers):
            raise ParameterError(f"multipliers must be a list of whole numbers from 1 to 1024, got {self.multipliers!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ParameterError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.window_frames < 1:
            raise ParameterError(f"window_frames must be >= 1, got {self.window_frames}")
        if self.n_mels < 2 ** len(self.multipliers):
            raise ParameterError(f"n_mels={self.n_mels} is too small for {len(self.multipliers)} blocks")
        if self.width < 1:
            raise ParameterError(f"width must be >= 1, got {self.width}")
        if not self.multipliers or any(int(m) < 1 for m in self.multipliers):
            raise ParameterError(f"multipliers must be positive integers, got {self.multipliers}")
        if not 0 <= self.time_pools <= len(self.multipliers):
            raise ParameterError(f"time_pools must be in [0, {len(self.multipliers)}], got {self.time_pools}")
        if self.window_frames % (2 ** self.time_pools):
            raise ParameterError(
                f"window_frames={self.window_frames} must be divisible by 2**time_pools={2 ** self.time_pools}")
        if not 0 <= self.lookahead_frames < self.window_frames:
            raise ParameterError(
                f"lookahead_frames must be in [0, {self.window_frames - 1}], got {self.lookahead_frames}")
        if self.embedding_dim < 1:
            raise ParameterError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    def to_dict(self) -> dict:
        """Plain-dict form (JSON/TOML friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a dict, rejecting unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ParameterError(f"unknown model parameter(s): {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d).validate()


class _Block(nn.Sequential):
    """3x3 conv + batch norm + ReLU + max pool."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool),
        )


class ShortChunkCNN(nn.Module):
    """Frame-level short-chunk CNN.

    Parameters
    ----------
    config : ModelConfig
        Hyper-parameters.

    Notes
    -----
    ``forward(mel)`` takes ``mel`` of shape ``(batch, n_mels, window_frames)``
    (raw dB) and returns ``(probs, embedding)`` with shapes
    ``(batch, n_tags)`` and ``(batch, embedding_dim)``.
    :meth:`logits_and_embedding` returns pre-sigmoid logits for training.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = cfg = (config or ModelConfig()).validate()
        self.register_buffer("mel_mean", torch.full((cfg.n_mels,), -50.0))
        self.register_buffer("mel_std", torch.full((cfg.n_mels,), 20.0))
        blocks = []
        c_in = 1
        for i, m in enumerate(cfg.multipliers):
            c_out = cfg.width * int(m)
            blocks.append(_Block(c_in, c_out, (2, 2) if i < cfg.time_pools else (2, 1)))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.channels = c_in
        self.embed = nn.Sequential(nn.Linear(2 * c_in, cfg.embedding_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.embedding_dim, cfg.n_tags)

    @torch.no_grad()
    def set_normalization(self, mean, std) -> None:
        """Store the per-mel mean and standard deviation (in dB) of the training set.

        Parameters
        ----------
        mean, std : array_like, shape (n_mels,)
        """
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.numel() != self.config.n_mels or std.numel() != self.config.n_mels:
            raise ParameterError(f"mean and std must have {self.config.n_mels} values")
        if not torch.all(std > 0):
            raise ParameterError("std must be positive")
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std)

    def logits_and_embedding(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-sigmoid logits and embedding.

        Parameters
        ----------
        mel : torch.Tensor, shape (batch, n_mels, window_frames)

        Returns
        -------
        logits : torch.Tensor, shape (batch, n_tags)
        embedding : torch.Tensor, shape (batch, embedding_dim)
        """
        x = (mel - self.mel_mean[:, None]) / self.mel_std[:, None]
        x = self.blocks(x.unsqueeze(1))          # (B, C, F', T')
        x = torch.amax(x, dim=2)                 # (B, C, T'): max over frequency
        now = x[:, :, -1]                        # the column covering the newest frames
        context = torch.mean(x, dim=2)           # the whole window
        emb = self.embed(torch.cat([now, context], dim=1))
        return self.head(self.dropout(emb)), emb

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and embedding; see the class notes for shapes."""
        logits, emb = self.logits_and_embedding(mel)
        return torch.sigmoid(logits), emb
