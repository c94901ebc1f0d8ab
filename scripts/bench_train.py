"""Training throughput of flashvid, end to end and model-only, in one process.

Both runs go through the user's path: ``VideoClassificationData`` + ``VideoClassifier`` + ``flashvid.Trainer``
with the ``trainer=gpu`` defaults (bf16-mixed, GPU Kornia augmentation). Model-only replaces decoding with an
in-memory dataset of uint8 clips of the same shape, so the ratio e2e / model-only says how much the data path
costs. Per step it records the time spent waiting for data (between one step's end and the next one's start,
which covers the loader, the host-to-device copy and the GPU augmentation).

    python scripts/bench_train.py --root UCF_ROOT --backbone videomae_base --batch-size 32 --compile --out r.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

import flashvid
from flashvid import Trainer, VideoClassificationData, VideoClassifier
from report import report  # scripts/report.py


class StepClock(Callback):
    """Per-step wall time and data-wait time, synchronised with the GPU at each step end."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def summary(self, batch_size: int, warmup: int) -> dict[str, Any]:
        ends, starts = self.ends[warmup:], self.starts[warmup:]
        n = len(ends) - 1
        total = ends[-1] - ends[0]
        waits = [starts[i + 1] - ends[i] for i in range(n)]
        return {
            "steps_timed": n,
            "clips_per_s": round(batch_size * n / total, 2),
            "step_s_median": round(statistics.median(b - a for a, b in zip(ends[:-1], ends[1:])), 4),
            "data_wait_fraction": round(sum(waits) / total, 4),
            "data_wait_s_median": round(statistics.median(waits), 4),
        }


class InMemoryClips(torch.utils.data.Dataset):
    """The same uint8 clip every time: the model-only reference with no decoding."""

    def __init__(self, length: int, shape: tuple[int, ...], num_classes: int):
        self.length, self.num_classes = length, num_classes
        self.clip = torch.randint(0, 256, shape, dtype=torch.uint8)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return {"video": self.clip.clone(), "label": index % self.num_classes, "index": index, "path": "mem"}


class InMemoryData(VideoClassificationData):
    """The datamodule with its train dataset swapped for :class:`InMemoryClips` of the CPU transform's shape."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        cfg, n = self.data_config, len(self.datasets["train"])
        shape = (cfg.num_frames, 3, cfg.short_side, cfg.short_side)
        self.datasets["train"] = InMemoryClips(n, shape, self.num_classes)


def matmul_tflops() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12


def forward_flops(model: VideoClassifier, shape: tuple[int, ...]) -> float:
    """FLOPs of one clip's forward pass, counted by PyTorch's FlopCounterMode (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, *shape, device="cuda")
    with FlopCounterMode(display=False) as counter, torch.no_grad(), torch.autocast("cuda", torch.bfloat16):
        model.backbone(x)
    return float(counter.get_total_flops())


def run(args: argparse.Namespace, model_only: bool) -> dict[str, Any]:
    torch._dynamo.reset()  # a second compiled model in one process otherwise hits dynamo's caches and runs eager
    data_cls = InMemoryData if model_only else VideoClassificationData
    dm = data_cls.from_folders(
        train_folder=f"{args.root}/train", batch_size=args.batch_size, num_workers=args.workers,
        decoder=args.decoder, augmentation=dict(color_jitter=args.color_jitter),
    )
    # The synthetic folder has ~300 train clips (9 steps of 32): listing it --repeat times gives a realistic
    # epoch length, so epoch-boundary worker restarts do not dominate the timing.
    dm.samples["train"] = dm.samples["train"] * args.repeat
    model = VideoClassifier(args.backbone, labels=dm.labels, learning_rate=args.lr, compile=args.compile,
                            activation_checkpointing=args.activation_checkpointing,
                            channels_last=args.channels_last)
    cfg = model.data_config
    clock = StepClock()
    trainer = Trainer(accelerator=args.accelerator, devices=args.devices, strategy=args.strategy, precision=args.precision, max_steps=args.steps,
                      limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[clock])
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    wall = time.perf_counter() - t0
    out = clock.summary(args.batch_size * trainer.world_size, args.warmup)  # global clips/s under DDP
    out["world_size"] = trainer.world_size
    out.update(wall_s=round(wall, 1))
    if gpu:
        out["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if model_only and gpu:
        out["fwd_gflops_per_clip"] = round(forward_flops(model.cuda(), (cfg.num_frames, 3, cfg.crop_size,
                                                                        cfg.crop_size)) / 1e9, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="UCF101-shaped folder with train/<class>/*.avi")
    p.add_argument("--backbone", default="videomae_base")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=15, help="steps excluded from timing (compile, worker start)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--repeat", type=int, default=10, help="list the train files this many times per epoch")
    p.add_argument("--decoder", default="auto")
    p.add_argument("--precision", default="bf16-mixed")
    p.add_argument("--accelerator", default="gpu", help="cpu only to smoke-test this script")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="ddp for several GPUs (clips/s is then global)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--color-jitter", type=float, default=0.0)
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--skip-model-only", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    gpu = torch.cuda.is_available()
    result: dict[str, Any] = {"args": vars(args), "flashvid": flashvid.__version__, "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name() if gpu else None,
                              "bf16_matmul_tflops": round(matmul_tflops(), 1) if gpu else None}
    from flashvid.data.decoding import resolve_decoder

    result["decoder"] = resolve_decoder(args.decoder)
    if not args.skip_model_only:
        result["model_only"] = run(args, model_only=True)
        print("model_only", json.dumps(result["model_only"]), flush=True)
        mo = result["model_only"]
        if gpu:
                mo["mfu"] = round(mo["clips_per_s"] * 3 * mo["fwd_gflops_per_clip"] * 1e9
                              / (result["bf16_matmul_tflops"] * 1e12), 3)
    if not args.skip_e2e:
        result["e2e"] = run(args, model_only=False)
        print("e2e", json.dumps(result["e2e"]), flush=True)
    if "e2e" in result and "model_only" in result:
        result["e2e_over_model_only"] = round(result["e2e"]["clips_per_s"] / result["model_only"]["clips_per_s"], 3)
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return  # DDP re-runs this script per GPU: rank 0 reports
    report(result, args.out)


if __name__ == "__main__":
    main()
