"""Training-step speed and peak memory of backbones beside ``videomae_base``, in one process.

Each backbone runs full training steps (forward, cross entropy, backward, AdamW) on random clips of its own
registry clip (frames x crop), bf16 autocast on CUDA, random init (no weights needed). Printed: the baseline's
clips/s and peak memory, each backbone's ratio to it, then one ``RESULT {json}`` line (``--out`` writes it too).
Model-only: decoding and augmentation are left out (scripts/bench_train.py measures those).

    python scripts/measure_backbones.py --batch-size 16 --out backbones.json          # an H200
    python scripts/measure_backbones.py --tiny                                         # CPU smoke run, test sizes
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

import torch

from flashvid.models import create_backbone, get_backbone_spec


def report(result: dict[str, Any], out: str | None) -> None:
    """``RESULT {json}`` on stdout and the same JSON in ``out``."""
    print("RESULT", json.dumps(result), flush=True)
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)

BASELINE = "videomae_base"
NEW = ["vjepa2_vitl", "videoprism_base", "videoprism_large", "tsn_resnet50", "tsm_resnet50", "tsm_resnet18",
       "tsn_convnext_tiny"]


def timed_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, video: torch.Tensor, labels: torch.Tensor,
                steps: int, warmup: int) -> float:
    """Seconds that ``steps`` training steps take after ``warmup`` untimed ones."""
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


def measure(name: str, batch_size: int, steps: int, warmup: int, tiny: bool, device: torch.device) -> dict[str, Any]:
    spec = get_backbone_spec(name)
    kwargs = dict(spec.test_kwargs) if tiny else {}
    frames, size = spec.test_input if tiny else (spec.data.num_frames, spec.data.crop_size)
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=400, pretrained=False, **kwargs).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    video = torch.randn(batch_size, frames, 3, size, size, device=device)
    labels = torch.randint(0, 400, (batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    elapsed = timed_steps(model, opt, video, labels, steps, warmup)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    result = {"backbone": name, "frames": frames, "crop": size, "clip_sampling": spec.data.clip_sampling,
              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
              "clips_per_s": round(batch_size * steps / elapsed, 2), "peak_mem_gib": peak and round(peak, 2)}
    del model, opt, video
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=NEW, help=f"measured beside {BASELINE}")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="the registry's test sizes, batch 2, 2 steps (CPU smoke)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if a.tiny:
        a.batch_size, a.steps, a.warmup = 2, 2, 1
    rows = []
    for name in [BASELINE, *[b for b in a.backbones if b != BASELINE]]:
        try:
            rows.append(measure(name, a.batch_size, a.steps, a.warmup, a.tiny, device))
        except torch.cuda.OutOfMemoryError:
            rows.append({"backbone": name, "error": f"out of memory at batch {a.batch_size}"})
            torch.cuda.empty_cache()
    base = rows[0]
    print(f"baseline {BASELINE}: {base['clips_per_s']} clips/s, peak {base['peak_mem_gib'] or '-'} GiB "
          f"({base['frames']}x{base['crop']}, batch {a.batch_size}, {device})")
    for r in rows[1:]:
        if "error" in r:
            print(f"{r['backbone']:>18}: {r['error']}")
            continue
        r["speed_ratio"] = round(r["clips_per_s"] / base["clips_per_s"], 3)
        if r["peak_mem_gib"] and base["peak_mem_gib"]:
            r["memory_ratio"] = round(r["peak_mem_gib"] / base["peak_mem_gib"], 3)
        print(f"{r['backbone']:>18}: {r['clips_per_s']:8.2f} clips/s ({r['speed_ratio']:.2f}x), peak "
              f"{r['peak_mem_gib'] or '-'} GiB ({r.get('memory_ratio', '-')}x), {r['frames']}x{r['crop']}, "
              f"{r['params_m']} M params")
    report({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "batch_size": a.batch_size,
            "steps": a.steps, "tiny": a.tiny, "baseline": BASELINE, "rows": rows,
            "torch": torch.__version__}, a.out)


if __name__ == "__main__":
    main()
