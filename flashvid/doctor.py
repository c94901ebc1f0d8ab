"""``flashvid doctor``: check a dataset before training on it.

Every file is probed in parallel (a thread pool; the decoders release the GIL): opened, and its first, middle
and last frames actually decoded, so truncated and corrupt files are caught, not just unreadable headers. The
report gives per-class counts, duration / resolution / fps ranges, the unreadable files with their reasons,
byte-identical files across splits, recording groups (UCF101 ``_gNN_``) shared between splits, and class
imbalance. Exit status: 0 when the data can train (warnings are printed), 1 when it cannot (no classes, an empty
split, more unreadable training files than a run tolerates), 2 when the data options themselves are wrong.

Python::

    from flashvid.doctor import diagnose_data
    report = diagnose_data(VideoClassificationData.from_folders("data/train", "data/val"))
    print(report.format_text()); report.to_json("doctor.json"); report.exit_code

Command line (before the Hydra CLI, or without it)::

    python -m flashvid.doctor --train-folder data/train --val-folder data/val --json doctor.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .data.clip_cost import GPU_CLIPS_PER_S, ClipCost, store_advice, training_clip_cost
from .data.decoding import (
    VideoDecodeError,
    check_clip_size,
    decode_short_side,
    keyframe_interval,
    open_container,
    open_video,
    resolve_decoder,
)
from .data.directions import flips_off_warning, flips_on_warning, mirrored_classes
from .data.frame_store import is_frame_store
from .data.sources import LABEL_SEPARATOR, UCF101_GROUP_PATTERN, VideoSample, group_of, label_name

log = logging.getLogger(__name__)

SPLIT_ORDER = ("train", "val", "test", "predict")
_HASH_CHUNK = 1 << 16


@dataclass
class FileProbe:
    """What probing one file found. ``ok`` is False when a frame could not be decoded (``reason`` says why)."""

    path: str
    split: str
    label: str | None
    ok: bool
    reason: str | None = None
    num_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    size_bytes: int | None = None
    note: str | None = None  # a readable file's oddity (e.g. fewer frames than its header says)
    quick_hash: str | None = None
    keyframe_interval: int | None = None  # frames between keyframes (GOP), from the first packets


@dataclass
class DoctorReport:
    labels: list[str]
    files: list[FileProbe]
    decoder: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    group_leakage: list[dict[str, Any]] = field(default_factory=list)
    imbalance: dict[str, Any] = field(default_factory=dict)
    root: str | None = None
    clip_cost: ClipCost | None = None  # CPU ms of a training clip, as video and as a frame store (diagnose_data)
    prepare_advised: list[str] = field(default_factory=list)  # the files `flashvid prepare` is advised for

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def splits(self) -> list[str]:
        present = {f.split for f in self.files}
        return [s for s in SPLIT_ORDER if s in present] + sorted(present - set(SPLIT_ORDER))

    def unreadable(self) -> list[FileProbe]:
        return [f for f in self.files if not f.ok]

    def split_summary(self, split: str) -> dict[str, Any]:
        files = [f for f in self.files if f.split == split]
        good = [f for f in files if f.ok]
        per_class: dict[str, dict[str, int]] = {}
        for name in self.labels:
            per_class[name] = {"files": 0, "readable": 0}
        for f in files:
            for name in (f.label or "?").split(LABEL_SEPARATOR):  # a multi-label file counts in each of its classes
                c = per_class.setdefault(name, {"files": 0, "readable": 0})
                c["files"] += 1
                c["readable"] += int(f.ok)

        def span(values: Iterable[float | int | None]) -> dict[str, float] | None:
            vals = [v for v in values if v is not None]
            return {"min": min(vals), "max": max(vals)} if vals else None

        return {
            "files": len(files),
            "readable": len(good),
            "unreadable": len(files) - len(good),
            "per_class": per_class,
            "duration_s": span(f.duration for f in good),
            "fps": span(f.fps for f in good),
            "width": span(f.width for f in good),
            "height": span(f.height for f in good),
            "portrait": sum(1 for f in good if f.height and f.width and f.height > f.width),
        }

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable report (what ``--json`` writes)."""
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "decoder": self.decoder,
            "root": self.root,
            "labels": list(self.labels),
            "splits": {s: self.split_summary(s) for s in self.splits},
            "unreadable": [{"path": f.path, "split": f.split, "label": f.label, "reason": f.reason}
                           for f in self.unreadable()],
            "duplicates": self.duplicates,
            "group_leakage": self.group_leakage,
            "imbalance": self.imbalance,
            "training_clip_cpu_ms": asdict(self.clip_cost) if self.clip_cost else None,
            "prepare_advised": list(self.prepare_advised),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "files": [asdict(f) for f in self.files],
        }

    def to_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        return path

    def _rel(self, p: str) -> str:
        if self.root:
            try:
                return os.path.relpath(p, self.root)
            except ValueError:
                pass
        return p

    def format_text(self) -> str:
        """A plain-text report (no colour codes), as printed by ``flashvid doctor``."""
        out: list[str] = []
        n_classes = len(self.labels)
        root = self.root
        if root and not os.path.relpath(root).startswith(".."):
            root = os.path.relpath(root)  # under the working directory: show it as typed
        out.append(f"flashvid doctor: {len(self.files)} files in {len(self.splits)} split(s), {n_classes} classes "
                   f"(decoder: {self.decoder}){f', root {root}' if root else ''}")
        out.append("")
        out.append(f"{'split':<8}{'files':>7}{'readable':>10}  {'duration':<20}{'resolution (WxH)':<24}fps")
        for s in self.splits:
            m = self.split_summary(s)
            dur = _range(m["duration_s"], _fmt_seconds)
            res = "-" if not m["width"] else (
                f"{m['width']['min']}x{m['height']['min']} .. {m['width']['max']}x{m['height']['max']}")
            fps = _range(m["fps"], lambda v: f"{v:.4g}")
            out.append(f"{s:<8}{m['files']:>7}{m['readable']:>10}  {dur:<20}{res:<24}{fps}")
        out.append("")
        width = max([len(c) for c in self.labels] + [len("readable/files per class")])
        out.append(f"{'readable/files per class':<{width + 2}}" + "".join(f"{s:>10}" for s in self.splits))
        summaries = {s: self.split_summary(s)["per_class"] for s in self.splits}
        for c in self.labels:
            cells = []
            for s in self.splits:
                pc = summaries[s].get(c)
                cells.append(f"{pc['readable']}/{pc['files']}" if pc and pc["files"] else "0")
            out.append(f"  {c:<{width}}" + "".join(f"{x:>10}" for x in cells))
        bad = self.unreadable()
        if bad:
            out.append("")
            out.append(f"unreadable files ({len(bad)}):")
            for f in sorted(bad, key=lambda f: (f.split, f.path)):
                out.append(f"  {self._rel(f.path)}: {f.reason}")
        if self.warnings:
            out.append("")
            out.append(f"warnings ({len(self.warnings)}):")
            out.extend(f"  - {w}" for w in self.warnings)
        if self.errors:
            out.append("")
            out.append(f"errors ({len(self.errors)}):")
            out.extend(f"  - {e}" for e in self.errors)
        out.append("")
        out.append("result: " + ("cannot train: fix the errors above (exit 1)" if self.errors else
                                 "ready to train" + (" (see warnings)" if self.warnings else "")))
        return "\n".join(out)


def _fmt_seconds(v: float) -> str:
    if v >= 60:
        return f"{int(v // 60)}m{v % 60:02.0f}s"
    return f"{v:.2f}s"


def _range(span: dict[str, float] | None, fmt) -> str:
    if not span:
        return "-"
    lo, hi = fmt(span["min"]), fmt(span["max"])
    return lo if lo == hi else f"{lo} .. {hi}"


# --------------------------------------------------------------------------------------------------- probing
def _quick_hash(path: str, size: int) -> str:
    """sha256 of the size and three 64 KiB samples (start, middle, end): cheap on huge files; confirmed in full
    before two files are called identical."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for offset in sorted({0, max(size // 2 - _HASH_CHUNK // 2, 0), max(size - _HASH_CHUNK, 0)}):
            f.seek(offset)
            h.update(f.read(_HASH_CHUNK))
    return h.hexdigest()


def _full_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def backwards_timestamps(path: str) -> str | None:
    """Whether a video stream's decode timestamps run backwards (joined recordings, ``cat a.mpg b.mpg``): both
    decoders place frames by time, so such a file yields frames out of place. Demuxing only (no decoding). A frame
    store has no timestamps (FFmpeg would take it for raw MJPEG): None."""
    if is_frame_store(path):
        return None
    try:
        with open_container(path) as container:
            last: dict[int, int] = {}
            for n, packet in enumerate(container.demux(*container.streams.video)):
                if packet.dts is None:
                    continue
                prev = last.get(packet.stream.index)
                if prev is not None and packet.dts < prev:
                    tb = packet.time_base
                    return (f"timestamps go backwards at packet {n} ({float(prev * tb):.3f}s -> "
                            f"{float(packet.dts * tb):.3f}s; joined recordings?): its clips would show frames out of "
                            "place; re-encode it: ffmpeg -i IN -c:v libx264 OUT")
                last[packet.stream.index] = packet.dts
    except Exception:  # noqa: BLE001  (unreadable files are reported by the decoding probe)
        return None
    return None


def probe_file(path: str, split: str = "", label: str | None = None, decoder: str = "auto",
               clip_frames: int | None = None, clip_short_side: int | None = None) -> FileProbe:
    """Open ``path`` and decode its first, middle and last frames; never raises for a bad file. With
    ``clip_frames``, a file whose clips training would refuse as too large (memory guard; frames reduced to
    ``clip_short_side`` while decoding as training does) is unreadable here too."""
    probe = FileProbe(path=path, split=split, label=label, ok=False)
    try:
        reader = open_video(path, decoder)
        try:
            info = reader.info
            if clip_frames:
                check_clip_size(path, info, clip_frames, decode_short_side(info, clip_frames, clip_short_side))
            n = info.num_frames
            shape = None
            for i in sorted({0, n // 2, n - 1}):
                frame = reader.frames_at([i])
                shape = tuple(frame.shape[-2:])
            real = reader.info.num_frames
            if real < n:  # the header promised frames the file does not hold (a torchcodec re-scan found fewer)
                probe.note = f"damaged or truncated: header says {n} frames, {real} decode"
            probe.num_frames, probe.fps = real, float(info.fps)
            probe.height, probe.width = (shape if shape is not None else (info.height, info.width))
            probe.duration = real / info.fps if info.fps else None
        finally:
            reader.close()
        probe.keyframe_interval = keyframe_interval(path, max_packets=300)
        probe.ok = True
        probe.note = probe.note or backwards_timestamps(path)
    except VideoDecodeError as e:
        probe.reason = e.reason
    except Exception as e:  # a decoder bug on an odd file is still that file's problem, not the doctor's
        probe.reason = f"{type(e).__name__}: {e}"
    try:
        st = os.stat(path)
        if os.path.isfile(path):
            probe.size_bytes = st.st_size
            if probe.ok:
                probe.quick_hash = _quick_hash(path, st.st_size)
    except OSError:
        pass
    return probe


def _probe_all(jobs: list[tuple[str, str, str | None]], decoder: str, workers: int, progress: bool,
               clip_frames: int | None = None, clip_short_side: int | None = None) -> list[FileProbe]:
    results: list[FileProbe | None] = [None] * len(jobs)
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=True)
    else:
        bar = None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(probe_file, p, s, c, decoder, clip_frames, clip_short_side): i
                   for i, (p, s, c) in enumerate(jobs)}
        if bar is not None:
            bar.start()
            task = bar.add_task("probe", total=len(jobs))
        try:
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.advance(task)
        finally:
            if bar is not None:
                bar.stop()
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------------------------------- checks
def diagnose(
    splits: Mapping[str, Sequence[VideoSample]],
    labels: Sequence[str],
    *,
    decoder: str = "auto",
    workers: int | None = None,
    progress: bool = True,
    group_pattern: str | None = UCF101_GROUP_PATTERN,
    imbalance_ratio: float = 3.0,
    max_failed_fraction: float = 0.05,
    root: str | os.PathLike | None = None,
    clip_frames: int | None = None,
    clip_short_side: int | None = None,
) -> DoctorReport:
    """Probe every sample of every split and check that the data can train.

    ``max_failed_fraction`` mirrors ``VideoClassifier(max_failed_fraction=)``: more unreadable training files than
    that share is an error, since the run would stop. ``imbalance_ratio``: warn when the largest class has more than
    this many times the readable videos of the smallest non-empty one.
    """
    labels = list(labels)
    decoder_name = resolve_decoder(decoder)
    jobs = [(s.path, split, label_name(s.label, labels)) for split, samples in splits.items() for s in samples]
    workers = workers if workers is not None else min(8, (os.cpu_count() or 1) * 2)
    files = _probe_all(jobs, decoder_name, workers, progress, clip_frames, clip_short_side)
    if root is None:
        paths = [os.path.dirname(os.path.abspath(p)) for p, _, _ in jobs]
        root = os.path.commonpath(paths) if paths else None
    report = DoctorReport(labels, files, decoder_name, root=str(root) if root else None)
    _check(report, splits, group_pattern, imbalance_ratio, max_failed_fraction)
    return report


def _check(report: DoctorReport, splits: Mapping[str, Sequence[VideoSample]], group_pattern: str | None,
           imbalance_ratio: float, max_failed_fraction: float) -> None:
    errors, warnings = report.errors, report.warnings
    if not report.labels:
        errors.append("no classes: put the videos in one sub-folder per class (<root>/<class>/<video>)")
    for split in splits:
        m = report.split_summary(split)
        if m["files"] == 0:
            errors.append(f"the {split} split has no videos: check its folder or list file")
        elif m["readable"] == 0:
            errors.append(f"the {split} split has no readable video ({m['files']} files, all unreadable)")
    train = [f for f in report.files if f.split == "train"]
    if train:
        share = sum(not f.ok for f in train) / len(train)
        if share > max_failed_fraction:
            errors.append(
                f"{sum(not f.ok for f in train)} of {len(train)} train files ({share:.0%}) are unreadable, more than "
                f"max_failed_fraction={max_failed_fraction:.0%}: training would stop. Remove or re-encode them "
                "(list above), or raise model.max_failed_fraction"
            )
        per_class = report.split_summary("train")["per_class"]
        for name, c in per_class.items():
            if c["files"] == 0:
                warnings.append(f"class {name!r} has no videos in train (an empty class folder?): the model "
                                "cannot learn it; remove the folder or add videos")
            elif c["readable"] == 0:
                warnings.append(f"class {name!r} has {c['files']} train files and none readable")
        counts = {n: c["readable"] for n, c in per_class.items() if c["readable"] > 0}
        if len(counts) >= 2:
            big, small = max(counts, key=counts.get), min(counts, key=counts.get)
            ratio = counts[big] / counts[small]
            report.imbalance = {"counts": counts, "largest": big, "smallest": small, "ratio": round(ratio, 2)}
            if ratio > imbalance_ratio:
                warnings.append(f"class imbalance: {big!r} has {counts[big]} readable train videos, {small!r} "
                                f"{counts[small]} ({ratio:.1f}x): set data.sampler=balanced (class-balanced "
                                "epochs) or add data")
    heavy = _prepare_pays(report)
    report.prepare_advised = [f.path for f in heavy]
    if heavy:
        warnings.append(
            f"{len(heavy)} of {sum(f.ok for f in report.files)} readable files are large (short side >= "
            f"{LARGE_SHORT_SIDE} px) or long-GOP (keyframes more than {LONG_GOP_S:g} s apart): each training clip "
            "then decodes many frames it throws away. Run `flashvid prepare <the same data options> output=DIR` "
            "once and train on DIR (README: Large footage)")
    unreadable = report.unreadable()
    if unreadable:
        warnings.append(f"{len(unreadable)} unreadable file(s) will be skipped (listed above with reasons)")
    for f in report.files:
        if f.ok and f.note:
            warnings.append(f"{report._rel(f.path)}: {f.note}")

    # byte-identical files in different splits (quick hash, confirmed by a full one)
    by_quick: dict[str, list[FileProbe]] = defaultdict(list)
    for f in report.files:
        if f.quick_hash:
            by_quick[f.quick_hash].append(f)
    for group in by_quick.values():
        if len({f.split for f in group}) < 2:
            continue
        by_full: dict[str, list[FileProbe]] = defaultdict(list)
        for f in group:
            by_full[_full_hash(f.path)].append(f)
        for digest, same in by_full.items():
            if len({f.split for f in same}) >= 2:
                report.duplicates.append({"sha256": digest, "files": [{"split": f.split, "path": f.path}
                                                                      for f in same]})
    _label_conflicts(report, by_quick)
    if report.duplicates:
        for d in report.duplicates:
            names = " = ".join(report._rel(x["path"]) for x in d["files"])
            warnings.append(f"identical files in different splits: {names}: evaluation would score training data")

    # recording groups shared between splits (UCF101 _gNN_: clips of one group come from one long video)
    if group_pattern and len(splits) > 1:
        import re

        where: dict[tuple[str | None, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for f in report.files:
            name = os.path.basename(f.path)
            if re.search(group_pattern, name):
                where[(f.label, group_of(f.path, group_pattern))][f.split].append(f.path)
        for (label, group), by_split in sorted(where.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            if len(by_split) > 1:
                report.group_leakage.append({"label": label, "group": group,
                                             "splits": {s: sorted(p) for s, p in by_split.items()}})
        if report.group_leakage:
            shown = ", ".join(f"{g['label']}/{g['group']} in {'+'.join(sorted(g['splits']))}"
                              for g in report.group_leakage[:5])
            more = f" and {len(report.group_leakage) - 5} more" if len(report.group_leakage) > 5 else ""
            warnings.append(f"{len(report.group_leakage)} recording group(s) appear in more than one split "
                            f"({shown}{more}): clips of one recording on both sides inflate validation scores; "
                            f"split by group (val_split= with group_pattern='{group_pattern}')")


def _label_conflicts(report: DoctorReport, by_quick: Mapping[str, list[FileProbe]]) -> None:
    """One video under two labels: the same file listed twice (a list file, a link into another class folder),
    or byte-identical copies in two class folders. Training would be told both answers for one input."""
    by_real: dict[str, list[FileProbe]] = defaultdict(list)
    for f in report.files:
        by_real[os.path.realpath(f.path)].append(f)
    for same in by_real.values():
        labels = sorted({str(f.label) for f in same})
        if len(labels) > 1:
            names = ", ".join(f"{f.split}/{f.label}: {report._rel(f.path)}" for f in same)
            report.warnings.append(f"one file with {len(labels)} labels ({', '.join(labels)}): {names}; keep it "
                                   "under one class")
    multi = {real for real, same in by_real.items() if len({f.label for f in same}) > 1}  # reported just above
    for group in by_quick.values():
        distinct = {real: f for f in group if (real := os.path.realpath(f.path)) not in multi}
        if len({f.label for f in distinct.values()}) < 2:
            continue
        by_full: dict[str, list[FileProbe]] = defaultdict(list)
        for f in distinct.values():
            by_full[_full_hash(f.path)].append(f)
        for same in by_full.values():
            labels = sorted({str(f.label) for f in same})
            if len(labels) > 1:
                names = " = ".join(f"{report._rel(f.path)} ({f.label})" for f in same)
                report.warnings.append(f"identical videos in different classes: {names}; keep one copy, in the "
                                       "right class")


LARGE_SHORT_SIDE = 480
LONG_GOP_S = 2.0
# A lead-in costs what its pixels cost to decode: 2 s of 640x480 at 30 fps is where it starts to show beside a
# clip's own decode. Tiny frames (the demo's 96x96, a 32-frame file with one keyframe: 0.3 Mpx) never reach it.
HEAVY_LEAD_IN_PIXELS = 60 * 640 * 480


def _prepare_pays(report: DoctorReport) -> list[FileProbe]:
    """The readable files that decode slowly per clip, when they are at least a tenth of them (else none)."""
    heavy = [f for f in report.files if f.ok and _heavy(f)]
    return heavy if heavy and len(heavy) >= 0.1 * sum(f.ok for f in report.files) else []


def _heavy(f: FileProbe) -> bool:
    """A file that decodes slowly per clip: large frames, or a long and costly lead-in from the keyframe before a
    clip (a lead-in never spans more than the file)."""
    if f.width is None or f.height is None:
        return False
    if min(f.width, f.height) >= LARGE_SHORT_SIDE:
        return True
    if not (f.keyframe_interval and f.fps):
        return False
    lead_in = min(f.keyframe_interval, f.num_frames or f.keyframe_interval)
    return lead_in / f.fps > LONG_GOP_S and lead_in * f.width * f.height >= HEAVY_LEAD_IN_PIXELS


def diagnose_data(datamodule: Any, clip_cost_files: int = 8, gpu_clips_per_s: float = GPU_CLIPS_PER_S,
                  **kwargs: Any) -> DoctorReport:
    """:func:`diagnose` on a :class:`~flashvid.VideoClassificationData` (its samples and labels as configured), and
    what a training clip costs on this machine, timed on up to ``clip_cost_files`` train files (0: not timed)."""
    samples = {k: v for k, v in datamodule.samples.items() if k != "predict"}
    kwargs.setdefault("decoder", getattr(datamodule, "decoder", "auto"))
    config = getattr(datamodule, "data_config", None)
    kwargs.setdefault("clip_frames", getattr(config, "num_frames", None))  # the memory guard's clip length
    kwargs.setdefault("clip_short_side", getattr(config, "short_side", None))  # and decoded size
    report = diagnose(samples, datamodule.labels, **kwargs)
    report.warnings[:0] = list(getattr(datamodule, "source_warnings", []))  # e.g. list paths outside data.root
    if clip_cost_files:
        _check_clip_cost(report, datamodule, clip_cost_files, gpu_clips_per_s)
    flips = flip_warning(datamodule)
    if flips:
        report.warnings.append(flips)
    return report


def _check_clip_cost(report: DoctorReport, datamodule: Any, files: int, gpu_clips_per_s: float) -> None:
    """Video files that need no ``prepare`` (or are its copies) but still cost a worker much more per clip than a
    frame store would: suggest the store (:mod:`flashvid.data.clip_cost`). Frame stores and heavy files (``prepare``
    is advised first) are not timed."""
    train = [f.path for f in report.files if f.split == "train" and f.ok]
    if not train or report.prepare_advised or any(is_frame_store(p) for p in train):
        return
    report.clip_cost = training_clip_cost(datamodule, train, files)
    advice = store_advice(report.clip_cost, datamodule.num_workers, gpu_clips_per_s) if report.clip_cost else None
    if advice:
        report.warnings.append(advice)


def flip_warning(datamodule: Any) -> str | None:
    """Class names that mean a direction (``swipe_left``): flips forced on contradict them; flips that training
    turns off by itself are said too, so the augmentation a run will use is no surprise."""
    augmentation = getattr(datamodule, "augmentation", None)
    if augmentation is None or not datamodule.samples.get("train"):
        return None
    names = mirrored_classes(datamodule.labels)
    if names and augmentation.hflip > 0:
        return flips_on_warning(names, augmentation.hflip)
    off = getattr(datamodule, "flips_off_for", [])
    return flips_off_warning(off) if off else None


# --------------------------------------------------------------------------------------------------- entry points
def run(build_data, json_path: str | os.PathLike | None = None, quiet: bool = False,
        input_errors: tuple[type[Exception], ...] = (FileNotFoundError, NotADirectoryError, ValueError),
        **kwargs: Any) -> int:
    """Build the data (a callable, so its errors are reported too), diagnose, print, write JSON; the exit code.
    ``input_errors``: what ``build_data`` raises for bad data options (exit code 2, the message in the JSON)."""
    try:
        datamodule = build_data()
    except input_errors as e:
        print(f"flashvid doctor: error: {e}", file=sys.stderr)
        if json_path:
            Path(json_path).write_text(json.dumps({"ok": False, "exit_code": 2, "errors": [str(e)]}, indent=2))
        return 2
    report = diagnose_data(datamodule, **kwargs)
    if not quiet:
        print(report.format_text())
    if json_path:
        report.to_json(json_path)
    return report.exit_code


def cli(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flashvid.doctor", description=__doc__.split("\n\n")[0])
    p.add_argument("--train-folder", help="<train>/<class>/<video> folder")
    p.add_argument("--val-folder")
    p.add_argument("--test-folder")
    p.add_argument("--json", help="write the machine-readable report here")
    p.add_argument("--decoder", default="auto", choices=["auto", "torchcodec", "pyav"])
    p.add_argument("--workers", type=int, default=None, help="probing threads (default: 2 per core, at most 8)")
    p.add_argument("--group-pattern", default=UCF101_GROUP_PATTERN, help="regex of a file's recording group")
    p.add_argument("--max-failed-fraction", type=float, default=0.05)
    p.add_argument("--imbalance-ratio", type=float, default=3.0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not (args.train_folder or args.val_folder or args.test_folder):
        p.error("give at least one of --train-folder, --val-folder, --test-folder")

    def build():
        from .data.datamodule import VideoClassificationData

        return VideoClassificationData.from_folders(args.train_folder, args.val_folder, args.test_folder,
                                                    decoder=args.decoder, num_workers=0)

    return run(build, json_path=args.json, workers=args.workers, progress=not args.no_progress,
               group_pattern=args.group_pattern or None, max_failed_fraction=args.max_failed_fraction,
               imbalance_ratio=args.imbalance_ratio)


if __name__ == "__main__":
    sys.exit(cli())
