"""NVDEC (FFmpeg's CUDA decoder through PyAV) against one CPU thread per process: clips/s and CPU per clip.

The question is whether a loader worker should hand H.264 decoding to the GPU's video engines. Per footage set
(``flashvid prepare`` copies by default, ``--files raw`` for the sources) and process count: every process reads
``--clips`` clips of ``--frames`` consecutive frames (22: a 16-frame clip of a copy with its lead-in) from random
starts, each clip a fresh open of its file as a loader worker's is, frames taken as their native planes (what the
planes path ships; NVDEC's come back as NV12 in host memory). Baseline: the CPU, one decode thread per process.
Rows: NVDEC with a CUDA context made at every open (PyAV's default), and with the device's primary context
(``primary_ctx=1``: made once per process). Without CUDA or NVDEC the rows are skipped with the reason; a decoder
that fell back to the CPU would show its frames as yuv420p, so no fallback is allowed.

    python scripts/bench.py nvdec --sets synth:bitrate_high,synth:720p --procs 1,8,16
    python scripts/bench.py nvdec --sets synth:720p --files raw --frames 64
"""

from __future__ import annotations

import argparse
import random
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .. import footage
from ..record import BenchError, Record

# mode -> av_hwdevice_ctx_create options (None: the CPU)
MODES: dict[str, dict[str, str] | None] = {"cpu": None, "nvdec": {}, "nvdec_primary_ctx": {"primary_ctx": "1"}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sets", default="synth:720p", help="footage sets as for train (default %(default)s)")
    p.add_argument("--files", choices=("prepared", "raw"), default="prepared",
                   help="the sets' flashvid prepare copies (default) or their source files")
    p.add_argument("--prepare-spec", default="prepared", help="the copies: prepared (defaults) or flashvid prepare "
                   "overrides")
    p.add_argument("--backbone", default="videomae_base", help="the copies are sized for it (default %(default)s)")
    p.add_argument("--procs", default="1,8", help="process counts, comma list (default %(default)s)")
    p.add_argument("--clips", type=int, default=20, help="clips each process reads (default %(default)s)")
    p.add_argument("--frames", type=int, default=22, help="consecutive frames a clip decodes (default %(default)s)")
    footage.add_arguments(p, classes=2, per_class=2)


def run(args: argparse.Namespace, record: Record) -> None:
    procs = [int(p) for p in args.procs.split(",") if p.strip()]
    if not procs or min(procs) < 1 or args.clips < 1 or args.frames < 1:
        raise BenchError("--procs, --clips and --frames must be positive")
    for name in footage.resolve(args.sets, Path(args.shared)):
        fset = footage.get(name, args)
        record.step(f"nvdec {name}", measure_set, args, record, fset, procs)


def measure_set(args: argparse.Namespace, record: Record, fset: footage.FootageSet, procs: list[int]) -> None:
    from flashvid.data.sources import list_videos

    folder = fset.train
    if args.files == "prepared":
        data, report = footage.prepared(fset, args.prepare_spec, args.backbone, args)
        record.info(f"prepare/{fset.name}/{args.prepare_spec}", report)
        folder = Path(data["train_folder"])
    files = list_videos(folder)
    record.info(f"footage/{fset.name}", footage.describe(folder))
    modes = [m for m in MODES if m == "cpu" or _usable(m, files[0], record)]
    for n in procs:
        group = f"{fset.name} {args.files} x{n}"
        for mode in modes:
            tasks = [(files, mode, args.clips, args.frames, seed) for seed in range(n)]
            with get_context("spawn").Pool(n) as pool:  # spawned: a CUDA context is not forked
                done = pool.map(_read_clips, tasks)
            cpu_ms = 1e3 * sum(d[0] for d in done) / (n * args.clips)
            wall = max(d[1] for d in done)
            frames = sum(d[2] for d in done)
            extra: dict[str, Any] = dict(cpu_ms_per_clip=round(cpu_ms, 1), frames_per_s=round(frames / wall),
                                         frames_per_clip=round(frames / (n * args.clips), 1),
                                         pixel_format=sorted({d[3] for d in done}))
            value = round(n * args.clips / wall, 1)
            if mode == "cpu":
                record.baseline("cpu, one thread per process", value, "clips/s", group=group, **extra)
            else:
                record.row(mode, value, "clips/s", group=group, **extra)


def _usable(mode: str, path: str, record: Record) -> bool:
    """Whether ``mode`` decodes here; why not goes to the record's skipped."""
    try:
        _clip(path, random.Random(0), _hwaccel(mode), 1)
        return True
    except Exception as e:  # noqa: BLE001  (no CUDA, no NVDEC, a driver refusing: each a reason to skip, recorded)
        record.data["skipped"][mode] = f"{type(e).__name__}: {e}"
        record.log(f"SKIP {mode}: {type(e).__name__}: {e}")
        return False


def _hwaccel(mode: str) -> Any:
    options = MODES[mode]
    if options is None:
        return None
    from av.codec.hwaccel import HWAccel

    return HWAccel(device_type="cuda", allow_software_fallback=False, options=options)


def _clip(path: str, rng: random.Random, hw: Any, frames: int) -> tuple[int, str]:
    """``frames`` consecutive frames from the keyframe before a random start, as native planes: (count, format)."""
    import av

    n, fmt = 0, ""
    with av.open(path, hwaccel=hw) as container:
        stream = container.streams.video[0]
        if hw is None:
            stream.thread_type, stream.thread_count = "SLICE", 1
        seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        start = rng.uniform(0, max(0.0, seconds - 2.0))
        container.seek(int(start / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            frame.to_ndarray()
            n, fmt = n + 1, frame.format.name
            if n >= frames:
                break
    return n, fmt


def _read_clips(task: tuple[list[str], str, int, int, int]) -> tuple[float, float, int, str]:
    """One process's share: (CPU seconds, wall seconds, frames, pixel format); its first clip (libraries, a CUDA
    context) is left off the clock."""
    files, mode, clips, frames, seed = task
    hw = _hwaccel(mode)
    rng = random.Random(seed)
    _clip(files[seed % len(files)], rng, hw, frames)
    c0, w0 = time.process_time(), time.perf_counter()
    decoded, fmt = 0, ""
    for i in range(clips):
        n, fmt = _clip(files[(seed * 7 + i) % len(files)], rng, hw, frames)
        decoded += n
    return time.process_time() - c0, time.perf_counter() - w0, decoded, fmt
