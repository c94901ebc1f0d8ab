"""One training measurement through the user's path (``VideoClassificationData`` + ``VideoClassifier`` +
``flashvid.Trainer``), shared by the model-only baseline and every end-to-end configuration, so both are timed
alike; one model per backbone per run, so VideoMAE compiles once."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from flashvid import Trainer, VideoClassificationData, VideoClassifier

from .timing import StepClock, peak_memory_gib, reset_peak_memory

LABELS = [str(i) for i in range(16)]  # every set's classes fit: one model (one compile) serves them all
# the pinned pool grew until step ~33 with 8 workers and ~30 with 10 (H200, first row of a process)
PINNED_WARMUP_STEPS_PER_WORKER = 4


def setup_torch(args: argparse.Namespace) -> None:
    """GPU defaults of ``trainer=gpu`` (bf16-mixed, TF32), compile VideoMAE on a GPU; the CPU smoke: fp32."""
    gpu = torch.cuda.is_available()
    args.accelerator = "gpu" if gpu else "cpu"
    if getattr(args, "precision", None) is None:
        args.precision = "bf16-mixed" if gpu else "32-true"
    if getattr(args, "compile", None) is None:
        args.compile = gpu
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


class Models:
    """One classifier per backbone for the whole run."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.models: dict[str, VideoClassifier] = {}

    def get(self, backbone: str) -> VideoClassifier:
        if backbone not in self.models:
            compile_ = bool(self.args.compile) and backbone.startswith("videomae")
            self.models[backbone] = VideoClassifier(backbone, labels=LABELS, learning_rate=1e-4, compile=compile_,
                                                    pretrained=False)
        return self.models[backbone]

    def release(self, backbone: str) -> None:
        """Drop a model that is done with, and the GPU memory it held."""
        self.models.pop(backbone, None)
        if torch.cuda.is_available():
            import gc

            gc.collect()
            torch.cuda.empty_cache()


def measure(args: argparse.Namespace, model: VideoClassifier, dm: VideoClassificationData, *, videos_per_step: int,
            clips_per_step: int, steps_per_epoch: int | None = None, from_files: bool = True,
            timed_steps: int = 0) -> dict[str, Any]:
    """Clips/s of ``trainer.fit`` on ``dm``. A loader delivers batches in rounds (each worker builds a whole batch):
    the warm-up covers the first round and the timed part at least one more. With ``steps_per_epoch`` the train list
    is cut or repeated to that many steps and ``--epochs`` epochs are timed whole (their boundaries are part of
    training); otherwise one epoch longer than the run. ``timed_steps``: time at least that many."""
    from .matrix import fit_epoch

    workers = dm.num_workers
    # the warm-up covers the workers' first round and, on a GPU, the pinned-memory pool's growth (timing.pinned_pool)
    rounds = PINNED_WARMUP_STEPS_PER_WORKER if torch.cuda.is_available() else 1
    warmup = max(args.warmup, rounds * workers + 1) if from_files else args.warmup
    min_timed = max(args.min_timed, workers, timed_steps) if from_files else max(args.min_timed, timed_steps)
    max_timed_s: float | None = args.max_timed_s
    if steps_per_epoch:
        min_timed = max(min_timed, args.epochs * steps_per_epoch)
        steps = warmup + min_timed
        max_timed_s = None
        dm.samples["train"] = fit_epoch(dm.samples["train"], steps_per_epoch, videos_per_step, exact=True)
    else:
        steps = warmup + max(args.steps, min_timed)
        dm.samples["train"] = fit_epoch(dm.samples["train"], steps + 2, videos_per_step, exact=False)
    clock = StepClock(warmup, min_timed, max_timed_s)
    trainer = Trainer(accelerator=args.accelerator, devices=1, precision=args.precision, max_steps=steps,
                      limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reset_peak_memory(device)
    t = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    res = clock.summary(clips_per_step)
    res.update(wall_s=round(time.perf_counter() - t, 1), steps=trainer.global_step, epochs=trainer.current_epoch,
               warmup_steps=warmup, workers=workers, batch_clips=clips_per_step, batch_videos=videos_per_step)
    peak = peak_memory_gib(device)
    if peak is not None:
        res["peak_mem_gb"] = peak
    trainer.fit_loop._combined_loader = None  # stop persistent loader workers now, not at garbage collection
    return res


def measure_config(args: argparse.Namespace, model: VideoClassifier, kw: dict[str, Any],
                   steps_per_epoch: int | None) -> dict[str, Any]:
    """End to end on one configuration's datamodule keywords (``--batch-size`` clips a step: videos x
    ``clips_per_video``, unless a data override sets ``batch_size``)."""
    kw = dict(kw)
    cpv = int(kw.get("clips_per_video", 1))
    videos = int(kw.pop("batch_size", max(1, args.batch_size // cpv)))
    dm = VideoClassificationData.from_folders(batch_size=videos, **kw)
    if len(dm.labels) > len(LABELS):
        raise ValueError(f"{len(dm.labels)} classes: the benchmark model has {len(LABELS)} outputs")
    return measure(args, model, dm, videos_per_step=videos, clips_per_step=videos * cpv,
                   steps_per_epoch=steps_per_epoch)
