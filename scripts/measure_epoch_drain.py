"""What epoch ends cost the training loader: clips/s with short (3-batch) vs long (39-batch) epochs, with the workers
draining at each epoch end (``continuous_epochs=False``, the old behaviour) and running on into the next epoch (the
default), and the wait for an epoch's first batch when workers build whole batches vs single clips (the batch then
assembled in the main process).

Loader only (nothing consumes the batches), on prepared files (``flashvid prepare`` of synthetic H.264 footage),
the same files in both epoch lengths: a long epoch lists each file 13 times. Prints one line per setting, the
baseline (drained, 39-batch epochs) and each setting's ratio to it; ``--out`` writes the figures as JSON.

    python scripts/measure_epoch_drain.py --out drain.json        # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from flashvid.data import VideoClassificationData, collate_clips, prepare
from flashvid.data.loader import EpochShuffleSampler

REPO = Path(__file__).resolve().parents[1]
NUM_FRAMES, SAMPLING_RATE, CROP = 16, 4, 112


def make_prepared(root: Path, files: int) -> Path:
    """``files`` synthetic 320x240 3 s clips in 4 classes, prepared for the clip settings below."""
    raw, out = root / "raw", root / "prepared"
    if not (out / "train").is_dir():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_synth_footage.py"), str(raw),
                        "--per-class", str(files // 4), "--classes", "4", "--height", "240", "--width", "320",
                        "--seconds", "3", "--workers", "2"], check=True, stdout=subprocess.DEVNULL)
        prepare(out, train_folder=raw / "train", short_side=128, progress=False, workers=2)
    return out / "train"


def datamodule(train: Path, batches: int, batch_size: int, workers: int, continuous: bool) -> VideoClassificationData:
    dm = VideoClassificationData.from_folders(
        train, num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, crop_size=CROP, batch_size=batch_size,
        num_workers=workers, pin_memory=False, seed=0, continuous_epochs=continuous, prefetch_factor=4)
    files = dm.samples["train"]
    wanted = batches * batch_size
    dm.samples["train"] = (files * -(-wanted // len(files)))[:wanted]  # the same files, listed as often as needed
    dm.setup("fit")
    return dm


def run_batches(dm: VideoClassificationData, total_batches: int) -> dict[str, Any]:
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
    return {"clips_per_s": round(clips / seconds, 1), "first_batch_wait_s": round(sum(first) / len(first), 3),
            "epochs": epoch, "batches": done, "seconds": round(seconds, 2)}


def _items(batch: Any) -> Any:
    return batch


def single_clip_first_batch(dm: VideoClassificationData, epochs: int, batch_size: int, workers: int) -> float:
    """Workers return single clips; the main process collates ``batch_size`` of them. The mean wait for an epoch's
    first batch with the workers drained at each epoch end (the question: does it come sooner than a whole-batch
    worker's?)."""
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
    return round(sum(waits) / len(waits), 3)


def measure(train: Path, workers: int, batch_size: int, total_batches: int, repeats: int) -> dict[str, Any]:
    """Each setting ``repeats`` times, the settings interleaved (a shared machine's load drifts); the median run."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(repeats):
        for continuous in (False, True):
            for per_epoch in (3, 39):
                key = f"{'continuous' if continuous else 'drained'}_{per_epoch}_batch_epochs"
                dm = datamodule(train, per_epoch, batch_size, workers, continuous)
                runs.setdefault(key, []).append(run_batches(dm, total_batches))
                print(f"{r} {key:34s} {runs[key][-1]}", flush=True)
    results: dict[str, Any] = {}
    for key, got in runs.items():
        results[key] = {**sorted(got, key=lambda x: x["clips_per_s"])[len(got) // 2],
                        "clips_per_s_runs": [x["clips_per_s"] for x in got]}
    dm = datamodule(train, 3, batch_size, workers, False)
    results["single_clip_workers_first_batch_wait_s"] = single_clip_first_batch(dm, 12, batch_size, workers)
    print(f"{'single-clip workers: first batch':34s} {results['single_clip_workers_first_batch_wait_s']} s "
          f"(whole-batch workers: {results['drained_3_batch_epochs']['first_batch_wait_s']} s)", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=None, help="where the footage is made and prepared (default: temp)")
    p.add_argument("--files", type=int, default=24, help="distinct files (default 24: one 3-batch epoch)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=117, help="batches timed per setting (default 117: 39 short "
                   "epochs or 3 long ones)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each setting, interleaved (default 3)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        train = make_prepared(args.root or Path(tmp), args.files)
        results = measure(train, args.workers, args.batch_size, args.batches, args.repeats)
    base = results["drained_39_batch_epochs"]["clips_per_s"]
    ratios = {k: round(v["clips_per_s"] / base, 3) for k, v in results.items() if isinstance(v, dict)}
    print(f"baseline (drained workers, 39-batch epochs): {base} clips/s")
    for key, ratio in ratios.items():
        print(f"  {key:34s} x{ratio}")
    out = {"what": "loader-only clips/s by epoch length, workers drained vs continuous across epoch ends "
                   "(median of the interleaved runs)",
           "workers": args.workers, "batch_size": args.batch_size, "files": args.files,
           "clip": {"num_frames": NUM_FRAMES, "sampling_rate": SAMPLING_RATE, "crop_size": CROP},
           "cpu_count": os.cpu_count(), "machine": platform.machine(), "baseline_clips_per_s": base,
           "ratios_to_baseline": ratios, "results": results}
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
