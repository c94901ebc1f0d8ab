"""Frame store vs video copy: CPU ms per clip, MB per minute, PSNR by JPEG quality (baseline: the video copy).

Video copy vs JPEG frame store (``flashvid prepare`` format=video vs format=frames) on real footage (was
``scripts/measure_frame_store.py``; its ``--out``, the folder of the prepared copies, is ``--data`` here).

    python scripts/bench.py frame-store ../shared/realclips/kinetics400_doranlyong [--data /tmp/fs] [--clips 40]
    python scripts/bench.py frame-store SRC --qualities 75,85,90,95     # also the JPEG quality sweep

Prepares SRC (class folders) both ways once into ``--data`` (resumable: a second run reuses them), then records
disk cost (MB per minute of video), CPU time per 16-frame clip read (the training clip: 16 frames at stride 4 of
30 fps, random starts, one thread) for the video copy (the baseline), the store decoded here, and the store's JPEG
bytes alone (what a worker does when the GPU decodes), and the ratios. ``--qualities`` adds PSNR of each JPEG
quality and of the video copy (the baseline of that group) against the uncompressed frames both are made from.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from ..record import BenchError, Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", type=Path, help="class folders of real videos (used in place)")
    p.add_argument("--data", type=Path, default=Path("/tmp/flashvid_frame_store_measure"),
                   help="where both prepared copies are made and kept (default %(default)s)")
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--max-fps", type=float, default=15.0)
    p.add_argument("--jpeg-quality", type=int, default=None, help="the store's (default: prepare's)")
    p.add_argument("--clips", type=int, default=30, help="clip reads per file")
    p.add_argument("--qualities", default="", help="e.g. 75,85,90,95: add the JPEG quality sweep")


def run(args: argparse.Namespace, record: Record) -> None:
    import torch

    from flashvid.data.frame_store import FRAME_STORE_SUFFIX
    from flashvid.data.prepare import prepare
    from flashvid.data.sources import list_videos

    if not args.source.is_dir():
        raise BenchError(f"source {args.source}: not a folder (class folders of videos expected)")
    try:
        qualities = [int(q) for q in args.qualities.split(",") if q.strip()]
    except ValueError:
        raise BenchError(f"--qualities {args.qualities}: expected comma-separated integers, e.g. 75,85") from None
    torch.set_num_threads(1)
    out = Path(args.data)
    common = dict(train_folder=args.source, short_side=args.short_side, max_fps=args.max_fps, progress=False)
    extra = {"jpeg_quality": args.jpeg_quality} if args.jpeg_quality else {}
    video = prepare(out / "video", **common)
    store = prepare(out / "frames", format="frames", **common, **extra)
    # the video copy: prepare's .mp4 files and the files it kept as they were (already decode-friendly)
    videos, stores = sorted(list_videos(out / "video")), _files(out / "frames", FRAME_STORE_SUFFIX)
    if not videos or not stores:
        raise BenchError(f"source {args.source}: no videos prepared (class folders of videos expected)")
    minutes = _minutes(videos)
    mb_video = sum(os.path.getsize(f) for f in videos) / 1e6 / minutes
    mb_store = sum(os.path.getsize(f) for f in stores) / 1e6 / minutes
    record.put(source=str(args.source), files=len(videos), minutes=round(minutes, 2), short_side=args.short_side,
               max_fps=args.max_fps, jpeg_quality=args.jpeg_quality or "default",
               mb_per_min={"video": round(mb_video, 2), "frames": round(mb_store, 2)},
               disk_ratio=round(mb_store / mb_video, 2),
               prepare_seconds={"video": video.seconds, "frames": store.seconds})
    record.baseline("video copy", round(mb_video, 2), "MB/min", group="disk")
    record.row("frame store", round(mb_store, 2), "MB/min", group="disk")
    ms_video = _clip_ms(videos, args.clips, 0, "decode")
    record.baseline("video copy", round(ms_video, 2), "cpu ms/clip", group="cpu")
    ms_store = _clip_ms(stores, args.clips, 0, "decode")
    record.row("frame store, decoded here", round(ms_store, 2), "cpu ms/clip", group="cpu",
               speedup=round(ms_video / ms_store, 2))
    ms_bytes = _clip_ms(stores, args.clips, 0, "bytes")
    record.row("frame store, JPEG bytes only (GPU decodes)", round(ms_bytes, 3), "cpu ms/clip", group="cpu",
               speedup=round(ms_video / ms_bytes, 1))
    record.put(cpu_ms_per_clip={"video": round(ms_video, 2), "frames_decoded": round(ms_store, 2),
                                "frames_bytes_only": round(ms_bytes, 3)},
               ratio_decoded=round(ms_video / ms_store, 2), ratio_bytes_only=round(ms_video / ms_bytes, 1))
    if qualities:
        sources = list_videos(args.source)
        copies = {s: next(f for f in videos if Path(f).stem == Path(s).stem) for s in sources}
        sweep = quality_sweep(sources, copies, qualities, args.short_side, args.max_fps)
        record.put(quality_sweep=sweep)
        for name in sorted(sweep, key=lambda k: k != "video copy"):
            put = record.baseline if name == "video copy" else record.row
            put(name, sweep[name]["psnr"], "PSNR dB", group="quality", mb_per_min=sweep[name]["mb_per_min"])


def _files(folder: Path, suffix: str) -> list[str]:
    return sorted(str(p) for p in folder.rglob(f"*{suffix}"))


def _minutes(paths: list[str]) -> float:
    from flashvid.data.decoding import open_video

    total = 0.0
    for p in paths:
        r = open_video(p)
        total += r.info.num_frames / r.info.fps
        r.close()
    return total / 60


def _clip_ms(paths: list[str], clips: int, seed: int, what: str) -> float:
    """Median over files of the mean CPU ms per clip read (open, read, decode unless ``what == "bytes"``)."""
    import numpy as np

    from flashvid.data.decoding import open_video
    from flashvid.data.frame_store import FrameStoreReader
    from flashvid.data.sampling import ClipSampling

    sampling = ClipSampling(16, 4, target_fps=30.0)
    rng = random.Random(seed)
    per_file = []
    for p in paths:
        r = open_video(p)
        info = r.info
        r.close()
        plans = [sampling.clips(info.num_frames, info.fps, "random", rng=rng)[0] for _ in range(clips)]
        t0 = time.process_time()
        for idx in plans:
            reader = open_video(p)
            if what == "bytes":
                assert isinstance(reader, FrameStoreReader)
                reader.jpegs_at(idx)
            else:
                reader.frames_at(idx)
            reader.close()
        per_file.append((time.process_time() - t0) * 1000 / clips)
    return float(np.median(per_file))


def _reference_frames(src: str, short_side: int, max_fps: float) -> list[Any]:
    """The uncompressed frames a copy is made from: prepare's own rate cap, size and turn, no encoding."""
    from av.video.reformatter import VideoReformatter

    from flashvid.data.decoding import open_container
    from flashvid.data.prepare import _CappedFrames, _geometry, _upright

    out = []
    with open_container(src) as c:
        st = c.streams.video[0]
        fps = float(st.average_rate)
        w, h = st.codec_context.width, st.codec_context.height
        scaler = VideoReformatter()
        rotation, size = 0, (0, 0)
        for n, (_, frame) in enumerate(_CappedFrames(c, st, [], fps, min(fps, max_fps), None)):
            if n == 0:
                rotation, size = _geometry(frame, w, h, short_side)
            out.append(_upright(frame, rotation, size, scaler))
    return out


def _psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-9))


def quality_sweep(sources: list[str], video_copies: dict[str, str], qualities: list[int], short_side: int,
                  max_fps: float) -> dict[str, dict[str, float]]:
    """PSNR (dB, mean over frames) and MB/min of each JPEG quality and of the video copy."""
    import numpy as np
    import torch
    from torchvision.io import decode_jpeg

    from flashvid.data.decoding import open_video
    from flashvid.data.frame_store import encode_jpegs

    res: dict[str, dict[str, list[float]]] = {}
    for src in sources:
        ref = _reference_frames(src, short_side, max_fps)
        minutes = len(ref) / min(max_fps, open_video(src).info.fps) / 60
        for q in qualities:
            jpegs = encode_jpegs(ref, q)
            dec = [d.permute(1, 2, 0).numpy() for d in decode_jpeg([torch.frombuffer(bytearray(j), dtype=torch.uint8)
                                                                     for j in jpegs])]
            r = res.setdefault(f"jpeg q{q}", {"psnr": [], "mb_per_min": []})
            r["psnr"].append(float(np.mean([_psnr(a, b) for a, b in zip(ref, dec)])))
            r["mb_per_min"].append(sum(len(j) for j in jpegs) / 1e6 / minutes)
        copy = video_copies[src]
        reader = open_video(copy, "pyav")
        n = min(reader.info.num_frames, len(ref))
        dec = reader.frames_at(list(range(n))).permute(0, 2, 3, 1).numpy()
        reader.close()
        r = res.setdefault("video copy", {"psnr": [], "mb_per_min": []})
        r["psnr"].append(float(np.mean([_psnr(ref[i], dec[i]) for i in range(n)])))
        r["mb_per_min"].append(os.path.getsize(copy) / 1e6 / minutes)
    return {k: {m: round(float(np.mean(v)), 2) for m, v in d.items()} for k, d in res.items()}
