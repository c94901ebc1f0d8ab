"""Inference throughput on video files: ``VideoClassifier.predict`` vs transformers' video-classification pipeline.

Both load the same VideoMAE checkpoint saved locally with ``save_pretrained`` (random weights: no hub here) and
classify the same files; the figure is files per second, end to end (decode, sample, preprocess, model).
Any other registered backbone (``--backbone x3d_xs``) is timed alone: the pipeline only knows transformers models.

    python scripts/bench_predict.py --root UCF_ROOT --workers 15 --out predict.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from typing import Any

import torch

from flashvid import VideoClassifier
from report import report  # scripts/report.py


def save_checkpoint(directory: str, backbone: str, num_labels: int) -> None:
    """A VideoMAE classifier and the tutorial's image processor, as a user would have them on disk."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

    sizes = {"videomae_small": dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536),
             "videomae_base": {}}[backbone]
    labels = {i: f"class_{i}" for i in range(num_labels)}
    cfg = VideoMAEConfig(num_labels=num_labels, id2label=labels, label2id={v: k for k, v in labels.items()}, **sizes)
    VideoMAEForVideoClassification(cfg).save_pretrained(directory)
    VideoMAEImageProcessor().save_pretrained(directory)


def bench_flashvid(ckpt: str | None, files: list[str], args: argparse.Namespace) -> dict[str, Any]:
    model = (VideoClassifier(ckpt, num_classes=args.num_labels, pretrained=True) if ckpt
             else VideoClassifier(args.backbone, num_classes=args.num_labels))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.predict(files[: args.batch_size], batch_size=args.batch_size, num_workers=0, device=device)  # warm-up
    t = time.perf_counter()
    results = model.predict(files, batch_size=args.batch_size, num_workers=args.workers, device=device)
    wall = time.perf_counter() - t
    return {"files": len(files), "ok": sum(r.get("error") is None for r in results), "wall_s": round(wall, 2),
            "files_per_s": round(len(files) / wall, 2)}


def bench_pipeline(ckpt: str, files: list[str], args: argparse.Namespace, dtype: torch.dtype,
                   batch_size: int) -> dict[str, Any]:
    from transformers import pipeline

    device = 0 if torch.cuda.is_available() else -1
    pipe = pipeline("video-classification", model=ckpt, device=device, dtype=dtype)
    pipe(files[:2], batch_size=batch_size)  # warm-up
    t = time.perf_counter()
    out = pipe(files, batch_size=batch_size, top_k=5)
    wall = time.perf_counter() - t
    return {"files": len(files), "ok": len(out), "dtype": str(dtype), "batch_size": batch_size,
            "wall_s": round(wall, 2), "files_per_s": round(len(files) / wall, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="folder searched recursively for .avi/.mp4 files")
    p.add_argument("--backbone", default="videomae_base", help="videomae_base/videomae_small are compared with "
                   "the pipeline; other registered names are timed alone")
    p.add_argument("--num-labels", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=min(15, (os.cpu_count() or 2) - 1))
    p.add_argument("--limit", type=int, default=None, help="use the first N files")
    p.add_argument("--pipeline-limit", type=int, default=None, help="files for the (slower) pipeline")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    files = sorted(glob.glob(f"{args.root}/**/*.avi", recursive=True) + glob.glob(f"{args.root}/**/*.mp4",
                                                                                    recursive=True))
    files = files[: args.limit] if args.limit else files
    result: dict[str, Any] = {"args": vars(args), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available()
                              else None}
    if not args.backbone.startswith("videomae_"):
        result["flashvid"] = bench_flashvid(None, files, args)
        report(result, args.out)
        return
    with tempfile.TemporaryDirectory() as ckpt:
        save_checkpoint(ckpt, args.backbone, args.num_labels)
        result["flashvid"] = bench_flashvid(ckpt, files, args)
        print("flashvid", json.dumps(result["flashvid"]), flush=True)
        pfiles = files[: args.pipeline_limit] if args.pipeline_limit else files
        result["pipeline_fp32_b1"] = bench_pipeline(ckpt, pfiles, args, torch.float32, 1)
        print("pipeline_fp32_b1", json.dumps(result["pipeline_fp32_b1"]), flush=True)
        if torch.cuda.is_available():
            result["pipeline_bf16_b8"] = bench_pipeline(ckpt, pfiles, args, torch.bfloat16, 8)
            print("pipeline_bf16_b8", json.dumps(result["pipeline_bf16_b8"]), flush=True)
    best = max(v["files_per_s"] for k, v in result.items() if k.startswith("pipeline"))
    result["flashvid_over_best_pipeline"] = round(result["flashvid"]["files_per_s"] / best, 2)
    report(result, args.out)


if __name__ == "__main__":
    main()
