"""Kinetics-shaped synthetic footage at any resolution: ROOT/train/<class>/k_<class>_gXX_cYY.mp4, H.264 (libx264
through PyAV, x264's default GOP of 250 frames like web and phone video), textured panning background, moving
blocks and sensor noise, so decoding costs what real footage costs.

A copy of ``../shared/bench/make_synth_k720.py`` (same content at 1280x720, 30 fps, 10 s) with the size, length,
frame rate (NTSC rates as ``30000/1001`` or ``29.97``), GOP and quality (``--crf``: bitrate) as options, e.g.
1080p: ``--height 1080``; portrait: ``--width 720 --height 1280``. ``scripts/bench.py --sets synth:...`` makes its
synthetic footage sets with it.

    python scripts/make_synth_footage.py ROOT [--per-class 10] [--classes 12] [--height 720] [--seconds 10]
"""
from __future__ import annotations

import argparse
import math
import os
from fractions import Fraction
from multiprocessing import get_context

import av
import numpy as np


def frame_rate(fps: float | str | Fraction) -> Fraction:
    """``30``, ``"24"``, ``"30000/1001"``, or ``29.97`` (read as the NTSC rate 30000/1001, as cameras write it)."""
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, str) else Fraction(fps)
    ntsc = Fraction(round(float(rate) * 1.001) * 1000, 1001)
    return ntsc if rate.denominator != 1 and abs(float(rate - ntsc)) < 0.005 else rate


def write(job: tuple) -> str:
    path, k, seed, width, height, fps, seconds, gop, preset, codec, crf = job
    rng = np.random.default_rng(seed)
    cell = max(8, height // 45)  # 16 px cells at 720p, as make_synth_k720
    small = rng.integers(0, 255, (height // cell + 1, width // cell + 41, 3), dtype=np.uint8)
    bg = small.repeat(cell, 0).repeat(cell, 1)[:height]
    travel = bg.shape[1] - width
    block = max(8, height // 12)
    noise = [rng.integers(-6, 7, (height, width, 3), dtype=np.int16) for _ in range(4)]  # cheaper than per frame
    tmp = path + ".part" + os.path.splitext(path)[1]
    with av.open(tmp, "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            s.options = {"preset": preset, "crf": str(crf), **({"g": str(gop)} if gop else {})}
        else:  # mpeg4 (Xvid-like, UCF101-shaped AVIs)
            s.options = {"g": str(gop or 12)}
            s.bit_rate = int(800_000 * width * height / (320 * 240))
        s.thread_count = 1
        for t in range(int(float(fps) * seconds)):
            off = (t * 2 * height // 720) % max(travel, 1)
            f = bg[:, off:off + width].copy()
            ang = 2 * math.pi * t / 60 * (1 + k % 3)
            x = int(width / 2 + 0.23 * width * math.cos(ang * (1 if k % 2 else -1)))
            y = int(height / 2 + 0.28 * height * math.sin(ang))
            f[max(0, y - block):y + block, max(0, x - block):x + block] = (40 * k) % 255
            f = np.clip(f.astype(np.int16) + noise[t % 4], 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)
    return path


def make(root: str, per_class: int = 10, classes: int = 12, width: int | None = None, height: int = 720,
         fps: float | str | Fraction = 30, seconds: float = 10, gop: int | None = None, preset: str = "veryfast",
         workers: int | None = None, split: str = "train", codec: str = "libx264", crf: int = 23) -> list[str]:
    width = width or round(height * 16 / 9 / 2) * 2
    fps = frame_rate(fps)
    jobs = []
    for k in range(classes):
        d = os.path.join(root, split, f"class{k:02d}")
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            ext = ".mp4" if codec == "libx264" else ".avi"
            p = os.path.join(d, f"k_class{k:02d}_g{i // 4 + 1:02d}_c{i % 4 + 1:02d}{ext}")
            if not os.path.exists(p):
                jobs.append((p, k, k * 1000 + i, width, height, fps, seconds, gop, preset, codec, crf))
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        return [write(job) for job in jobs]
    # spawned, not forked: the caller (the bench tool, a test) may hold torch's OpenMP threads, and a fork copies
    # their locks held (a forked pool hung CI after a training in the same process)
    with get_context("spawn").Pool(workers) as pool:
        return pool.map(write, jobs, chunksize=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--classes", type=int, default=12)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--width", type=int, default=None, help="default: 16:9")
    p.add_argument("--fps", default="30", help="frame rate: 24, 25, 30, 60, 29.97 or 30000/1001...")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--gop", type=int, default=None, help="keyframe interval; default x264's 250")
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--split", default="train")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--codec", default="libx264", help="libx264 (.mp4) or mpeg4 (.avi, Xvid-like)")
    p.add_argument("--crf", type=int, default=23, help="libx264 quality: lower is a higher bitrate")
    a = p.parse_args()
    make(a.root, a.per_class, a.classes, a.width, a.height, a.fps, a.seconds, a.gop, a.preset, a.workers, a.split,
         a.codec, a.crf)


if __name__ == "__main__":
    main()
