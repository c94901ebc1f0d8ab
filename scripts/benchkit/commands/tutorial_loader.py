"""flashvid's train loader against the HF tutorial's pytorchvideo loader (baseline).

flashvid's train loader against the Hugging Face tutorial's (pytorchvideo Ucf101 + its transforms, the
baseline) on the same UCF101-shaped folder, per loader worker count, in one run.

Both pipelines train-sample 16 frames at sampling rate 4 (30 fps reference) and end at 224 px crops:

* flashvid: VideoClassificationData.from_folders' train loader (decode + resize the short side to 256-320 +
  random 256 px crop, uint8). Its float conversion, normalisation, random resized crop to 224 and flip run later,
  per batch, on the GPU (BatchAugmentation); --gpu-aug-on-cpu adds them to this measurement on the CPU.
* pytorchvideo 0.1.5: pytorchvideo.data.Ucf101 (PyAV) with ../shared/bench/seed_pipeline.py's transforms
  (UniformTemporalSubsample, /255, Normalize, RandomShortSideScale(256, 320), RandomCrop(224), flip) and collate.

Each measurement skips --warmup batches (worker start-up, first opens), then times --batches batches of
--batch-size clips with nothing else consuming them: clips/s is the loader's production rate. --profile adds a
single-process breakdown (open, decode, transform, collate) per clip. Needs pytorchvideo (not on the GPU machine).

    python ../shared/bench/make_synth_ucf.py /tmp/ucf         # needs opencv-python-headless
    python scripts/bench.py tutorial-loader --root /tmp/ucf --profile
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..record import BenchError, Record


# ---------------------------------------------------------------------------------------------------- main
def add_arguments(p: argparse.ArgumentParser) -> None:
    cores = os.cpu_count() or 1
    p.add_argument("--root", type=Path, required=True, help="UCF101-shaped folder (ROOT/train/<Class>/*.avi)")
    p.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")],
                   default=list(range(1, cores + 1)), help=f"comma-separated worker counts (default 1..{cores})")
    p.add_argument("--batch-size", type=int, default=8, help="the tutorial's batch size (default 8)")
    p.add_argument("--batches", type=int, default=8, help="timed batches per measurement (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="batches skipped before timing (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per worker count; median kept")
    p.add_argument("--prefetch", type=int, default=2, help="prefetch_factor for both loaders (default 2)")
    p.add_argument("--decoder", default="auto", choices=["auto", "torchcodec", "pyav"], help="flashvid decoder")
    p.add_argument("--gpu-aug-on-cpu", action="store_true",
                   help="also run flashvid's per-batch GPU augmentation on the CPU inside the timing")
    p.add_argument("--profile", type=int, nargs="?", const=32, default=0,
                   help="per-stage ms/clip breakdown over N clips, single process (default N=32)")


def run(args: argparse.Namespace, record: Record) -> None:
    from flashvid.data.decoding import resolve_decoder

    from ..tutorial import CROP, NUM_FRAMES, SAMPLING_RATE, TARGET_FPS, measure, profile

    try:
        import pytorchvideo.data  # noqa: F401
    except ImportError:
        raise BenchError("tutorial-loader needs pytorchvideo (the baseline): pip install pytorchvideo") from None
    train = args.root / "train"
    if not train.is_dir():
        raise BenchError(f"--root {args.root}: no train/ folder; write one with "
                         f"`python ../shared/bench/make_synth_ucf.py {args.root}`")
    decoder = resolve_decoder(args.decoder)
    record.info("config", dict(num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, target_fps=TARGET_FPS, crop=CROP,
                               flashvid_decoder=decoder, videos=sum(1 for _ in train.glob("*/*.avi"))))
    for r in measure(args, train):
        group = f"workers {r['workers']}"
        record.baseline("pytorchvideo (tutorial)", r["pytorchvideo_clips_s"], "clips/s", group=group,
                        runs=r["runs"]["pytorchvideo"])
        record.row("flashvid", r["flashvid_clips_s"], "clips/s", group=group, runs=r["runs"]["flashvid"])
    if args.profile:
        prof = profile(train, args.profile, decoder)
        record.info("profile_ms_per_clip", prof)
        for name, stages in prof.items():
            print(f"  {name:13s} " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
