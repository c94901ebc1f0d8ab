"""Per-video features from a trained classifier, for retrieval, clustering and linear probes: ``flashvid embed``.

A video's feature is what the backbone hands its classifier head: the pooled representation (VideoMAE's mean-pooled
and normed tokens, X3D's and R(2+1)D's globally pooled channels...). It is read with a forward hook on
``backbone.head``, so every registered backbone works without a per-family code path; where the head is applied
per position (pytorchvideo's heads run their Linear on a ``(B, T, H, W, C)`` map before pooling) the positions are
averaged, which is the same pooled feature because a Linear layer commutes with the mean. Several views
(``num_clips`` x ``num_crops``) are averaged per video.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .data.sources import VideoSample, collect_paths, label_name
from .inference import PredictOptions, clip_loader, evaluating, resolve_device

FEATURES = "features.npy"
INDEX = "index.csv"


class _HeadInput:
    """Forward pre-hook keeping the head's input, pooled to ``(batch, channels)``."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        self.value = x.reshape(x.shape[0], -1, x.shape[-1]).float().mean(1) if x.dim() > 2 else x.float()


@torch.inference_mode()
def embed_videos(model: Any, samples: Sequence[VideoSample] | str | os.PathLike | Iterable[str | os.PathLike],
                 batch_size: int = 8, num_workers: int = 0, num_clips: int = 1, num_crops: int = 1,
                 decoder: str = "auto", device: str | torch.device | None = None
                 ) -> tuple[np.ndarray, list[VideoSample], list[dict[str, str]]]:
    """Features ``(N, D)`` float32 of the decodable videos, their samples (in input order), and the failures.

    ``samples`` are :class:`VideoSample` (labels kept) or files/folders (unlabelled, folders searched). The
    clips are read as :class:`~flashvid.inference.Predictor` reads them (``num_clips`` x ``num_crops`` views
    averaged).
    """
    if not (isinstance(samples, Sequence) and samples and all(isinstance(s, VideoSample) for s in samples)):
        samples = collect_paths(samples)  # type: ignore[arg-type]
    samples = list(samples)  # type: ignore[arg-type]
    options = PredictOptions(batch_size=batch_size, num_workers=num_workers, num_clips=num_clips,
                             num_crops=num_crops, decoder=decoder, device=device)
    device = resolve_device(model, device)
    hook = _HeadInput()
    features: dict[int, np.ndarray] = {}
    failures: list[dict[str, str]] = []
    handle = model.backbone.head.register_forward_pre_hook(hook)
    try:
        with evaluating(model, device):
            for batch in clip_loader(model, samples, options):
                failures.extend({"path": f["path"], "error": f["reason"]} for f in batch["failed"])
                if batch["video"] is None:
                    continue
                video = batch["video"].to(device)
                views = video.shape[1] if video.dim() == 6 else 1
                model(video.flatten(0, 1) if video.dim() == 6 else video)
                assert hook.value is not None, "the backbone's forward did not run its head"
                feats = hook.value.view(video.shape[0], views, -1).mean(1).cpu().numpy()
                for i, f in zip(batch["index"].tolist(), feats, strict=True):
                    features[i] = f
    finally:
        handle.remove()
    order = sorted(features)
    dim = next(iter(features.values())).shape[0] if features else 0
    matrix = np.stack([features[i] for i in order]).astype(np.float32) if order else np.zeros((0, dim), np.float32)
    return matrix, [samples[i] for i in order], failures


def write_embeddings(out: str | os.PathLike, features: np.ndarray, samples: Sequence[VideoSample],
                     labels: Sequence[str] | None = None) -> tuple[Path, Path]:
    """``out/features.npy`` (row i = video i) and ``out/index.csv`` (``row,path,label``; label empty if unknown)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / FEATURES, features)
    with open(out / INDEX, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "path", "label"])
        for row, s in enumerate(samples):
            w.writerow([row, s.path, _label_name(s.label, labels)])
    return out / FEATURES, out / INDEX


def _label_name(label: int | tuple[int, ...], labels: Sequence[str] | None) -> str:
    return (label_name(label, labels) or "") if labels is not None else ""
