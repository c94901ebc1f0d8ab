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
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch

from .data.dataset import VideoClipDataset, collate_clips
from .data.sources import VideoSample, collect_paths, label_name

if TYPE_CHECKING:
    from omegaconf import DictConfig

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

    ``samples`` are :class:`VideoSample` (labels kept) or files/folders (unlabelled, folders searched).
    """
    if not (isinstance(samples, Sequence) and samples and all(isinstance(s, VideoSample) for s in samples)):
        samples = collect_paths(samples)  # type: ignore[arg-type]
    samples = list(samples)  # type: ignore[arg-type]
    cfg = model.data_config
    dataset = VideoClipDataset(samples, cfg.sampling, cfg.eval_transform(num_crops),
                               "uniform" if num_clips > 1 else "center", num_clips=num_clips, decoder=decoder)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=collate_clips)
    device = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else model.device)
    was_training = model.training
    model.eval().to(device)
    hook = _HeadInput()
    handle = model.backbone.head.register_forward_pre_hook(hook)
    features: dict[int, np.ndarray] = {}
    failures: list[dict[str, str]] = []
    try:
        for batch in loader:
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
        model.train(was_training)
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


def run_embed(cfg: "DictConfig") -> int:
    """``flashvid embed ckpt_path=... inputs=[...] | folder=DIR | list_file=CSV out=DIR``."""
    from omegaconf import OmegaConf

    from .commands.config import ConfigError
    from .commands.runs import existing_checkpoint, load_classifier, model_target, write_json
    from .data.sources import read_csv, scan_class_folders

    ckpt = existing_checkpoint(cfg.ckpt_path)
    given = [k for k in ("inputs", "folder", "list_file") if cfg.get(k) not in (None, "", [])]
    if len(given) != 1:
        raise ConfigError("give exactly one of inputs=[files,folders] (unlabelled), folder=DIR (class sub-folders: "
                          f"labelled) or list_file=CSV (path,label rows); got {given or 'none'}")
    labels: list[str] | None = None
    if cfg.get("inputs") not in (None, "", []):
        raw = OmegaConf.to_container(cfg.inputs, resolve=True) if OmegaConf.is_config(cfg.inputs) else cfg.inputs
        samples = collect_paths([str(x) for x in (raw if isinstance(raw, list) else [raw])])
    elif cfg.get("folder"):
        samples, labels = scan_class_folders(cfg.folder, what="folder")
    else:
        samples, labels = read_csv(cfg.list_file, cfg.get("root"))
    model = load_classifier(ckpt, model_target(cfg))
    features, kept, failures = embed_videos(model, samples, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                            num_clips=cfg.num_clips, num_crops=cfg.num_crops, decoder=cfg.decoder,
                                            device=cfg.device)
    feat_path, index_path = write_embeddings(cfg.out, features, kept, labels)
    if failures:
        write_json(Path(cfg.out) / "failures.json", failures)
    print(f"flashvid embed: {features.shape[0]} videos x {features.shape[1]} features -> {feat_path}, {index_path}")
    if failures:
        print(f"flashvid embed: {len(failures)} of {len(samples)} files could not be decoded: "
              f"{Path(cfg.out) / 'failures.json'}", flush=True)
        return 3
    return 0
