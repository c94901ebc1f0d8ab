"""Timelines: classify every window of a (long, untrimmed) video, streaming through the file in bounded memory.

A window of ``window`` seconds starts every ``stride`` seconds (plus one window flush with the end, so the whole
video is covered); each window is classified from ``clips_per_window`` of the model's own clips (its trained
frames and sampling rate) spread evenly inside it, their probabilities averaged as in multi-view testing.

Each file is read front to back by one reader: a batch of windows asks the decoder for the frames it needs, in
increasing order, and frames shared with the next batch (overlapping windows) are carried over, so memory holds one
batch of windows whatever the video's length, and no frame is decoded twice. With ``num_workers > 0`` the files
are spread over DataLoader workers, one file per worker at a time.

Per video the result holds the per-window top-k, the video's overall top-k (the mean of its windows'
probabilities) and ``segments``: maximal runs of windows whose top-1 label is the same and scores at least
``threshold``. Window k owns the time from the midpoint with its predecessor's centre to the midpoint with its
successor's, so segments tile the video without overlapping even when windows do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .data.decoding import FPS_RANGE, VideoDecodeError, VideoInfo, check_clip_size, decode_short_side, open_video
from .data.sampling import ClipSampling
from .data.sources import VideoSample

if TYPE_CHECKING:
    from matplotlib.figure import Figure


DECODE_CHUNK = 16  # full-resolution frames decoded at once
# Windows per file: a day of video at one window a second passes. Each window's result is kept until its file
# ends, and a sub-frame stride (stride=0.000001: 1.6 M windows of one 1.6 s file) ran 90 s at 1.2 GB.
MAX_WINDOWS = 100_000


class WindowPlanError(ValueError):
    """A window/stride that one file cannot be cut into (sub-frame stride, too many windows); the message says
    the fix. The file is reported with it, like an unreadable one, and the other files go on."""


def check_window_options(window: float, stride: float | None, clips_per_window: int = 1) -> None:
    """Refuse, before any file is opened, window settings that no video can use (one line naming the fix)."""
    if not window > 0:  # also NaN
        raise ValueError(f"window={window:g}: the length of each classified window must be > 0 seconds, e.g. window=2")
    if stride is not None and not stride > 0:
        raise ValueError(f"stride={stride:g}: the time between window starts must be > 0 seconds, e.g. "
                         f"stride={window / 2:g} (leave it out for stride=window)")
    fastest = 1 / FPS_RANGE[1]
    if stride is not None and stride < fastest:
        raise ValueError(f"stride={stride:g} s is shorter than one frame at any frame rate flashvid reads "
                         f"({fastest:g} s at {FPS_RANGE[1]:g} fps): windows would repeat the same frames; use at "
                         "least one frame of your videos (stride=0.04 at 25 fps)")
    if clips_per_window < 1:
        raise ValueError(f"clips_per_window={clips_per_window}: must be >= 1")


@dataclass(frozen=True)
class Window:
    """One window: its time span in seconds and the frame indices of its clip(s), ``clips x num_frames``."""

    start: float
    end: float
    indices: tuple[int, ...]

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


def plan_windows(info: VideoInfo, sampling: ClipSampling, window: float, stride: float,
                 clips_per_window: int = 1) -> list[Window]:
    """The windows of a video: one every ``stride`` seconds, and one ending at the video's end.

    Raises :class:`WindowPlanError` for a stride shorter than one of the video's frames (windows that repeat the
    same frames) and for more than :data:`MAX_WINDOWS` windows, before any frame is decoded.
    """
    check_window_options(window, stride, clips_per_window)
    fps, total = info.fps, info.num_frames
    duration = total / fps
    if stride * fps < 1 - 1e-6:
        raise WindowPlanError(f"stride={stride:g} s is shorter than one frame of this {fps:.4g} fps video "
                              f"({1 / fps:.4g} s): windows would repeat the same frames; use stride>={1 / fps:.4g}")
    window = min(window, duration)
    count = math.floor((duration - window) / stride + 1e-9) + 1
    if count > MAX_WINDOWS:
        raise WindowPlanError(f"window={window:g} s every stride={stride:g} s makes {count} windows of this "
                              f"{duration:.1f} s video, over the limit of {MAX_WINDOWS} per file: use "
                              f"stride>={duration / MAX_WINDOWS:.3g}")
    starts = [k * stride for k in range(count)]
    if starts[-1] + window < duration - 1e-6:
        starts.append(duration - window)
    span = sampling.span(fps)
    out = []
    for s in starts:
        if sampling.segments:  # segment sampling over the window itself: each clip one frame per segment of it
            first, frames = round(s * fps), max(round(window * fps), 1)
            clips = sampling.segment_clips(frames, "uniform", clips_per_window)
            indices = tuple(min(first + i, total - 1) for clip in clips for i in clip)
            out.append(Window(round(s, 6), round(s + window, 6), indices))
            continue
        room = max(window * fps - span, 0.0)
        clip_starts = [s * fps + room * (i + 0.5) / clips_per_window for i in range(clips_per_window)]
        indices = tuple(i for c in clip_starts for i in sampling.indices(c, fps, total))
        out.append(Window(round(s, 6), round(s + window, 6), indices))
    return out


class WindowStream(IterableDataset):
    """Yields batches of windows per file, ``{"file", "windows", "video", "last", "info"}``, or a failure record.

    ``video`` is uint8 ``(B, T, C, H, W)`` (``(B, V, T, C, H, W)`` with several clips per window) after the
    evaluation transform, which runs once per decoded frame (it is per-frame and deterministic).
    """

    def __init__(self, samples: Sequence[VideoSample], sampling: ClipSampling,
                 transform: Callable[[torch.Tensor], torch.Tensor], window: float, stride: float,
                 clips_per_window: int = 1, batch_size: int = 8, decoder: str = "auto", decode_threads: int = 1):
        self.samples = list(samples)
        self.sampling, self.transform = sampling, transform
        self.window, self.stride, self.clips_per_window = window, stride, clips_per_window
        self.batch_size, self.decoder, self.decode_threads = batch_size, decoder, decode_threads

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        mine = range(len(self.samples)) if worker is None else range(worker.id, len(self.samples), worker.num_workers)
        for i in mine:
            path = self.samples[i].path
            try:
                yield from self._file(i, path)
            except VideoDecodeError as e:
                yield {"file": i, "path": path, "error": e.reason}
            except WindowPlanError as e:
                yield {"file": i, "path": path, "error": str(e)}
            except Exception as e:  # noqa: BLE001  (one odd file must not stop the others)
                yield {"file": i, "path": path, "error": f"{type(e).__name__}: {e}"}

    def _file(self, i: int, path: str) -> Iterator[dict[str, Any]]:
        reader = open_video(path, self.decoder, num_threads=self.decode_threads)
        try:
            info = reader.info
            windows = plan_windows(info, self.sampling, self.window, self.stride, self.clips_per_window)
            # frames much larger than the transform's short side are scaled down while decoding
            short = decode_short_side(info, DECODE_CHUNK, getattr(self.transform, "decode_short_side", None))
            check_clip_size(path, info, DECODE_CHUNK, short)
            carried: dict[int, torch.Tensor] = {}  # transformed frames the next batch still needs
            n = self.sampling.num_frames
            for b in range(0, len(windows), self.batch_size):
                chunk = windows[b:b + self.batch_size]
                needed = sorted({j for w in chunk for j in w.indices})
                missing = [j for j in needed if j not in carried]
                frames = dict(carried)
                # full-size frames are held DECODE_CHUNK at a time, then shrunk by the transform: a batch of 16
                # windows x 8 frames at 1080p would otherwise hold 0.8 GB (measured: peak RSS 2.1 GB -> see
                # docs/benchmarks.md)
                for c in range(0, len(missing), DECODE_CHUNK):
                    part = missing[c:c + DECODE_CHUNK]
                    frames.update(zip(part, self.transform(reader.frames_at(part, short)).unbind(0), strict=True))
                clips = torch.stack([torch.stack([frames[j] for j in w.indices]) for w in chunk])
                if self.clips_per_window > 1:
                    clips = clips.unflatten(1, (self.clips_per_window, n))
                last = b + self.batch_size >= len(windows)
                nxt = windows[b + self.batch_size:b + 2 * self.batch_size]
                keep = {j for w in nxt for j in w.indices}
                carried = {j: f for j, f in frames.items() if j in keep}
                yield {"file": i, "path": path, "windows": chunk, "video": clips, "last": last,
                       "info": {"duration": info.duration, "fps": info.fps, "num_frames": info.num_frames,
                                "width": info.width, "height": info.height}}
        finally:
            reader.close()


def merge_segments(windows: Sequence[Mapping[str, Any]], threshold: float, duration: float) -> list[dict[str, Any]]:
    """Runs of consecutive windows with one top-1 label scoring >= ``threshold``, as ``{start, end, label, score}``
    (``score``: the run's mean top-1 score). Window k owns [midpoint with k-1, midpoint with k+1]."""
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    bounds = [0.0] + [(a + b) / 2 for a, b in pairwise(centres)] + [duration]
    segments: list[dict[str, Any]] = []
    run: list[int] = []

    def close() -> None:
        if run:
            scores = [windows[k]["score"] for k in run]
            segments.append({"start": round(bounds[run[0]], 6), "end": round(bounds[run[-1] + 1], 6),
                             "label": windows[run[0]]["label"], "score": sum(scores) / len(scores),
                             "windows": len(run)})
            run.clear()

    for k, w in enumerate(windows):
        if w["score"] < threshold:
            close()
            continue
        if run and windows[run[-1]]["label"] != w["label"]:
            close()
        run.append(k)
    close()
    return segments


# ---------------------------------------------------------------------------------------------------- pictures
def timeline_png(result: Mapping[str, Any], path: str | os.PathLike, max_classes: int = 6) -> Path:
    """A picture of one video's timeline: the probabilities of its leading classes per window, and the merged
    segments as a labelled bar beneath them."""
    fig = timeline_figure(result, max_classes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def timeline_figure(result: Mapping[str, Any], max_classes: int = 6) -> Figure:
    """:func:`timeline_png`'s figure (Agg canvas), each segment's label fitted inside its segment."""
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # lazy: only when a picture is asked for
    )
    from matplotlib.figure import Figure

    windows = result["windows"]
    x = [(w["start"] + w["end"]) / 2 for w in windows]
    # classes worth drawing: every window's top-1, then the highest mean scores
    mass: dict[str, float] = {}
    for w in windows:
        for t in w["top_k"]:
            mass[t["label"]] = mass.get(t["label"], 0.0) + t["score"]
    leaders = list(dict.fromkeys(w["label"] for w in windows))
    names = (leaders + [n for n in sorted(mass, key=mass.get, reverse=True) if n not in leaders])[:max_classes]
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    fig = Figure(figsize=(10, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, bar = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
    for n in names:
        y = [next((t["score"] for t in w["top_k"] if t["label"] == n), 0.0) for w in windows]
        ax.plot(x, y, marker=".", color=colours[n], label=n)
    ax.axhline(result.get("threshold", 0.5), color="0.6", lw=0.8, ls="--")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{Path(result['path']).name}: window {result['window']:g} s, stride {result['stride']:g} s",
                 fontsize=10)
    for seg in result["segments"]:
        bar.broken_barh([(seg["start"], seg["end"] - seg["start"])], (0, 1), color=colours.get(seg["label"], "0.5"))
    bar.set_yticks([])
    bar.set_ylabel("segments", rotation=0, ha="right", va="center")
    bar.set_xlim(0, result["duration"])
    bar.set_xlabel("time (s)")
    fig.draw_without_rendering()  # the constrained layout places the axes: segment widths in pixels are final
    renderer = fig.canvas.get_renderer()
    for seg in result["segments"]:
        _fitted_label(bar, seg["start"], seg["end"], seg["label"], renderer)
    return fig


def _fitted_label(ax: Any, start: float, end: float, label: str, renderer: Any, pad_px: float = 4.0) -> None:
    """``label`` centred on the segment [start, end], shortened with an ellipsis until its drawn width fits the
    segment's, or left out when not even its first letter does: labels of short segments overlapped."""
    x0, x1 = (ax.transData.transform((t, 0.5))[0] for t in (start, end))
    room = x1 - x0 - pad_px
    text = ax.text((start + end) / 2, 0.5, label, ha="center", va="center", fontsize=8, clip_on=True)
    candidates = [label] + [label[:n].rstrip() + "…" for n in range(len(label) - 1, 0, -1)]
    for candidate in candidates:
        text.set_text(candidate)
        if text.get_window_extent(renderer).width <= room:
            return
    text.remove()


def timeline_png_path(folder: str | os.PathLike, video_path: str, index: int) -> Path:
    """``folder/<index>_<video stem>.png``: the index keeps same-named files in different folders apart."""
    return Path(folder) / f"{index:04d}_{Path(video_path).stem}.png"


def print_segments(results: Sequence[Mapping[str, Any]]) -> None:
    """Each timeline's merged segments (and its picture), after predict's table."""
    from rich.console import Console

    con = Console(soft_wrap=True)
    for r in results:
        if r.get("error") or "segments" not in r:
            continue
        spans = ", ".join(f"{s['start']:.2f}-{s['end']:.2f}s {s['label']} ({s['score']:.2f})" for s in r["segments"])
        con.print(f"{Path(r['path']).name}: {len(r['windows'])} windows; segments: {spans or 'none above threshold'}")
        if r.get("timeline_png"):
            con.print(f"  timeline: {r['timeline_png']}")
