"""YUV planes from the loader workers, converted to RGB on the training device (``data.color_convert=device``).

A clip of a ``flashvid prepare`` copy costs a worker ~17 ms of CPU, and a fifth of that was swscale turning each
decoded 4:2:0 frame into RGB and stacking the frames (0.32 ms a 456x256 frame, against 0.05 ms for cutting the same
frame's crop out of its planes: dev box). With ``color_convert="device"`` the worker cuts each clip's crop out of
the Y, U and V planes (half the bytes of RGB) and converts nothing: its clip costs 31-38% less CPU (``bench.py
decode``'s train-crop variants; 44-49% on an H200 host), and on an H200 with 8 workers at 12 steps per epoch copies
trained at 0.95-1.02 of model-only on every set measured instead of 0.65-0.75 (docs/benchmarks.md). After the
transfer every clip of the batch is converted in one vectorised step on the device (1.8 ms a batch of 32 on the
H200), as swscale converts an unscaled 4:2:0 frame (each chroma sample covers 2x2 pixels; BT.601 or BT.709 by the
frame's tag, limited or full range). Each crop is the one the split's per-sample transform would cut, drawn from the
same seed, so a sample gets the same pixels either way (within the rounding of the conversion, tested).

Only plain crops of an even size, of frames already at the transform's size, qualify: training clips (one, or
``clips_per_video``) and single eval views of a prepared copy with the default transforms. A clip that needs
scaling, test views, a rotated phone video, another pixel format or colour matrix is decoded to RGB in the worker
as before.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

COLOR_CONVERT = ("workers", "device")

# AVColorSpace tags swscale reads as each matrix: BT.709, and BT.601 (unspecified is swscale's default, BT.601)
_BT709 = {1}
_BT601 = {2, 5, 6}
# (Kr, Kb) of each matrix (0: BT.601, 1: BT.709): R = Y + 2(1 - Kr) Cr, B = Y + 2(1 - Kb) Cb, G from the rest
_KRB = {0: (0.299, 0.114), 1: (0.2126, 0.0722)}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


class NotPlanar(Exception):
    """A frame the device conversion does not cover: the worker converts this clip to RGB itself."""


class PlanarFrames:
    """A video's training clips (one, or ``clips_per_video``), each its own crop, as planes cut at even pixels so
    each chroma sample covers a 2x2 block of luma: ``y`` ``(N, T, S + 2, S + 2)`` from the even row and column at
    or before each crop's corner, ``uv`` ``(N, T, 2, S // 2 + 1, S // 2 + 1)`` the chroma samples of that block
    (edge-repeated past the frame); ``phases`` (dy, dx) per clip, where its crop starts within the block (0 or 1);
    ``matrix`` 0 (BT.601) or 1 (BT.709); ``full_range`` for JPEG-range frames."""

    __slots__ = ("y", "uv", "phases", "matrix", "full_range")

    def __init__(self, y: torch.Tensor, uv: torch.Tensor, phases: list[tuple[int, int]], matrix: int,
                 full_range: bool):
        self.y, self.uv, self.phases, self.matrix, self.full_range = y, uv, phases, matrix, full_range

    @property
    def rows(self) -> int:
        """Batch rows it becomes: one per clip."""
        return int(self.y.shape[0])


def _frame_colour(frame: Any) -> tuple[int, bool]:
    name = frame.format.name
    if name not in ("yuv420p", "yuvj420p") or (getattr(frame, "rotation", 0) or 0) % 360:
        raise NotPlanar(f"{name} frame, rotation {getattr(frame, 'rotation', 0)}")
    space = int(frame.colorspace)
    if space in _BT709:
        matrix = 1
    elif space in _BT601:
        matrix = 0
    else:
        raise NotPlanar(f"colour matrix {space}")
    return matrix, name == "yuvj420p" or int(frame.color_range) == _FULL_RANGE


def _plane(frame: Any, i: int) -> np.ndarray:
    plane = frame.planes[i]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[:, : plane.width]


def _cut_into(out: np.ndarray, plane: np.ndarray, top: int, left: int) -> None:
    """Fill ``out`` (n x n) with the window of ``plane`` at (top, left), its last row and column repeated past the
    edge. Slices, not ``np.pad``: a copy's 256 px crop always runs one row or column past its frame, and
    ``np.pad``'s ~50 us a call made 2.3 of a worker's 15.6 ms a clip (48 planes; dev box, cProfile)."""
    n = out.shape[0]
    c = plane[top : top + n, left : left + n]
    h, w = c.shape
    out[:h, :w] = c
    if w < n:
        out[:h, w:] = c[:, w - 1 : w]
    if h < n:
        out[h:] = out[h - 1 : h]


def planar_window(frame: Any, box: tuple[int, int, int], out: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """The planes of a decoded PyAV 4:2:0 frame around ``box`` (top, left, size) as :class:`PlanarFrames` holds
    them (written into ``out``, y ``(S+2, S+2)`` and uv ``(2, S/2+1, S/2+1)``, when given), its matrix and range.
    Copies the window only (0.05 ms a 256 px crop, against 0.32 ms converting the 456x256 frame to RGB and
    stacking it)."""
    matrix, full = _frame_colour(frame)
    top, left, size = box
    if size % 2 or top < 0 or left < 0 or top + size > frame.height or left + size > frame.width:
        raise NotPlanar(f"box {box} of {frame.width}x{frame.height} (an odd size, or outside)")
    n = size // 2 + 1
    y, uv = out if out is not None else (np.empty((2 * n, 2 * n), np.uint8), np.empty((2, n, n), np.uint8))
    _cut_into(y, _plane(frame, 0), top - top % 2, left - left % 2)
    for k in (0, 1):
        _cut_into(uv[k], _plane(frame, k + 1), top // 2, left // 2)
    return y, uv, matrix, full


def clip_planes(frames: Sequence[Any], boxes: Sequence[tuple[int, int, int]], frames_per_clip: int
                ) -> PlanarFrames:
    """Decoded PyAV frames of ``len(boxes)`` clips in order (``frames_per_clip`` each; a frame two clips share is
    cut once per clip), clip ``c`` cut at ``boxes[c]``, written straight into the clips' arrays."""
    sizes = {size for _, _, size in boxes}
    if len(sizes) != 1:
        raise NotPlanar(f"crops of sizes {sorted(sizes)} in one video")
    n, half = len(boxes), sizes.pop() // 2 + 1
    if len(frames) != n * frames_per_clip:  # the arrays below are filled frame by frame: none may be left unset
        raise ValueError(f"{len(frames)} frames for {n} clips of {frames_per_clip}")
    y = np.empty((n * frames_per_clip, 2 * half, 2 * half), np.uint8)
    uv = np.empty((n * frames_per_clip, 2, half, half), np.uint8)
    tags = {planar_window(f, boxes[i // frames_per_clip], (y[i], uv[i]))[2:] for i, f in enumerate(frames)}
    if len(tags) != 1:
        raise NotPlanar("the colour tags change within the video")
    matrix, full = tags.pop()
    return PlanarFrames(torch.from_numpy(y).view(n, frames_per_clip, *y.shape[1:]),
                        torch.from_numpy(uv).view(n, frames_per_clip, *uv.shape[1:]),
                        [(top % 2, left % 2) for top, left, _ in boxes], matrix, full)


def coefficients(matrix: int, full_range: bool) -> tuple[float, ...]:
    """(luma gain, luma offset, Cr->R, Cb->G, Cr->G, Cb->B) of one clip's conversion: BT.601 or BT.709, limited
    (16-235 luma, 16-240 chroma) or full range."""
    kr, kb = _KRB[matrix]
    c = 1.0 if full_range else 255.0 / 224.0
    return (1.0 if full_range else 255.0 / 219.0, 0.0 if full_range else 16.0, 2 * (1 - kr) * c,
            -2 * kb * (1 - kb) / (1 - kr - kb) * c, -2 * kr * (1 - kr) / (1 - kr - kb) * c, 2 * (1 - kb) * c)


def yuv_to_rgb(y: torch.Tensor, uv: torch.Tensor, coeffs: torch.Tensor, phase: Sequence[tuple[int, int]]
               ) -> torch.Tensor:
    """Clips of planes (batched :class:`PlanarFrames` fields, ``coeffs`` ``(N, 6)`` from :func:`coefficients`)
    into uint8 RGB ``(N, T, 3, S, S)``, on their device; ``phase`` stays a Python list, so nothing waits for the
    device.

    Each chroma sample covers a 2x2 block of luma, as in swscale's unscaled conversion, so the chroma terms are
    computed at chroma resolution and broadcast over the blocks (no upsampled copy). Textbook BT.601/BT.709
    arithmetic, rounded: swscale's table-based conversion comes out about one level darker (max 3 apart, PSNR
    46 dB against it on copies, tested)."""
    n, t, s2 = y.shape[0], y.shape[1], y.shape[-1]
    h, size = s2 // 2, s2 - 2
    k = coeffs.view(n, 6, 1, 1, 1).unbind(1)  # each (N, 1, 1, 1)
    c = uv.float() - 128.0
    cb, cr = c[:, :, 0], c[:, :, 1]
    # + 0.5: the uint8 cast below truncates
    terms = torch.stack([k[2] * cr + 0.5, k[3] * cb + k[4] * cr + 0.5, k[5] * cb + 0.5], dim=2)
    luma = y.float().sub_(k[1]).mul_(k[0])
    rgb = luma.view(n, t, 1, h, 2, h, 2) + terms.view(n, t, 3, h, 1, h, 1)
    rgb = rgb.clamp_(0, 255).to(torch.uint8).view(n, t, 3, s2, s2)
    return torch.stack([rgb[i, :, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(phase)])


def planar_rgb(planes: PlanarFrames) -> torch.Tensor:
    """A video's clips as uint8 RGB ``(N, T, 3, S, S)`` where they are (what the device step makes of them)."""
    coeffs = torch.tensor([coefficients(planes.matrix, planes.full_range)] * planes.rows)
    return yuv_to_rgb(planes.y, planes.uv, coeffs, planes.phases)
