"""The Hugging Face tutorial's data pipeline (pytorchvideo ``Ucf101`` with seed_pipeline.py's transforms) beside
flashvid's train loader, timed alike: the ``tutorial-loader`` subcommand's measurements."""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

import flashvid  # noqa: F401  (before pytorchvideo: aliases torchvision.transforms.functional_tensor)
from flashvid.data import VideoClassificationData, collate_clips
from flashvid.data.decoding import open_video, resolve_decoder

NUM_FRAMES, SAMPLING_RATE, TARGET_FPS, CROP = 16, 4, 30, 224


# ---------------------------------------------------------------------------------------------------- pipelines
def flashvid_loader(train: Path, workers: int, batch_size: int, prefetch: int, decoder: str):
    dm = VideoClassificationData.from_folders(
        train, num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, target_fps=TARGET_FPS, crop_size=CROP,
        batch_size=batch_size, num_workers=workers, prefetch_factor=prefetch, persistent_workers=False,
        pin_memory=False, decoder=decoder, seed=0,
    )
    dm.setup("fit")
    return dm.train_dataloader(), dm


def seed_transforms() -> tuple[Callable[[dict], dict], tuple[list[float], list[float]]]:
    """The tutorial's train transform, as in seed_pipeline.py (VideoMAE-base defaults: 16 frames, 224, ImageNet
    mean/std), built the same way."""
    from pytorchvideo.transforms import ApplyTransformToKey, Normalize, RandomShortSideScale, UniformTemporalSubsample
    from torchvision.transforms import Compose, Lambda, RandomCrop, RandomHorizontalFlip
    from transformers import VideoMAEConfig, VideoMAEImageProcessor

    image_processor = VideoMAEImageProcessor()
    mean, std = image_processor.image_mean, image_processor.image_std
    h = w = image_processor.size.get("shortest_edge", 224)
    num_frames_to_sample = VideoMAEConfig().num_frames
    assert (h, num_frames_to_sample) == (CROP, NUM_FRAMES)
    transform = Compose([ApplyTransformToKey(key="video", transform=Compose([
        UniformTemporalSubsample(num_frames_to_sample), Lambda(lambda x: x / 255.0), Normalize(mean, std),
        RandomShortSideScale(min_size=256, max_size=320), RandomCrop((h, w)), RandomHorizontalFlip(p=0.5)]))])
    return transform, (mean, std)


def seed_collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """seed_pipeline.py's collate_fn."""
    pixel_values = torch.stack([e["video"].permute(1, 0, 2, 3) for e in examples])
    labels = torch.tensor([e["label"] for e in examples])
    return {"pixel_values": pixel_values, "labels": labels}


def pytorchvideo_loader(train: Path, workers: int, batch_size: int, prefetch: int):
    import pytorchvideo.data

    transform, _ = seed_transforms()
    clip_duration = NUM_FRAMES * SAMPLING_RATE / TARGET_FPS
    dataset = pytorchvideo.data.Ucf101(
        data_path=str(train), clip_sampler=pytorchvideo.data.make_clip_sampler("random", clip_duration),
        decode_audio=False, transform=transform, decoder="pyav",
    )
    kw = dict(prefetch_factor=prefetch) if workers else {}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                       collate_fn=seed_collate, **kw), None


# ---------------------------------------------------------------------------------------------------- timing
def clips_per_second(batches: Iterable[Any], warmup: int, count: int, batch_size: int,
                     after: Callable[[Any], Any] | None = None) -> float:
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(count):
        batch = next(it)
        if after is not None:
            after(batch)
    elapsed = time.perf_counter() - start
    del it
    return count * batch_size / elapsed


def measure(args: argparse.Namespace, train: Path) -> list[dict[str, Any]]:
    rows = []
    decoder = resolve_decoder(args.decoder)
    for workers in args.workers:
        runs: dict[str, list[float]] = {"flashvid": [], "pytorchvideo": []}
        for rep in range(args.repeats):  # alternate the pipelines so load from other processes hits both alike
            loader, dm = flashvid_loader(train, workers, args.batch_size, args.prefetch, decoder)
            after = None
            if args.gpu_aug_on_cpu:
                after = dm.batch_steps["train"]
            runs["flashvid"].append(clips_per_second(loader, args.warmup, args.batches, args.batch_size, after))
            loader, _ = pytorchvideo_loader(train, workers, args.batch_size, args.prefetch)
            runs["pytorchvideo"].append(clips_per_second(loader, args.warmup, args.batches, args.batch_size))
            print(f"  workers={workers} run {rep + 1}: flashvid {runs['flashvid'][-1]:.1f} clips/s, "
                  f"pytorchvideo {runs['pytorchvideo'][-1]:.1f} clips/s", flush=True)
        fv, pv = statistics.median(runs["flashvid"]), statistics.median(runs["pytorchvideo"])
        rows.append(dict(workers=workers, flashvid_clips_s=round(fv, 2), pytorchvideo_clips_s=round(pv, 2),
                         ratio=round(fv / pv, 2), runs=runs))
    return rows


def profile(train: Path, n: int, decoder: str) -> dict[str, dict[str, float]]:
    """Milliseconds per clip for each stage, single process, one thread, the same random files for both."""
    from pytorchvideo.data.encoded_video import EncodedVideo

    torch.set_num_threads(1)
    loader, dm = flashvid_loader(train, 0, 8, 2, decoder)
    ds = loader.dataset
    files = random.Random(0).sample([s.path for s in ds.samples], n)
    stages: dict[str, float] = {"open": 0.0, "decode": 0.0, "transform": 0.0}
    clips = []
    for k, path in enumerate(files):
        t0 = time.perf_counter()
        reader = open_video(path, ds.decoder)
        t1 = time.perf_counter()
        idx = ds.sampling.clips(reader.info.num_frames, reader.info.fps, "random", rng=random.Random(k))[0]
        frames = reader.frames_at(idx)
        reader.close()
        t2 = time.perf_counter()
        clips.append(ds.transform(frames))
        t3 = time.perf_counter()
        stages["open"] += t1 - t0
        stages["decode"] += t2 - t1
        stages["transform"] += t3 - t2
    t0 = time.perf_counter()
    for i in range(0, n - 7, 8):
        collate_clips([{"video": c, "label": 0, "index": 0, "path": ""} for c in clips[i:i + 8]])
    stages["collate"] = (time.perf_counter() - t0) / (n // 8) * 8
    steps = dm.batch_steps["train"]
    t0 = time.perf_counter()
    for i in range(0, n - 7, 8):
        steps({"video": torch.stack(clips[i:i + 8]), "label": torch.zeros(8, dtype=torch.long)})
    stages["gpu_aug_on_cpu"] = (time.perf_counter() - t0) / (n // 8) * 8
    out = {"flashvid": {k: round(v / n * 1000, 2) for k, v in stages.items()}}

    transform, _ = seed_transforms()
    clip_duration = NUM_FRAMES * SAMPLING_RATE / TARGET_FPS
    pstages = {"open": 0.0, "decode": 0.0, "transform": 0.0}
    pclips = []
    for k, path in enumerate(files):
        t0 = time.perf_counter()
        video = EncodedVideo.from_path(path, decode_audio=False, decoder="pyav")
        t1 = time.perf_counter()
        start = random.Random(k).uniform(0, max(float(video.duration) - clip_duration, 0))
        clip = video.get_clip(start, start + clip_duration)
        video.close()
        t2 = time.perf_counter()
        pclips.append(transform({"video": clip["video"], "label": 0}))
        t3 = time.perf_counter()
        pstages["open"] += t1 - t0
        pstages["decode"] += t2 - t1
        pstages["transform"] += t3 - t2
    t0 = time.perf_counter()
    for i in range(0, n - 7, 8):
        seed_collate(pclips[i:i + 8])
    pstages["collate"] = (time.perf_counter() - t0) / (n // 8) * 8
    out["pytorchvideo"] = {k: round(v / n * 1000, 2) for k, v in pstages.items()}
    return out


