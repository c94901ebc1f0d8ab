"""What one training clip costs a loader worker in CPU time (decode, resize, crop), measured on the user's files.

``flashvid doctor`` compares it with what the workers must deliver: a loader whose clips cost more than a frame
store's would starve a fast GPU, and then a frame store (``prepare.format=frames``) pays (docs/benchmarks.md,
issue 19: copies of high-bitrate or 60 fps synthetic 720p, ~20% dearer a clip than other copies, trained at
0.50-0.81 of model-only on an H200's 10 workers, their frame stores at 0.96-0.97; copies of real footage kept up,
and so do the high-bitrate copies since prepare caps a copy's bits per pixel).
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

# what the loader must deliver on one GPU: VideoMAE-base 16x224, compiled, bf16 on an H200 (docs/benchmarks.md)
GPU_CLIPS_PER_S = 300.0
# ... with this much to spare: workers busy most of the time fall behind at epoch ends and on slow clips. On the
# H200's cores a copy's clip costs ~20 ms with RGB made in the worker: 10 workers (~65% busy at 325 clips/s)
# trained at 0.87-0.98 of model-only, 8 (~80% busy) at 0.76-0.87 with 12 steps per epoch, where frame stores read
# 0.97-0.99 (issue 19). With RGB made on the GPU (data.color_convert=auto there) a clip costs 31-38% less and the
# same 8 workers trained those copies at 0.84-1.01, and at 0.95-1.02 on every set once the crop was cut by
# slicing (~13 ms a clip there): the measured clip says which case a machine is in
LOADER_HEADROOM = 1.5


@dataclass
class ClipCost:
    """CPU milliseconds of one training clip: as the files are (``video_ms``), and as a frame store of them would
    cost (``store_ms``: the clip's frames as JPEGs at the store's size, decoded), both measured on this machine."""

    video_ms: float
    store_ms: float
    files: int


def training_clip_cost(datamodule: Any, paths: Sequence[str], files: int = 8) -> ClipCost | None:
    """The median :class:`ClipCost` of one training clip of ``datamodule`` (its train transform, decoder and clip
    settings) over up to ``files`` of ``paths`` spread evenly; None when none decodes. CPU time of this process
    (``time.process_time``), so a busy machine does not inflate it; the first clip is a warm-up. Measured on one
    torch thread, as a loader worker runs (PyTorch sets its workers to one): with this process's default threads a
    clip of a 256p copy cost 141-157 ms against 25-29 ms on one, on a 2-core machine with other work."""
    if "train" not in datamodule.datasets:
        datamodule.setup("fit")
    dataset = _as_training_runs(datamodule, datamodule.datasets["train"])
    index = {s.path: i for i, s in enumerate(dataset.samples)}
    chosen = [p for p in paths if p in index]
    if not chosen:
        return None
    step = max(1, len(chosen) // files)
    picked = chosen[::step][:files]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _median_cost(dataset, [index[p] for p in picked], datamodule.data_config.short_side)
    finally:
        torch.set_num_threads(threads)


def _as_training_runs(datamodule: Any, dataset: Any) -> Any:
    """The train dataset as training on this machine runs it: with a GPU, ``color_convert=auto`` leaves the RGB
    conversion of copies to the device, and a worker's clip costs 31-38% less (a datamodule set up without a
    trainer converts in the workers)."""
    color_convert_on = getattr(datamodule, "color_convert_on", None)
    if color_convert_on is None:
        return dataset
    where = color_convert_on(torch.device("cuda") if torch.cuda.is_available() else None)
    if where == getattr(dataset, "color_convert", where):
        return dataset
    timed = copy.copy(dataset)
    timed.color_convert = where
    return timed


def _median_cost(dataset: Any, items: Sequence[int], short_side: int) -> ClipCost | None:
    """Median CPU ms of ``dataset[i]`` over ``items`` after a warm-up clip, and of a store's clip of the same."""
    from .dataset import DecodeFailure
    from .planar import PlanarFrames, planar_rgb

    dataset[items[0]]  # imports, decoder set-up, page cache: not a clip's cost
    video_ms, store_ms = [], []
    for i in items:
        t = time.process_time()
        item = dataset[i]
        if isinstance(item, DecodeFailure):
            continue
        video_ms.append((time.process_time() - t) * 1000)
        clip = item["video"]
        store_ms.append(_store_clip_ms(planar_rgb(clip) if isinstance(clip, PlanarFrames) else clip, short_side))
    if not video_ms:
        return None
    return ClipCost(round(statistics.median(video_ms), 1), round(statistics.median(store_ms), 1), len(video_ms))


def _store_clip_ms(clip: torch.Tensor, short_side: int) -> float:
    """A store's clip on this machine: the clip's frames as JPEGs (prepare's quality), decoded on the CPU as a worker
    does, scaled from the crop's pixels to a stored frame's (short side ``short_side``, 16:9: the larger case)."""
    from .frame_store import decode_jpegs, encode_jpegs

    frames = clip.reshape(-1, *clip.shape[-3:])
    if frames.dtype != torch.uint8:
        frames = frames.clamp(0, 255).to(torch.uint8)
    jpegs = [torch.frombuffer(bytearray(b), dtype=torch.uint8)
             for b in encode_jpegs([f.permute(1, 2, 0).numpy() for f in frames])]
    t = time.process_time()
    decode_jpegs(jpegs, "cpu")
    ms = (time.process_time() - t) * 1000
    stored_pixels = short_side * short_side * 16 / 9
    return ms * stored_pixels / (frames.shape[-1] * frames.shape[-2])


def loader_clips_per_s(clip_ms: float, workers: int) -> float:
    """Clips per second that ``workers`` loader processes deliver at ``clip_ms`` each."""
    return workers * 1000.0 / clip_ms


def store_advice(cost: ClipCost, workers: int, gpu_clips_per_s: float = GPU_CLIPS_PER_S) -> str | None:
    """The frame-store suggestion, when the workers cannot feed a fast GPU with :data:`LOADER_HEADROOM` to spare and
    a store's clip costs under half the video's (measured: stores won only there, docs/benchmarks.md); None
    otherwise."""
    workers = max(workers, 1)  # no workers: the training process loads, as one worker would
    feed = loader_clips_per_s(cost.video_ms, workers)
    if feed >= LOADER_HEADROOM * gpu_clips_per_s or cost.video_ms < 2 * cost.store_ms:
        return None
    deliver = "workers deliver" if workers != 1 else "worker delivers"
    return (f"a training clip of these files costs {cost.video_ms:.0f} ms of CPU to decode and crop (a frame store's "
            f"would cost ~{cost.store_ms:.0f} ms), so {workers} loader {deliver} at most {feed:.0f} clips/s, less "
            f"than {LOADER_HEADROOM:g}x what one fast GPU trains (~{gpu_clips_per_s:.0f}: VideoMAE-base on an H200; "
            "busier workers fall behind at epoch ends): train on a frame store, `flashvid prepare <the same data "
            "options> prepare.format=frames output=DIR` (README: which format to use)")
