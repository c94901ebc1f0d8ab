"""Inference on video files with a trained model, outside the LightningModule.

:class:`PredictOptions` holds the settings once (views, window/stride, batch, decoder, device, progress);
:class:`Predictor` classifies files with them, whole (``num_clips`` x ``num_crops`` views averaged) or window by
window (timelines, :mod:`flashvid.timeline`). ``VideoClassifier.predict``, ``flashvid predict`` and
:func:`flashvid.embed.embed_videos` all go through here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from .data.dataset import VideoClipDataset, collate_clips
from .data.sources import VideoSample, collect_paths
from .data.view_averaging import check_view_average
from .timeline import WindowStream, check_window_options, merge_segments

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; flashvid supports 3.10

    from .classifier import VideoClassifier

Inputs = str | os.PathLike | Iterable[str | os.PathLike]


@dataclass(frozen=True)
class PredictOptions:
    """How to classify files; the fields keep ``VideoClassifier.predict``'s positional order.

    ``num_clips`` x ``num_crops`` views are averaged per file, their probabilities or logits (``view_average``,
    :mod:`flashvid.data.view_averaging`). ``window=SECONDS`` classifies every window instead
    (one every ``stride`` seconds, default ``window``, each from ``clips_per_window`` centre-cropped clips).
    ``threshold``: the multi-label cut and the timeline segments' (None: the model's). ``device`` None: CUDA when
    available, else the model's. ``progress`` None: a bar only on a terminal.
    """

    top_k: int = 5
    batch_size: int = 8
    num_workers: int = 0
    num_clips: int = 1
    num_crops: int = 1
    decoder: str = "auto"
    device: str | torch.device | None = None
    window: float | None = None
    stride: float | None = None
    threshold: float | None = None
    clips_per_window: int = 1
    progress: bool | None = False
    view_average: str = "prob"

    def __post_init__(self) -> None:
        """Refuse settings no file can use before any file is opened."""
        check_view_average(self.view_average)
        if self.window is not None and (self.num_clips != 1 or self.num_crops != 1):
            raise ValueError("window= classifies each window from clips_per_window centre-cropped clips: leave "
                             "num_clips and num_crops at 1")
        if self.window is None and self.stride is not None:
            raise ValueError("stride= needs window=SECONDS (the length of each classified window)")
        if self.window is not None:
            check_window_options(float(self.window), None if self.stride is None else float(self.stride),
                                 self.clips_per_window)


def probabilities(model: VideoClassifier, video: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities of uint8 or normalised clips: softmax, or a multi-label model's sigmoids;
    ``(B, V, ...)`` views averaged."""
    out = model(video).float()
    if model.multi_label:
        return out.sigmoid()
    return out.exp() if video.dim() == 6 else out.softmax(-1)


def resolve_device(model: VideoClassifier, device: str | torch.device | None) -> torch.device:
    """``device``, else CUDA when available, else where the model is."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda") if torch.cuda.is_available() else model.device


@contextmanager
def evaluating(model: torch.nn.Module, device: torch.device, view_average: str | None = None) -> Iterator[None]:
    """``model`` in eval mode on ``device`` (views averaged as ``view_average``, when given); its training mode
    and view averaging restored afterwards."""
    was_training, averaged = model.training, getattr(model, "view_average", None)
    model.eval().to(device)
    if view_average is not None:
        model.view_average = view_average
    try:
        yield
    finally:
        model.train(was_training)
        if view_average is not None:
            model.view_average = averaged


def clip_loader(model: VideoClassifier, samples: Sequence[VideoSample], options: PredictOptions,
                pin_memory: bool = False) -> DataLoader:
    """Batches of each file's evaluation clips (``num_clips`` spread over it x ``num_crops``), failures reported."""
    cfg = model.data_config
    dataset = VideoClipDataset(samples, cfg.sampling, cfg.eval_transform(options.num_crops),
                               "uniform" if options.num_clips > 1 else "center", num_clips=options.num_clips,
                               decoder=options.decoder)
    return DataLoader(dataset, batch_size=options.batch_size, num_workers=options.num_workers,
                      collate_fn=collate_clips, pin_memory=pin_memory)


def failed_result(path: str, reason: str) -> dict[str, Any]:
    """A file that could not be classified: it never hides the others' results."""
    return {"path": path, "label": None, "score": None, "top_k": [], "error": reason}


class Predictor:
    """Classifies video files and/or folders (searched recursively) with ``model`` and ``options``.

    Each result is ``{"path", "label", "score", "top_k": [{"label", "score"}, ...]}`` (an unreadable file:
    :func:`failed_result`); timelines add ``windows``, ``segments`` and ``duration``, their top-level label the
    mean over windows; a multi-label model adds ``labels``, every class at or above the threshold.
    """

    def __init__(self, model: VideoClassifier, options: PredictOptions | None = None):
        self.model = model
        self.options = options or PredictOptions()
        self.threshold = model.threshold if self.options.threshold is None else float(self.options.threshold)
        self.k = min(self.options.top_k, model.num_classes)

    def predict(self, inputs: Inputs) -> list[dict[str, Any]]:
        """Every result, in input order."""
        return [r for _, r in sorted(self.iter_predict(inputs), key=lambda x: x[0])]

    @torch.inference_mode()
    def iter_predict(self, inputs: Inputs) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(input index, result)`` pairs, each as soon as its file is done (for streaming them to a file); the
        order is the input order except across workers with timelines."""
        samples = collect_paths(inputs)
        device = resolve_device(self.model, self.options.device)
        with evaluating(self.model, device, self.options.view_average), \
                Progress(len(samples), self.options.progress) as bar:
            if self.options.window is not None:
                yield from self._timelines(samples, device, bar)
            else:
                yield from self._clips(samples, device, bar)

    def _top(self, probs: torch.Tensor) -> list[list[dict[str, Any]]]:
        """Each row's top-k ``{"label", "score"}``, best first."""
        scores, ids = probs.topk(self.k, dim=-1)
        labels = self.model.labels
        return [[{"label": labels[c], "score": s} for s, c in zip(row_s, row_i)]
                for row_s, row_i in zip(scores.tolist(), ids.tolist())]

    def _probabilities(self, video: torch.Tensor, device: torch.device) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return probabilities(self.model, video.to(device, non_blocking=True)).float().cpu()

    def _clips(self, samples: Sequence[VideoSample], device: torch.device,
               bar: Progress) -> Iterator[tuple[int, dict[str, Any]]]:
        labels = self.model.labels
        for batch in clip_loader(self.model, samples, self.options, pin_memory=torch.cuda.is_available()):
            done = {f["index"]: failed_result(f["path"], f["reason"]) for f in batch["failed"]}
            if batch["video"] is not None:
                probs = self._probabilities(batch["video"], device)
                for i, top, row in zip(batch["index"].tolist(), self._top(probs), probs, strict=True):
                    done[i] = {"path": samples[i].path, "label": top[0]["label"], "score": top[0]["score"],
                               "top_k": top}
                    if self.model.multi_label:
                        above = (row >= self.threshold).nonzero().flatten().tolist()
                        done[i]["labels"] = sorted(({"label": labels[c], "score": float(row[c])} for c in above),
                                                   key=lambda d: -d["score"])
            bar.advance(files=len(done))
            for i in sorted(done):
                yield i, done[i]

    def _timelines(self, samples: Sequence[VideoSample], device: torch.device,
                   bar: Progress) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each file's windows classified as its reader streams them, the file's result when its last is done."""
        o, cfg = self.options, self.model.data_config
        assert o.window is not None
        window = float(o.window)
        stride = window if o.stride is None else float(o.stride)
        # without workers, one file at a time is decoded in this process: let FFmpeg use its threads (0 = auto);
        # with workers, each decodes its own file on one thread
        dataset = WindowStream(samples, cfg.sampling, cfg.eval_transform(1), window, stride, o.clips_per_window,
                               o.batch_size, o.decoder, decode_threads=0 if o.num_workers == 0 else 1)
        loader = DataLoader(dataset, batch_size=None, num_workers=o.num_workers, pin_memory=device.type == "cuda")
        pending: dict[int, dict[str, Any]] = {}
        for item in loader:
            i = item["file"]
            if "error" in item:
                pending.pop(i, None)
                bar.advance(files=1)
                yield i, failed_result(item["path"], item["error"])
                continue
            probs = self._probabilities(item["video"], device)
            state = pending.setdefault(i, {"windows": [], "sum": torch.zeros(self.model.num_classes),
                                           "info": item["info"]})
            state["sum"] += probs.sum(0)
            for w, top in zip(item["windows"], self._top(probs)):
                state["windows"].append({"start": w.start, "end": w.end, "label": top[0]["label"],
                                         "score": top[0]["score"], "top_k": top})
            bar.advance(windows=len(item["windows"]))
            if item["last"]:
                state = pending.pop(i)
                [top] = self._top((state["sum"] / len(state["windows"])).unsqueeze(0))
                duration = state["info"]["duration"]
                bar.advance(files=1)
                yield i, {"path": item["path"], "label": top[0]["label"], "score": top[0]["score"], "top_k": top,
                          "duration": duration, "window": window, "stride": stride, "threshold": self.threshold,
                          "windows": state["windows"],
                          "segments": merge_segments(state["windows"], self.threshold, duration)}


class Progress:
    """A rich progress bar over files (files/s, windows/s with timelines, ETA), or nothing.

    ``enabled=None`` shows it only when stderr is a terminal, so logs and pipes stay clean.
    """

    def __init__(self, total: int, enabled: bool | None = None, description: str = "predict"):
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.total, self.description = total, description
        self.files = self.windows = 0
        self._bar: Any = None
        self._start = time.perf_counter()

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                     TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, rate="")
        return self

    def advance(self, files: int = 0, windows: int = 0) -> None:
        self.files += files
        self.windows += windows
        if self._bar is None:
            return
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = f"{self.files / elapsed:.1f} files/s"
        if self.windows:
            rate += f", {self.windows / elapsed:.1f} windows/s"
        self._bar.update(self._task, advance=files, rate=rate)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
