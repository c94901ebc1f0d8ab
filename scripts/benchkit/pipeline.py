"""A second predict baseline: transformers' video-classification pipeline, on a VideoMAE checkpoint saved locally
(random weights: no hub download) and the same files, against ``VideoClassifier.predict`` on that checkpoint."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from .record import BenchError, Record

SIZES = {"videomae_small": dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536), "videomae_base": {}}


def save_checkpoint(directory: str, backbone: str, num_labels: int) -> None:
    """A VideoMAE classifier and the tutorial's image processor, as a user would have them on disk."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

    labels = {i: f"class_{i}" for i in range(num_labels)}
    cfg = VideoMAEConfig(num_labels=num_labels, id2label=labels,  # type: ignore[call-arg]
                         label2id={v: k for k, v in labels.items()},
                         **SIZES[backbone])
    VideoMAEForVideoClassification(cfg).save_pretrained(directory)
    VideoMAEImageProcessor().save_pretrained(directory)


def time_pipeline(ckpt: str, files: list[str], dtype: Any, batch_size: int) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    pipe = pipeline("video-classification", model=ckpt, device=0 if torch.cuda.is_available() else -1, dtype=dtype)
    pipe(files[:2], batch_size=batch_size)  # warm-up
    t = time.perf_counter()
    out = pipe(files, batch_size=batch_size, top_k=5)
    dt = time.perf_counter() - t
    return {"files_per_s": round(len(files) / dt, 2), "files": len(files), "ok": len(out), "s": round(dt, 2)}


def compare(args: argparse.Namespace, record: Record) -> None:
    """Per footage set: the pipeline (fp32 batch 1 as the tutorial runs it; bf16 batch 8 on a GPU) as the baseline
    and flashvid's predict of the same checkpoint, in the group ``<set> pipeline``."""
    import torch

    from flashvid import VideoClassifier
    from flashvid.data.sources import list_videos

    from . import footage, matrix
    from .predicting import measure_folder

    backbone = matrix.backbone_of(args.models.split(",")[0])
    if backbone not in SIZES:
        raise BenchError(f"--pipeline compares VideoMAE checkpoints: --model {' or '.join(SIZES)}")
    for name in footage.resolve(args.sets, Path(args.shared)):
        fset = footage.get(name, args)
        files = [str(f) for f in list_videos(fset.train)][: args.pipeline_limit]
        group = f"{name} pipeline"
        with tempfile.TemporaryDirectory() as ckpt:
            save_checkpoint(ckpt, backbone, 10)
            base = record.step(f"{group} fp32 b1", time_pipeline, ckpt, files, torch.float32, 1)
            if base:
                record.baseline("transformers pipeline fp32 b1", base.pop("files_per_s"), "files/s", group=group,
                                **base)
            if torch.cuda.is_available():
                res = record.step(f"{group} bf16 b8", time_pipeline, ckpt, files, torch.bfloat16, 8)
                if res:
                    record.row("transformers pipeline bf16 b8", res.pop("files_per_s"), "files/s", group=group, **res)
            model = VideoClassifier(ckpt, num_classes=10, pretrained=True)
            res = record.step(f"{group} flashvid", measure_folder, args, model, fset.train, args.workers[0],
                              args.decoder)
            if res:
                record.row("flashvid predict", res.pop("files_per_s"), "files/s", group=group, **res)
