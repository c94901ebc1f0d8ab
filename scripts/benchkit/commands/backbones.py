"""Training-step clips/s and peak memory per backbone, against videomae_base (baseline).

Training-step speed and peak memory of backbones beside ``videomae_base``, in one process (was
``scripts/measure_backbones.py``).

Each backbone runs full training steps (forward, cross entropy, backward, AdamW) on random clips of its own
registry clip (frames x crop), bf16 autocast on CUDA, random init (no weights needed). Printed: the baseline's
clips/s and peak memory, each backbone's ratio to it (``speed_ratio``, ``memory_ratio`` in each row of
OUT/backbones.json). Model-only: decoding and augmentation are left out (``bench.py train`` measures those).

    python scripts/bench.py backbones --batch-size 16 --out OUT          # an H200
    python scripts/bench.py backbones --tiny                             # CPU smoke run, test sizes
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from ..record import Record

BASELINE = "videomae_base"
NEW = ["vjepa2_vitl", "videoprism_base", "videoprism_large", "tsn_resnet50", "tsm_resnet50", "tsm_resnet18",
       "tsn_convnext_tiny"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbones", nargs="+", default=NEW, help=f"measured beside {BASELINE} (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="the registry's test sizes, batch 2, 2 steps (CPU smoke)")


def run(args: argparse.Namespace, record: Record) -> None:
    import torch

    from flashvid.models import list_backbones

    from ..record import BenchError

    for name in args.backbones:
        if name not in list_backbones():
            raise BenchError(f"--backbones {name}: not a registered backbone (`flashvid backbones` lists them)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny:
        args.batch_size, args.steps, args.warmup = 2, 2, 1
    record.put(device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu", batch_size=args.batch_size,
               steps=args.steps, tiny=args.tiny, baseline=BASELINE, torch=torch.__version__)
    base: dict[str, Any] | None = None
    for name in [BASELINE, *[b for b in args.backbones if b != BASELINE]]:
        r = record.step(name, measure_or_oom, name, args.batch_size, args.steps, args.warmup, args.tiny, device)
        if r is None:
            continue
        if "error" in r:
            record.data["errors"][name] = r["error"]
            record.log("ERROR", name, r["error"])
            continue
        clips, mem = r["clips_per_s"], r["peak_mem_gib"]
        if name == BASELINE:
            base = r
            record.baseline(name, clips, "clips/s", group="speed", **r)
            if mem:
                record.baseline(name, mem, "peak GiB", group="memory")
            continue
        if base is not None:
            r["speed_ratio"] = round(clips / base["clips_per_s"], 3)
            if mem and base["peak_mem_gib"]:
                r["memory_ratio"] = round(mem / base["peak_mem_gib"], 3)
        record.row(name, clips, "clips/s", group="speed", **r)
        if mem:
            record.row(name, mem, "peak GiB", group="memory")


def measure_or_oom(name: str, batch_size: int, steps: int, warmup: int, tiny: bool, device: Any) -> dict[str, Any]:
    """:func:`measure`, or the out-of-memory error as a result (the next backbone still runs)."""
    import torch

    try:
        return measure(name, batch_size, steps, warmup, tiny, device)
    except torch.cuda.OutOfMemoryError:
        gc.collect()
        torch.cuda.empty_cache()
        return {"backbone": name, "error": f"out of memory at batch {batch_size}"}


def timed_steps(model: Any, opt: Any, video: Any, labels: Any, steps: int, warmup: int) -> float:
    """Seconds that ``steps`` training steps take after ``warmup`` untimed ones."""
    import torch

    device = video.device

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(video).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(name: str, batch_size: int, steps: int, warmup: int, tiny: bool, device: Any) -> dict[str, Any]:
    import torch

    from flashvid.models import create_backbone, get_backbone_spec

    from ..timing import peak_memory_gib, reset_peak_memory

    spec = get_backbone_spec(name)
    kwargs = dict(spec.test_kwargs) if tiny else {}
    frames, size = spec.test_input if tiny else (spec.data.num_frames, spec.data.crop_size)
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=400, pretrained=False, **kwargs).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    video = torch.randn(batch_size, frames, 3, size, size, device=device)
    labels = torch.randint(0, 400, (batch_size,), device=device)
    reset_peak_memory(device)

    elapsed = timed_steps(model, opt, video, labels, steps, warmup)
    result = {"backbone": name, "frames": frames, "crop": size, "clip_sampling": spec.data.clip_sampling,
              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
              "clips_per_s": round(batch_size * steps / elapsed, 2), "peak_mem_gib": peak_memory_gib(device)}
    del model, opt, video
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result
