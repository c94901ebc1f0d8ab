"""The model-only baseline every training and prediction figure is divided by: the same model, the same steps,
fed uint8 clips of the same shape from memory (no files, no decoding), so ``end to end / model-only`` is the share
of the model's speed the data path delivers."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch

from flashvid import VideoClassificationData, VideoClassifier
from flashvid.data import VideoSample

from . import training
from .timing import peak_memory_gib, reset_peak_memory, sync


class InMemoryClips(torch.utils.data.Dataset):
    """The same uint8 clip every time."""

    def __init__(self, length: int, shape: tuple[int, ...], num_classes: int):
        self.length, self.num_classes = length, num_classes
        self.clip = torch.randint(0, 256, shape, dtype=torch.uint8)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index = key[0] if isinstance(key, tuple) else key
        return {"video": self.clip.clone(), "label": index % self.num_classes, "index": index, "path": "memory"}


class InMemoryData(VideoClassificationData):
    """The datamodule (collate, GPU augmentation, loader settings) with its train dataset in memory, shaped as the
    CPU transform leaves clips (short side x short side, before the GPU crop)."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        cfg, n = self.data_config, len(self.datasets["train"])
        self.datasets["train"] = InMemoryClips(n, (cfg.num_frames, 3, cfg.short_side, cfg.short_side),
                                               self.num_classes)


def model_only_training(args: argparse.Namespace, model: VideoClassifier, clips_per_step: int) -> dict[str, Any]:
    """Clips/s of training ``model`` on in-memory clips (one loader worker suffices: nothing to decode)."""
    labels = training.LABELS
    samples = [VideoSample(f"memory{i}", i % len(labels)) for i in range(clips_per_step)]
    dm = InMemoryData(train=samples, labels=labels, batch_size=clips_per_step, num_workers=min(4, os.cpu_count() or 1))
    # as many steps timed as a row with steps per epoch times: over 19 steps the H200's model-only step read 0.102 s
    # where the rows' GPU-bound steps read 0.098 over 73, and rows came out above 1
    rows = args.epochs * max((s for s in getattr(args, "steps_per_epoch", None) or [] if s), default=0)
    return training.measure(args, model, dm, videos_per_step=clips_per_step, clips_per_step=clips_per_step,
                            from_files=False, timed_steps=rows)


def model_only_inference(model: VideoClassifier, batch_size: int, batches: int, device: str | None = None
                         ) -> dict[str, Any]:
    """Clips/s of ``model``'s forward pass on in-memory uint8 clips, as ``predict`` runs it (inference mode, bf16
    autocast on a GPU): the most files/s one clip per file can reach."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = model.data_config
    model = model.to(dev).eval()
    video = torch.randint(0, 256, (batch_size, cfg.num_frames, 3, cfg.crop_size, cfg.crop_size), dtype=torch.uint8,
                          device=dev)
    reset_peak_memory(dev)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        for _ in range(2):
            model(video)
        sync()
        t = time.perf_counter()
        for _ in range(batches):
            model(video)
        sync()
    dt = time.perf_counter() - t
    return {"clips_per_s": round(batches * batch_size / dt, 2), "batch_size": batch_size, "batches": batches,
            "device": str(dev), "peak_mem_gib": peak_memory_gib(dev)}

