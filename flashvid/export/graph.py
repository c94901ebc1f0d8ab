"""What the graph formats (``onnx``, ``torch_export``) share: the traced module, its example input, the check.

The graph takes normalised float clips ``(batch, frames, 3, size, size)`` and returns logits, as
``VideoClassifier.backbone`` does; ``flashvid_config.json`` beside it has the mean/std, frames and class names.
The batch dimension is dynamic by default; frames and size are fixed at the model's clip settings (most video
backbones fix them anyway: position embeddings, pooling kernels).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn


class GraphModule(nn.Module):
    """The backbone alone, in eval mode: one tensor in, logits out (no uint8 handling, no view averaging)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.backbone(video)


def example_input(model: Any, batch_size: int, num_frames: int | None, crop_size: int | None) -> torch.Tensor:
    """A reproducible normalised clip batch of the model's (or the given) frames and size."""
    cfg = model.data_config
    t, s = num_frames or cfg.num_frames, crop_size or cfg.crop_size
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, t, 3, s, s, generator=g)


def dynamic_shapes(dynamic_batch: bool) -> tuple[dict[int, Any], ...] | None:
    return ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None


def why(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def parity(reference: nn.Module, run: Callable[[np.ndarray], np.ndarray], x: torch.Tensor) -> float:
    """Max absolute logit difference between ``reference`` (PyTorch) and ``run`` (the exported graph) on ``x``."""
    with torch.inference_mode():
        want = reference(x).float().numpy()
    got = run(x.numpy())
    return float(np.abs(np.asarray(got, dtype=np.float32) - want).max())


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start
