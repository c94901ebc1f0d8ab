"""A small demo dataset of real encoded videos whose class is decided by motion, not by any single frame.

Every video shows the same kind of object (a textured disc with a bar through it) at a random place, angle and
colour over a random background, so one frame of any class looks like one frame of any other: a model has to
compare frames to tell the direction of travel, the sense of rotation, the speed or the periodicity.
Files alternate between H.264 MP4 and MPEG-4 Part 2 AVI so both containers are exercised.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

#: motion name -> (dx per frame in units of size, rotation in radians per frame, oscillation period in frames)
MOTIONS: dict[str, tuple[float, float, float]] = {
    "left": (-0.035, 0.0, 0.0),
    "right": (0.035, 0.0, 0.0),
    "clockwise": (0.0, 0.30, 0.0),
    "counterclockwise": (0.0, -0.30, 0.0),
    "fast_right": (0.09, 0.0, 0.0),
    "bounce": (0.05, 0.0, 8.0),
}
DEFAULT_MOTIONS: tuple[str, ...] = ("left", "right", "clockwise", "counterclockwise")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    coarse = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    ys = np.linspace(0, coarse.shape[0] - 1.001, h)
    xs = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    top = c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx
    bottom = c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy) * 0.6


def render_motion(motion: str, num_frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames of one demo video."""
    dx, spin, period = MOTIONS[motion]
    bg = _background(rng, height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = min(height, width) * rng.uniform(0.16, 0.22)
    color = rng.uniform(120, 255, 3)
    x0, y0 = rng.uniform(0, width), rng.uniform(radius, height - radius)
    angle0 = rng.uniform(0, 2 * math.pi)
    speed = rng.uniform(0.85, 1.15)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        if period:
            x = x0 + dx * width * speed * period / (2 * math.pi) * math.sin(2 * math.pi * t / period)
        else:
            x = x0 + dx * width * speed * t
        x %= width
        angle = angle0 + spin * speed * t
        ddx = (xx - x + width / 2) % width - width / 2  # wrap around the frame edges
        ddy = yy - y0
        disc = ddx**2 + ddy**2 <= radius**2
        # the bar through the disc shows its orientation
        along = ddx * math.cos(angle) + ddy * math.sin(angle)
        across = -ddx * math.sin(angle) + ddy * math.cos(angle)
        bar = disc & (np.abs(across) < radius * 0.22) & (along > -radius * 0.2)
        img = bg.copy()
        img[disc] = color
        img[bar] = color * 0.25
        img += rng.normal(0, 4, img.shape)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: float = 15.0) -> None:
    """Encode ``(T, H, W, 3)`` uint8 frames: H.264 for .mp4/.mkv/.mov, MPEG-4 Part 2 for .avi, VP9 for .webm."""
    import av

    codec = {".avi": "mpeg4", ".webm": "libvpx-vp9"}.get(Path(path).suffix.lower(), "libx264")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=round(fps) if float(fps).is_integer() else fps)
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
    width: int = 128,
    fps: float = 15.0,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val,test}/<motion>/demo_<motion>_gXX_cYY.{mp4,avi}`` and return ``root``.

    File names carry UCF101-style groups (``_gXX_``) so group-aware splitting has something to work with.
    Existing files are kept, so calling it twice is cheap.
    """
    unknown = sorted(set(motions) - set(MOTIONS))
    if unknown:
        raise ValueError(f"unknown demo motions {unknown}; choose from {sorted(MOTIONS)}")
    counts = videos_per_class or {"train": 24, "val": 8, "test": 8}
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for motion in motions:
            folder = root / split / motion
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                ext = ".mp4" if i % 2 == 0 else ".avi"
                path = folder / f"demo_{motion}_g{i // 4 + 1:02d}_c{i % 4 + 1:02d}{ext}"
                frames = render_motion(motion, num_frames, height, width, rng)  # drawn even if kept: same rng
                if not path.exists():
                    write_video(path, frames, fps)
    return root
