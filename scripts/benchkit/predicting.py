"""``VideoClassifier.predict`` on a folder (one centre clip per file) after one warm-up pass (weights on the
device, page cache): files/s, whose cost per file is its open plus the seek and decode of one clip."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from flashvid import VideoClassifier

from .timing import peak_memory_gib, reset_peak_memory


def measure_folder(args: argparse.Namespace, model: VideoClassifier, folder: Path, workers: int | None,
                   decoder: str) -> dict[str, Any]:
    kw: dict[str, Any] = dict(batch_size=args.predict_batch_size, decoder=decoder)
    if workers is not None:
        kw["num_workers"] = workers
    model.predict(folder, **kw)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reset_peak_memory(device)
    t = time.perf_counter()
    res = model.predict(folder, **kw)
    dt = time.perf_counter() - t
    return {"files_per_s": round(len(res) / dt, 2), "files": len(res), "s": round(dt, 2),
            "errors": sum(r.get("error") is not None for r in res),
            "peak_mem_gib": peak_memory_gib(device)}
