"""GPU per-batch augmentation cost: flashvid's fused roi_align path vs Kornia's VideoSequential.

Times uint8 ``(B, T, 3, S, S)`` -> normalised random-resized-crop + flip at ``crop`` (the default training
augmentation), plus the pinned host-to-device copy of the uint8 batch, each with the GPU synchronised.

    python scripts/bench_augment.py --batch 32 --frames 16 --size 256 --crop 224 --out aug.json
"""

from __future__ import annotations

import argparse
import time

import torch

from flashvid.data.transforms import BatchAugmentation
from report import report  # scripts/report.py


def timed(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    host = torch.randint(0, 256, (a.batch, a.frames, 3, a.size, a.size), dtype=torch.uint8).pin_memory()
    video = host.cuda()
    mean, std = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
    result = {"args": vars(a), "gpu": torch.cuda.get_device_name(),
              "h2d_ms": round(1e3 * timed(lambda: host.cuda(non_blocking=True), a.repeats), 2)}
    for backend in ("fused", "kornia"):
        for jitter in (0.0, 0.4):
            aug = BatchAugmentation(mean, std, a.crop, train=True, backend=backend, color_jitter=jitter).cuda()
            cpu_t = time.perf_counter()
            aug(video)
            launch = time.perf_counter() - cpu_t  # host time to enqueue (the loader thread waits this long)
            result[f"{backend}_jitter{jitter}_ms"] = round(1e3 * timed(lambda: aug(video), a.repeats), 2)
            result[f"{backend}_jitter{jitter}_first_call_host_ms"] = round(1e3 * launch, 2)
    result["kornia_over_fused"] = round(result["kornia_jitter0.0_ms"] / result["fused_jitter0.0_ms"], 2)
    report(result, a.out)


if __name__ == "__main__":
    main()
