"""A small demo dataset of real encoded videos whose class is decided by motion, not by any single frame.

Every video shows the same kind of object (a disc with a random smooth texture and a dark pointer from its centre
to its rim) at a random place, angle and colour over a random background, so one frame of any class looks like one
frame of any other: a model has to compare frames to tell the direction of travel, the sense of rotation, the
speed or the periodicity. The texture turns with the disc, so a rotation moves every pixel of the disc, not only
the pointer: tangential motion next to the disc's static rim is a local cue a tiny CNN can pick up.
Files alternate between H.264 MP4 and MPEG-4 Part 2 AVI so both containers are exercised.

Frames are square by default: a square view of the whole short side (how tiny_r2plus1d evaluates) then sees the
whole frame, so no disc can sit outside the view while the label depends on it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: motion name -> (dx per frame in units of width, rotation in radians per frame, oscillation period in frames)
MOTIONS: dict[str, tuple[float, float, float]] = {
    "left": (-0.035, 0.0, 0.0),
    "right": (0.035, 0.0, 0.0),
    "clockwise": (0.0, 0.2, 0.0),
    "counterclockwise": (0.0, -0.2, 0.0),
    "fast_right": (0.09, 0.0, 0.0),
    "bounce": (0.05, 0.0, 8.0),
}
DEFAULT_MOTIONS: tuple[str, ...] = ("left", "right", "clockwise", "counterclockwise")
#: videos per class and split: what scripts/train_demo.py is measured on (docs/benchmarks.md). More distinct
#: training videos teach the sense of rotation in fewer steps than more epochs over fewer videos.
DEFAULT_COUNTS: dict[str, int] = {"train": 64, "val": 16, "test": 16}


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, channels: int = 3) -> np.ndarray:
    """``(h, w, channels)`` float32 in [0, 256): uniform noise on a ``cell``-pixel grid, bilinearly upsampled."""
    coarse = rng.integers(0, 256, (h // cell + 2, w // cell + 2, channels)).astype(np.float32)
    ys = np.linspace(0, coarse.shape[0] - 1.001, h, dtype=np.float32)
    xs = np.linspace(0, coarse.shape[1] - 1.001, w, dtype=np.float32)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def render_motion(motion: str, num_frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames of one demo video.

    Only the disc's bounding box is redrawn per frame (the background is static): about 20 ms of CPU for 32 frames
    of 96x96, less than encoding them.
    """
    dx, spin, period = MOTIONS[motion]
    size = min(height, width)
    bg = _smooth_noise(rng, height, width, 8) * 0.6
    radius = size * rng.uniform(0.2, 0.26)
    x0, y0 = rng.uniform(0, width), rng.uniform(radius, height - radius)
    angle0 = rng.uniform(0, 2 * math.pi)
    speed = rng.uniform(0.85, 1.15)

    # the disc's own picture, in disc coordinates: base colour + smooth texture, and a pointer centre -> rim
    r_tex = int(math.ceil(radius)) + 1
    n_tex = 2 * r_tex + 1
    color = rng.uniform(110, 230, 3).astype(np.float32)
    texture = color + (_smooth_noise(rng, n_tex, n_tex, max(n_tex // 5, 2)) - 128) * 0.45
    v, u = np.mgrid[-r_tex : r_tex + 1, -r_tex : r_tex + 1].astype(np.float32)
    pointer = (np.abs(v) < radius * 0.16) & (u > -radius * 0.1)
    texture[pointer] = color * 0.2

    # pixel offsets of the box around the disc; columns wrap around the frame's left and right edges
    offsets = np.arange(-r_tex, r_tex + 1)
    frames = np.repeat(bg[None], num_frames, axis=0)
    for t in range(num_frames):
        if period:
            x = x0 + dx * width * speed * period / (2 * math.pi) * math.sin(2 * math.pi * t / period)
        else:
            x = x0 + dx * width * speed * t
        x %= width
        angle = angle0 + spin * speed * t
        cx, cy = int(round(x)), int(round(y0))
        rows = np.clip(cy + offsets, 0, height - 1)
        cols = (cx + offsets) % width
        ddy = (rows - y0).astype(np.float32)[:, None]
        ddx = (cx + offsets - x).astype(np.float32)[None, :]
        inside = ddx**2 + ddy**2 <= radius**2
        # rotate the pixel offsets back into disc coordinates and look the texture up (nearest neighbour)
        c, s = math.cos(angle), math.sin(angle)
        tu = np.clip(np.rint(ddx * c + ddy * s).astype(int) + r_tex, 0, n_tex - 1)
        tv = np.clip(np.rint(-ddx * s + ddy * c).astype(int) + r_tex, 0, n_tex - 1)
        box = frames[t][rows[:, None], cols[None, :]]
        box[inside] = texture[tv, tu][inside]
        frames[t][rows[:, None], cols[None, :]] = box
    # sensor noise, uniform with std 4 (uniform draws are cheaper than normal ones)
    frames += (rng.random(frames.shape, dtype=np.float32) - 0.5) * (4.0 * math.sqrt(12))
    return np.clip(frames, 0, 255, out=frames).astype(np.uint8)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 15.0) -> None:
    """Encode ``(T, H, W, 3)`` uint8 frames: H.264 for .mp4/.mkv/.mov, MPEG-4 Part 2 for .avi, VP9 for .webm."""
    import av

    codec = {".avi": "mpeg4", ".webm": "libvpx-vp9"}.get(Path(path).suffix.lower(), "libx264")
    with av.open(str(path), mode="w") as container:
        # PyAV wants an int or a Fraction: 29.97 -> 30000/1001
        rate = round(fps) if float(fps).is_integer() else Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        elif codec == "mpeg4":
            stream.options = {"qscale": "3"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_demo_dataset(
    root: str | Path,
    motions: Sequence[str] = DEFAULT_MOTIONS,
    videos_per_class: dict[str, int] | None = None,
    num_frames: int = 32,
    height: int = 96,
    width: int = 96,
    fps: float = 15.0,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val,test}/<motion>/demo_<motion>_gXX_cYY.{mp4,avi}`` and return ``root``.

    File names carry UCF101-style groups (``_gXX_``) so group-aware splitting has something to work with.
    Each video has its own random stream, derived from (seed, split, motion, index): existing files are skipped
    without rendering, and adding a motion or raising a count leaves the other videos unchanged.
    """
    unknown = sorted(set(motions) - set(MOTIONS))
    if unknown:
        raise ValueError(f"unknown demo motions {unknown}; choose from {sorted(MOTIONS)}")
    counts = videos_per_class or DEFAULT_COUNTS
    root = Path(root)
    first_group = 1
    for split, n in counts.items():  # group numbers continue across splits: no recording is in two splits
        for motion in motions:
            folder = root / split / motion
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                ext = ".mp4" if i % 2 == 0 else ".avi"
                path = folder / f"demo_{motion}_g{first_group + i // 4:02d}_c{i % 4 + 1:02d}{ext}"
                if path.exists():
                    continue
                rng = np.random.default_rng([seed, zlib.crc32(split.encode()), zlib.crc32(motion.encode()), i])
                write_video(path, render_motion(motion, num_frames, height, width, rng), fps)
        first_group += (n + 3) // 4
    return root


def make_demo_sequence(path: str | Path, motions: Sequence[str] = ("left", "clockwise", "right"),
                       frames_each: int = 45, height: int = 96, width: int = 96, fps: float = 15.0,
                       seed: int = 0) -> list[tuple[str, float, float]]:
    """Write one untrimmed video that plays ``motions`` one after another (``frames_each`` frames each) and return
    the true ``(motion, start, end)`` spans in seconds: the input for a timeline (``predict window=...``)."""
    unknown = sorted(set(motions) - set(MOTIONS))
    if unknown:
        raise ValueError(f"unknown demo motions {unknown}; choose from {sorted(MOTIONS)}")
    parts = [render_motion(m, frames_each, height, width, np.random.default_rng([seed, i, zlib.crc32(m.encode())]))
             for i, m in enumerate(motions)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.concatenate(parts), fps)
    return [(m, i * frames_each / fps, (i + 1) * frames_each / fps) for i, m in enumerate(motions)]


DEMO_MARKER = ".flashvid-demo-complete"


def ensure_demo_data(root: str | os.PathLike = "demo_data", **generate: Any) -> Path:
    """Write the demo videos into ``root`` unless a complete set is there (a marker file, written last, says so)."""
    root = Path(root)
    if (root / DEMO_MARKER).is_file():
        return root
    log.info("flashvid: writing the demo videos into %s", root)
    make_demo_dataset(root, **generate)
    (root / DEMO_MARKER).write_text(json.dumps(generate, default=str) + "\n")
    return root
