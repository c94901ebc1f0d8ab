"""Per-batch GPU augmentation: flashvid's fused path against Kornia (baseline).

Per-batch GPU augmentation: flashvid's fused roi_align path against Kornia's VideoSequential (the baseline).

Times uint8 (B, T, 3, S, S) -> normalised random-resized-crop + flip at the crop size (the default training
augmentation), with and without colour jitter, plus the pinned host-to-device copy of the uint8 batch, the device
synchronised around each; on the CPU when there is no GPU (a smoke run).

    python scripts/bench.py augment --batch 32 --frames 16 --size 256 --crop 224
"""

from __future__ import annotations

import argparse

from ..record import Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--repeats", type=int, default=20)


def run(args: argparse.Namespace, record: Record) -> None:
    import time

    import torch

    from flashvid.data.transforms import BatchAugmentation

    from ..timing import repeat_time

    gpu = torch.cuda.is_available()
    host = torch.randint(0, 256, (args.batch, args.frames, 3, args.size, args.size), dtype=torch.uint8)
    if gpu:
        host = host.pin_memory()
        record.info("h2d_ms", round(1e3 * repeat_time(lambda: host.cuda(non_blocking=True), args.repeats), 2))
    video = host.cuda() if gpu else host
    mean, std = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
    for jitter in (0.0, 0.4):
        for backend in ("kornia", "fused"):
            aug = BatchAugmentation(mean, std, args.crop, train=True, backend=backend, color_jitter=jitter)
            aug = aug.to(video.device)
            t = time.perf_counter()
            aug(video)
            first = round(1e3 * (time.perf_counter() - t), 2)  # host time to enqueue: the loader thread waits this
            ms = round(1e3 * repeat_time(lambda a=aug: a(video), args.repeats), 2)
            if backend == "kornia":
                record.baseline(f"kornia jitter {jitter}", ms, "ms/batch", group=f"jitter {jitter}",
                                first_call_host_ms=first)
            else:
                record.row(f"fused jitter {jitter}", ms, "ms/batch", group=f"jitter {jitter}",
                           first_call_host_ms=first)
