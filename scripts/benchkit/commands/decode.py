"""CPU ms per training clip per decoding variant, against plain PyAV (baseline).

CPU cost of one training clip per decoding variant, against plain PyAV on the same files.

Per footage set: the same files and clips (16 frames at stride 4, random starts from (seed, round, index)) for
every variant, in one process, one decode thread unless stated; the variants alternate per round so load on a
shared machine hits them alike. CPU time (process_time) is the figure (robust to other jobs), wall time beside it
(the only meaningful one for the 2-thread variants). Baseline: plain PyAV (every frame from the keyframe).
Variants: the PyAV non-reference skip (data.skip_nonref), torchcodec, 2 decode threads, clips_per_video=2,
keyframe-aligned starts, and the same on a `flashvid prepare` copy (--prepare-spec); on the copy also the train
crop as training cuts it, with RGB made in the worker or left for the device (``data.color_convert``; the worker's
share, collation of a batch of 8 included: what a loader worker spends per clip).

    python scripts/bench.py decode --sets synth:720p,synth:ucf --items 6 --rounds 3
    python scripts/bench.py decode --root DIR/train --variants pyav,prepared_pyav_noskip,prepared_pyav
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from .. import footage
from ..record import BenchError, Record

# name -> (files: raw or prepared, dataset keywords)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "pyav": ("raw", dict(decoder="pyav", skip_nonref=False)),
    "pyav_skip_nonref": ("raw", dict(decoder="pyav")),
    "torchcodec": ("raw", dict(decoder="torchcodec")),
    "pyav_skip_2_threads": ("raw", dict(decoder="pyav", decode_threads=2)),
    "torchcodec_2_threads": ("raw", dict(decoder="torchcodec", decode_threads=2)),
    "pyav_skip_clips_per_video_2": ("raw", dict(decoder="pyav", clips_per_video=2)),
    "pyav_keyframe_aligned": ("raw", dict(decoder="pyav", keyframe_aligned=True)),
    "prepared_pyav": ("prepared", dict(decoder="pyav")),
    "prepared_pyav_noskip": ("prepared", dict(decoder="pyav", skip_nonref=False)),
    "prepared_torchcodec": ("prepared", dict(decoder="torchcodec")),
    "prepared_pyav_clips_per_video_2": ("prepared", dict(decoder="pyav", clips_per_video=2)),
    # the train crop as training cuts it (the backbone's short side), RGB made in the worker or on the device
    "prepared_pyav_train_crop": ("prepared", dict(decoder="pyav", crop=True)),
    "prepared_pyav_train_crop_device_rgb": ("prepared", dict(decoder="pyav", crop=True, color_convert="device")),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sets", default="synth:720p", help="footage sets as for train (default %(default)s)")
    p.add_argument("--root", type=Path, action="append", default=None,
                   help="a folder of videos (any depth) to measure instead of / besides --sets, repeatable")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list (default: all): " + ", ".join(VARIANTS))
    p.add_argument("--items", type=int, default=8, help="dataset items per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backbone", default="videomae_base", help="the prepared variants' copy is sized for it, as "
                   "the clips (16 frames at stride 4) are (default %(default)s)")
    p.add_argument("--prepare-spec", default="prepared", help="the prepared variants' copy: prepared (defaults) "
                   "or flashvid prepare overrides, e.g. 'format=frames'")
    footage.add_arguments(p, classes=2, per_class=1, prepare_workers=1)


def run(args: argparse.Namespace, record: Record) -> None:
    import torch

    from flashvid.data import decoding

    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise BenchError(f"--variants {bad[0]}: choose among {', '.join(VARIANTS)}")
    if "torchcodec" in " ".join(names) and not decoding.torchcodec_status()[0]:
        record.data["skipped"]["torchcodec"] = decoding.torchcodec_status()[1]
        names = [v for v in names if "torchcodec" not in v]
    torch.set_num_threads(1)
    sets = [footage.get(n, args) for n in (footage.resolve(args.sets, Path(args.shared)) if args.sets else [])]
    sets += [footage.FootageSet(str(r), r) for r in args.root or []]
    for fset in sets:
        record.step(f"decode {fset.name}", measure_set, args, record, fset, names)


def measure_set(args: argparse.Namespace, record: Record, fset: footage.FootageSet, names: list[str]) -> None:
    from flashvid.data import ClipSampling, RandomShortSideCrop, VideoSample
    from flashvid.data.clip_config import resolve_clip_config
    from flashvid.data.sources import list_videos
    from flashvid.models import backbone_clip_settings

    record.info(f"footage/{fset.name}", footage.describe(fset.train))
    files = {"raw": [VideoSample(f, 0) for f in list_videos(fset.train)]}
    if any(VARIANTS[n][0] == "prepared" for n in names):
        data, report = footage.prepared(fset, args.prepare_spec, args.backbone, args)
        record.info(f"prepare/{fset.name}/{args.prepare_spec}", report)
        files["prepared"] = [VideoSample(f, 0) for f in list_videos(data["train_folder"])]
    sampling = ClipSampling(16, 4)
    short = resolve_clip_config(backbone_clip_settings(args.backbone)).short_side
    crop = RandomShortSideCrop(short, short)
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name in names:
            which, kw = VARIANTS[name]
            samples = files[which]
            ds = _dataset(samples, sampling, r, kw, crop)
            c0, w0 = time.process_time(), time.perf_counter()
            _read_round(ds, name, len(samples), r, args.items)
            clips = args.items * kw.get("clips_per_video", 1)
            cpu.setdefault(name, []).append(1e3 * (time.process_time() - c0) / clips)
            wall.setdefault(name, []).append(1e3 * (time.perf_counter() - w0) / clips)
    decoded = {name: _frames_decoded(name, files[VARIANTS[name][0]], sampling, args.rounds, args.items)
               for name in names}
    base = "pyav" if "pyav" in cpu else names[0]
    record.baseline(base, round(statistics.median(cpu[base]), 1), "cpu ms/clip", group=fset.name,
                    wall_ms=round(statistics.median(wall[base]), 1), frames_decoded_per_clip=decoded[base])
    for name in names:
        if name != base:
            record.row(name, round(statistics.median(cpu[name]), 1), "cpu ms/clip", group=fset.name,
                       wall_ms=round(statistics.median(wall[name]), 1), frames_decoded_per_clip=decoded[name])


def _dataset(samples: list[Any], sampling: Any, r: int, kw: dict[str, Any], crop: Any) -> Any:
    from flashvid.data import VideoClipDataset

    kw = dict(kw)
    return VideoClipDataset(samples, sampling, crop if kw.pop("crop", False) else None, seed=r, **kw)


def _read_round(ds: Any, name: str, files: int, r: int, items: int) -> None:
    """Round ``r``'s clips of ``ds``: item ``i`` reads file ``i % files`` with the epoch ``r * 1000 + i``; with a
    transform (the train crop variants), collated in batches of 8 as a loader worker does."""
    from flashvid.data.dataset import collate_clips

    batch = []
    for i in range(items):
        item = ds[(i % files, r * 1000 + i)]
        if not isinstance(item, dict):
            raise RuntimeError(f"{name}: {item.path}: {item.reason}")
        batch.append(item)
        if ds.transform is not None and (len(batch) == 8 or i == items - 1):
            collate_clips(batch)
            batch = []


def _frames_decoded(name: str, samples: list[Any], sampling: Any, rounds: int, items: int) -> float | None:
    """Frames the PyAV reader's decoder returned per clip, over the timed clips again, outside the times: the
    cost in frames, which does not move with other jobs' load as CPU time does. None for torchcodec."""
    from flashvid.data import decoding

    kw = VARIANTS[name][1]
    if kw.get("decoder") != "pyav" or kw.get("crop"):  # the crop variants decode the frames prepared_pyav does
        return None
    count = 0
    plain = decoding.PyAVReader._decode_from

    def counting(self: Any, targets: Any) -> Any:
        nonlocal count
        for frame in plain(self, targets):
            count += 1
            yield frame

    decoding.PyAVReader._decode_from = counting  # type: ignore[method-assign]
    try:
        for r in range(rounds):
            _read_round(_dataset(samples, sampling, r, kw, None), name, len(samples), r, items)
    finally:
        decoding.PyAVReader._decode_from = plain  # type: ignore[method-assign]
    return round(count / (rounds * items * kw.get("clips_per_video", 1)), 2)
