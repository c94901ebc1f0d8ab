"""Loader clips/s with short vs long epochs, workers drained vs continuous (baseline: drained, 39-batch epochs).

What epoch ends cost the training loader (was ``scripts/measure_epoch_drain.py``): clips/s with short (3-batch) vs
long (39-batch) epochs, with the workers draining at each epoch end (``continuous_epochs=False``, the old
behaviour) and running on into the next epoch (the default), and the wait for an epoch's first batch when workers
build whole batches (the baseline of that group) vs single clips (the batch then assembled in the main process).

Loader only (nothing consumes the batches), on prepared files (``flashvid prepare`` of synthetic H.264 footage,
320x240, 3 s, 4 classes, made once under ``--root``; or ``--train``, class folders used as they are), the same
files in both epoch lengths: a long epoch lists each file 13 times. Each setting runs ``--repeats`` times,
interleaved (a shared machine's load drifts); the median run is the figure.

    python scripts/bench.py epochs --out OUT        # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..record import BenchError, Record

NUM_FRAMES, SAMPLING_RATE, CROP = 16, 4, 112
SETTINGS = [(continuous, per_epoch) for continuous in (False, True) for per_epoch in (3, 39)]
BASELINE = "drained_39_batch_epochs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=None, help="where the footage is made and prepared (default: temp)")
    p.add_argument("--train", type=Path, default=None,
                   help="class folders to read as they are instead of making footage (a smoke run)")
    p.add_argument("--files", type=int, default=24, help="distinct files (default 24: one 3-batch epoch)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=117, help="batches timed per setting (default 117: 39 short "
                   "epochs or 3 long ones)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each setting, interleaved (default 3)")


def run(args: argparse.Namespace, record: Record) -> None:
    import torch

    if args.workers < 1:
        raise BenchError("--workers must be at least 1 (epoch ends only cost worker processes)")
    torch.set_num_threads(1)
    record.put(what="loader-only clips/s by epoch length, workers drained vs continuous across epoch ends "
                    "(median of the interleaved runs)",
               workers=args.workers, batch_size=args.batch_size, files=args.files,
               clip={"num_frames": NUM_FRAMES, "sampling_rate": SAMPLING_RATE, "crop_size": CROP},
               cpu_count=os.cpu_count())  # the script's "machine" (the architecture) is the record's machine.arch
    with tempfile.TemporaryDirectory() as tmp:
        if args.train is not None:
            if not args.train.is_dir():
                raise BenchError(f"--train {args.train}: not a folder (class folders of videos expected)")
            train = args.train
        else:
            train = make_prepared(args.root or Path(tmp), args.files)
        record.put(train=str(args.train) if args.train is not None else "synthetic, prepared")
        results = measure(train, args, record)
    base = results[BASELINE]["clips_per_s"]
    ratios = {k: round(v["clips_per_s"] / base, 3) for k, v in results.items() if isinstance(v, dict)}
    record.put(baseline_clips_per_s=base, ratios_to_baseline=ratios, results=results)


def make_prepared(root: Path, files: int) -> Path:
    """``files`` synthetic 320x240 3 s clips in 4 classes, prepared for the clip settings below."""
    import make_synth_footage

    from flashvid.data import prepare

    raw, out = root / "raw", root / "prepared"
    if not (out / "train").is_dir():
        make_synth_footage.make(str(raw), per_class=max(1, files // 4), classes=4, width=320, height=240,
                                seconds=3, workers=2)
        prepare(out, train_folder=raw / "train", short_side=128, progress=False, workers=2)
    return out / "train"


def datamodule(train: Path, batches: int, batch_size: int, workers: int, continuous: bool) -> Any:
    from flashvid.data import VideoClassificationData

    dm = VideoClassificationData.from_folders(
        train, num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, crop_size=CROP, batch_size=batch_size,
        num_workers=workers, pin_memory=False, seed=0, continuous_epochs=continuous, prefetch_factor=4)
    files = dm.samples["train"]
    wanted = batches * batch_size
    dm.samples["train"] = (files * -(-wanted // len(files)))[:wanted]  # the same files, listed as often as needed
    dm.setup("fit")
    return dm


def run_batches(dm: Any, total_batches: int) -> dict[str, Any]:
    """Epoch after epoch until ``total_batches``: clips/s, and the mean wait for each epoch's first batch."""
    loader = dm.train_dataloader()
    first, clips, epoch, done = [], 0, 0, 0
    loader.sampler.set_epoch(epoch)
    batches = iter(loader)
    next(batches)  # worker start-up is not what is measured: the clock starts after the first batch
    start = time.perf_counter()
    for batch in batches:  # the rest of the first epoch
        clips += batch["video"].shape[0]
        done += 1
    while done < total_batches:
        epoch += 1
        loader.sampler.set_epoch(epoch)
        t = time.perf_counter()
        for n, batch in enumerate(loader):
            if n == 0:
                first.append(time.perf_counter() - t)
            clips += batch["video"].shape[0]
            done += 1
    seconds = time.perf_counter() - start
    return {"clips_per_s": round(clips / seconds, 1), "first_batch_wait_s": round(sum(first) / max(1, len(first)), 3),
            "epochs": epoch, "batches": done, "seconds": round(seconds, 2)}


def _items(batch: Any) -> Any:
    return batch


def single_clip_first_batch(dm: Any, epochs: int, batch_size: int, workers: int) -> float:
    """Workers return single clips; the main process collates ``batch_size`` of them. The mean wait for an epoch's
    first batch with the workers drained at each epoch end (the question: does it come sooner than a whole-batch
    worker's?)."""
    from torch.utils.data import DataLoader

    from flashvid.data import collate_clips
    from flashvid.data.loader import EpochShuffleSampler

    ds = dm.datasets["train"]
    sampler = EpochShuffleSampler(len(ds), seed=0)
    loader = DataLoader(ds, batch_size=None, sampler=sampler, num_workers=workers, collate_fn=_items,
                        persistent_workers=True, prefetch_factor=4 * batch_size)  # as many clips in flight
    waits = []
    for epoch in range(epochs + 1):
        sampler.set_epoch(epoch)
        t = time.perf_counter()
        items = []
        for item in loader:
            items.append(item)
            if len(items) == batch_size:
                collate_clips(items)
                if epoch > 0 and len(waits) < epoch:  # epoch 0 starts the workers
                    waits.append(time.perf_counter() - t)
                items = []
    return round(sum(waits) / max(1, len(waits)), 3)


def setting_name(continuous: bool, per_epoch: int) -> str:
    return f"{'continuous' if continuous else 'drained'}_{per_epoch}_batch_epochs"


def measure(train: Path, args: argparse.Namespace, record: Record) -> dict[str, Any]:
    """Each setting ``repeats`` times, the settings interleaved (a shared machine's load drifts); the median run
    (the baseline first, so every other setting prints its ratio to it)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.repeats):
        for continuous, per_epoch in SETTINGS:
            key = setting_name(continuous, per_epoch)
            dm = datamodule(train, per_epoch, args.batch_size, args.workers, continuous)
            runs.setdefault(key, []).append(run_batches(dm, args.batches))
            record.log(f"{r} {key:34s} {runs[key][-1]}")
    results: dict[str, Any] = {}
    for key, got in runs.items():
        results[key] = {**sorted(got, key=lambda x: x["clips_per_s"])[len(got) // 2],
                        "clips_per_s_runs": [x["clips_per_s"] for x in got]}
    for key in sorted(results, key=lambda k: k != BASELINE):
        rest = {k: v for k, v in results[key].items() if k != "clips_per_s"}
        put = record.baseline if key == BASELINE else record.row
        put(key, results[key]["clips_per_s"], "clips/s", group="loader", **rest)
    dm = datamodule(train, 3, args.batch_size, args.workers, False)
    single = single_clip_first_batch(dm, 12, args.batch_size, args.workers)
    results["single_clip_workers_first_batch_wait_s"] = single
    record.baseline("whole-batch workers (drained_3_batch_epochs)", results["drained_3_batch_epochs"]
                    ["first_batch_wait_s"], "s", group="first batch wait")
    record.row("single-clip workers", single, "s", group="first batch wait")
    return results
