"""``flashvid prepare``: a one-time, training-friendly copy of a dataset.

Phone, web and camera footage (720p/1080p H.264 with a keyframe every 250 frames) costs a training worker
~0.3-0.6 s per 16-frame clip: a seek lands on the keyframe before the clip and decodes every frame from there, at
full resolution, only for the crop to throw most pixels away. ``prepare`` re-encodes each file once: short side
resized to what the backbone's crop needs (never upscaled), a keyframe every ``keyframe_interval`` seconds, frame
rate capped at twice what the clip sampler reads (``max_fps``; VideoMAE's 16 frames at stride 4 of 30 fps read 7.5
frames/s, so the copy keeps 15), audio dropped, H.264 through PyAV's bundled libx264 (no ffmpeg binary). The
source's B-frames that the cap drops are not decoded at all (H.264: :class:`_CappedFrames`, exact).

The copy keeps the source's layout (class folders, list files, UCF101 split files), so every data option works on
it unchanged. A manifest (``DIR/prepare_manifest.json``: source path, size, mtime, settings) makes it resumable:
re-running converts only new or changed files, and a killed run continues where it stopped (each output is
written to a temporary name, then renamed). Unreadable files are listed and skipped. A file that is already small
and short-GOP is kept as it is (hard link, else copy): re-encoding it would only lose quality.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from ..rundir import locked_dir
from .frame_store import DEFAULT_QUALITY, FRAME_STORE_SUFFIX, FrameStoreWriter, encode_jpegs, is_frame_store
from .sources import SEQUENTIAL_ONLY_EXTENSIONS, VideoSample, is_inside
from .video_file import VideoDecodeError, check_file, decode_failure_reason, keyframe_gap, open_container

if TYPE_CHECKING:
    from .clip_config import DataConfig
    from .sampling import ClipSampling

log = logging.getLogger(__name__)

MANIFEST = "prepare_manifest.json"
TMP_MARK = ".flashvid-tmp"
MANIFEST_VERSION = 1
FORMATS = ("video", "frames")


@dataclass(frozen=True)
class PrepareSettings:
    """How each file is re-encoded. ``short_side`` is the output's shorter side in pixels (sources smaller than it
    are not upscaled); ``keyframe_interval`` in seconds (a clip seek then decodes at most that much lead-in);
    ``max_fps`` caps the frame rate (None keeps it); ``crf``/``preset``/``tune`` are libx264's, and
    ``x264_params`` extra ``key=value:...`` x264 options. ``fastdecode`` (no CABAC, no deblocking) makes every
    later decode cheaper for slightly larger files. ``format="frames"`` writes a JPEG frame store per video
    instead (:mod:`.frame_store`: the same frames, each a JPEG of ``jpeg_quality``; nothing is kept as it is)."""

    short_side: int = 256
    keyframe_interval: float = 1.0
    max_fps: float | None = None
    crf: int = 22
    preset: str = "superfast"  # measured: half veryfast's encode time, +11% size, same decode cost
    tune: str | None = "fastdecode"
    # no B-frame is a reference (x264's default pyramid makes some references): the PyAV reader then skips every
    # B-frame a clip does not show without decoding it, 29-35% of a clip's decode (docs/benchmarks.md). And a fixed
    # run of 5 B-frames between references: x264's adaptive choice (b-adapt) makes P-frames, each a reference every
    # clip through it decodes, where the picture moves fast (a 60 fps source's copy: 57 B-frames in 150, 29 frames
    # decoded for a 16-frame clip; fixed: 110 and 21.5; real Kinetics copies 26.7 -> 21.6, -1.0 dB PSNR, -9% size)
    x264_params: str = "b-pyramid=none:b-adapt=0:bframes=5"
    keep_max_gop: float = 1.0  # sources with keyframes at most this many seconds apart ...
    # ... and a short side <= short_side are kept as they are (at their own frame rate)
    # a video copy's bits are capped at this times its source's (x264's VBV): a copy is never larger than its
    # source unless asked (None: crf alone decides; stores, asked for with format="frames", are not capped)
    max_size_ratio: float | None = 1.0
    # ... and at this many bits per pixel of the copy: the crf spends bits on grain and sensor noise, and every later
    # clip pays to decode them (synthetic noisy 720p: 0.86 bits per pixel and 21 ms of CPU a clip, at 0.5: 17 ms;
    # real footage is below it, but for 1 of the 8 real Kinetics clips measured: 0.53, held at -0.8 dB PSNR)
    max_bits_per_pixel: float | None = 0.5
    format: str = "video"  # "video" (an H.264 copy) or "frames" (a JPEG frame store per video)
    jpeg_quality: int = DEFAULT_QUALITY  # the stores' JPEG quality (format="frames")

    def __post_init__(self) -> None:
        if self.short_side < 16:
            raise ValueError(f"short_side must be >= 16 pixels, got {self.short_side}")
        if self.keyframe_interval <= 0:
            raise ValueError(f"keyframe_interval must be > 0 seconds, got {self.keyframe_interval}")
        if self.max_fps is not None and self.max_fps <= 0:
            raise ValueError(f"max_fps must be > 0 or None, got {self.max_fps}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51 (libx264), got {self.crf}")
        if self.max_size_ratio is not None and self.max_size_ratio <= 0:
            raise ValueError(f"max_size_ratio must be > 0, or null (None) for no cap, got {self.max_size_ratio}")
        if self.max_bits_per_pixel is not None and self.max_bits_per_pixel <= 0:
            raise ValueError(f"max_bits_per_pixel must be > 0, or null (None) for no cap, "
                             f"got {self.max_bits_per_pixel}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    @property
    def suffix(self) -> str:
        """The extension of a converted file."""
        return FRAME_STORE_SUFFIX if self.format == "frames" else ".mp4"

    def key(self) -> dict[str, Any]:
        """The settings a manifest records; a video copy's leaves out the store's, so copies made before there were
        stores stay up to date."""
        d = asdict(self)
        if self.format == "video":
            del d["format"], d["jpeg_quality"]
        else:
            del d["max_size_ratio"], d["max_bits_per_pixel"]
        return d


def default_max_fps(sampling: "ClipSampling", headroom: float = 2.0) -> float | None:
    """The frame rate a copy needs for ``sampling``: ``headroom`` times the rate its clips read frames at.

    A clip of 16 frames at stride 4 of 30 fps reads 7.5 frames/s; the frames between them are decoded only because
    H.264 frames depend on each other. Keeping twice that rate halves every later decode (and the encode) while
    clip starts still move in steps of 1/15 s and ``rate_jitter`` up to 2 still finds distinct frames. None (keep
    the source's rate) when the stride is counted in the file's own frames (``target_fps`` 0 or None): there a lower
    rate would change what the model sees.
    """
    if sampling.segments:
        return None  # one frame per segment of the whole video: the rate it reads depends on the video's length
    if sampling.clip_duration is not None:
        reads = sampling.num_frames / sampling.clip_duration
    elif sampling.target_fps:
        reads = sampling.target_fps / sampling.sampling_rate
    else:
        return None
    return round(reads * headroom, 3)


@dataclass
class PrepareReport:
    """What a run did; ``data_options`` are the overrides that train on the copy."""

    output: str
    total: int = 0
    converted: int = 0
    kept: int = 0
    unchanged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    data_options: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files_per_s(self) -> float:
        done = self.converted + self.kept
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files_per_s"] = round(self.files_per_s, 3)
        return d

    def format_text(self) -> str:
        lines = [f"flashvid prepare: {self.total} files -> {self.output}",
                 f"  converted {self.converted}, kept as they were {self.kept} (already small and short-GOP), "
                 f"unchanged since the last run {self.unchanged}, unreadable {len(self.failed)}",
                 f"  {self.seconds:.1f} s, {self.files_per_s:.2f} files/s; "
                 f"{self.bytes_in / 1e6:.1f} MB -> {self.bytes_out / 1e6:.1f} MB"]
        damaged = [f for f in self.files if f.get("note")]
        if damaged:
            lines.append(f"damaged files ({len(damaged)}), copied up to the damage:")
            lines += [f"  {f['src']}: {f['note']}" for f in damaged]
        copies = sum(1 for f in self.files if f.get("action") == "converted")  # this run's and earlier runs'
        held = sum(1 for f in self.files if (f.get("out") or {}).get("held_to_cap"))
        if held:
            lines.append(f"  {held} of {copies} copies held to their source's size by prepare.max_size_ratio (fewer "
                         "bits than the crf asks, so further from the source; prepare.max_size_ratio=null lets the crf "
                         "decide)")
        grain = sum(1 for f in self.files if (f.get("out") or {}).get("held_to_bits_per_pixel"))
        if grain:
            lines.append(f"  {grain} of {copies} copies held to prepare.max_bits_per_pixel (grain or noise the crf "
                         "would keep, which every training clip pays to decode; prepare.max_bits_per_pixel=null lets "
                         "the crf decide)")
        over = [f for f in self.files if (f.get("out") or {}).get("over_cap")]
        if over:
            lines.append(f"copies larger than prepare.max_size_ratio allows ({len(over)}), kept:")
            lines += [f"  {f['src']}: {f['out']['bytes'] / f['in']['bytes']:.2f}x its size" for f in over]
        if self.failed:
            lines.append(f"unreadable files ({len(self.failed)}), skipped:")
            lines += [f"  {f['path']}: {f['reason']}" for f in self.failed]
        if self.data_options:
            lines.append(f"train on the copy with: {self.data_options}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- layouts
@dataclass
class _Layout:
    """Where each split's files go under the output and how the copy is pointed at (the data options)."""

    kind: str  # folders | csv | ucf101
    roots: dict[str, Path]  # split -> the folder its paths are relative to
    fold: int = 1
    inputs: tuple[Path, ...] = ()  # what the source was read from: split folders, list files, data.root, ...


@dataclass
class _Sources:
    """Real paths of everything ``prepare`` reads; nothing it writes may land on or among them."""

    given: list[str]  # the source options, in order: split folders, list files, data.root, annotations_dir
    files: set[str]  # list files and videos
    folders: set[str]  # split folders, data.root, annotation folders and every listed video's folder


def _sources(splits: Mapping[str, Sequence[VideoSample]], layout: _Layout) -> _Sources:
    given = [os.path.realpath(p) for p in layout.inputs]
    files = {p for p in given if not os.path.isdir(p)}
    folders = {p for p in given if os.path.isdir(p)}
    parents: dict[str, str] = {}  # one realpath per folder, not per file (300k files share a few folders)
    for samples in splits.values():
        for s in samples:
            path = os.path.abspath(s.path)
            folder, name = os.path.split(path)
            real_folder = parents.get(folder)
            if real_folder is None:
                real_folder = parents[folder] = os.path.realpath(folder)
                folders.add(real_folder)
            files.add(os.path.join(real_folder, name))
            if os.path.islink(path):  # a linked video: its target is a source too
                target = os.path.realpath(path)
                files.add(target)
                folders.add(os.path.dirname(target))
    return _Sources(given, files, folders)


def _check_output(output: Path, sources: _Sources) -> None:
    """Refuse an output that is, holds or lies inside a source (before anything is written): the copies would
    replace the source videos or list files, or be listed among them. The source options are named first."""
    out = os.path.realpath(output)
    fix = "choose an output folder outside the data (outside every split folder, list file and video folder)"
    for src in [*sources.given, *sorted(sources.files), *sorted(sources.folders)]:
        what = "folder" if src in sources.folders else "file"
        if is_inside(src, out):
            relation = "is" if src == out else "holds"
            raise ValueError(f"output {out!r} {relation} the source {what} {src!r}: prepare would write over the "
                             f"sources; {fix}")
        if what == "folder" and is_inside(out, src):
            raise ValueError(f"output {out!r} is inside the source folder {src!r}: its copies would be mixed with "
                             f"(or listed as) the source videos; {fix}")


def _check_destinations(output: Path, plan: Mapping[str, tuple[Path, Path]], sources: _Sources) -> None:
    """The last guard, after :func:`_check_output`: no write path resolves (through a link inside the output) onto
    a source file or into a source folder."""
    parents: dict[Path, str] = {}
    for rels in plan.values():
        for rel in rels:
            parent = (output / rel).parent
            real_parent = parents.get(parent)
            if real_parent is None:
                real_parent = parents[parent] = os.path.realpath(parent)
                inside = next((d for d in sources.folders if is_inside(real_parent, d)), None)
                if inside is not None:
                    raise ValueError(f"{parent} leads into the source folder {inside!r} (a link inside the "
                                     f"output?): prepare would write among the sources; remove the link or choose "
                                     "another output")
            real = os.path.join(real_parent, rel.name)
            if real in sources.files:
                raise ValueError(f"{output / rel} is the source file {real!r} (a link inside the output?): "
                                 "prepare would write over it; remove the link or choose another output")


def _rel_under(path: str, root: Path) -> Path:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel.startswith(".."):  # a list entry outside the root: keep it apart, by its absolute path
        return Path("external") / os.path.abspath(path).lstrip(os.sep)
    return Path(rel)


def _plan(splits: Mapping[str, Sequence[VideoSample]], layout: _Layout, suffix: str = ".mp4"
          ) -> dict[str, tuple[Path, Path]]:
    """source -> (converted destination, kept destination), both relative to ``output``.

    Converted files are ``.mp4`` (``suffix``: ``.frames`` for frame stores); a kept file keeps its name. Two sources
    of one folder with the same stem (``a.avi`` and ``a.mp4``) keep their full names (``a.avi.mp4``) so they never
    collide.
    """
    rels: dict[str, Path] = {}
    for split, samples in splits.items():
        for s in samples:
            src = os.path.abspath(s.path)
            if src in rels:
                continue
            rel = _rel_under(src, layout.roots[split])
            if layout.kind == "folders":
                rel = Path(split) / rel
            else:
                rel = Path("videos") / rel
            rels[src] = rel
    stems = Counter((r.parent, r.stem) for r in rels.values())
    plan = {}
    for src, rel in rels.items():
        if rel.suffix.lower() == suffix:
            conv = rel
        elif stems[(rel.parent, rel.stem)] > 1:
            conv = rel.with_name(rel.name + suffix)
        else:
            conv = rel.with_suffix(suffix)
        plan[src] = (conv, rel)
    return plan


def _write_lists(splits: Mapping[str, Sequence[VideoSample]], labels: Sequence[str], layout: _Layout,
                 output: Path, done: Mapping[str, str]) -> str:
    """Rewrite the list files (csv, UCF101) for the copy; return the data options that train on it."""
    o = str(output)
    if layout.kind == "folders":
        return " ".join(f"data.{split}_folder={o}/{split}" for split in splits if split != "predict")
    if layout.kind == "csv":
        opts = ["data=csv"]
        for split, samples in splits.items():
            rows = [f"{_csv_field(done[os.path.abspath(s.path)])},{_csv_field(labels[s.label])}"
                    for s in samples if os.path.abspath(s.path) in done]
            _atomic_text(output / f"{split}.csv", "path,label\n" + "".join(r + "\n" for r in rows))
            opts.append(f"data.{split}_file={o}/{split}.csv")
        return " ".join(opts)
    ann = output / "annotations"
    _atomic_text(ann / "classInd.txt", "".join(f"{i + 1} {n}\n" for i, n in enumerate(labels)))
    for split, samples in splits.items():
        name = {"train": "trainlist", "test": "testlist"}.get(split)
        if name is None:
            continue
        rows = []
        for s in samples:
            dst = done.get(os.path.abspath(s.path))
            if dst is not None:
                rel = Path(dst).relative_to("videos").as_posix()
                rows.append(f"{rel} {s.label + 1}\n" if split == "train" else f"{rel}\n")
        _atomic_text(ann / f"{name}0{layout.fold}.txt", "".join(rows))
    return f"data=ucf101 data.root={o}/videos data.annotations_dir={o}/annotations data.fold={layout.fold}"


def _csv_field(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_MARK)
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------- one file
def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def convert_file(src: str, conv_dst: str, keep_dst: str, settings: PrepareSettings, threads: int = 1,
                 skip_nonref: bool = True) -> dict[str, Any]:
    """Re-encode (or keep) one file; never raises: a failure comes back as ``{"action": "failed", "reason"}``.
    ``skip_nonref=False`` decodes every source frame (the same copy, slower: for measuring the skip)."""
    t0 = time.perf_counter()
    real = os.path.realpath(src)
    if real in (os.path.realpath(conv_dst), os.path.realpath(keep_dst)):  # last guard: never write over a source
        return {"action": "failed", "reason": f"its copy would overwrite the source {real}; choose another output",
                "seconds": 0.0}
    try:
        out = _convert(src, conv_dst, keep_dst, settings, threads, skip_nonref)
    except VideoDecodeError as e:
        out = {"action": "failed", "reason": e.reason}
    except Exception as e:  # noqa: BLE001  (one odd file must not stop the others; its reason is reported)
        out = {"action": "failed", "reason": decode_failure_reason(e, src)}
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _convert(src: str, conv_dst: str, keep_dst: str, s: PrepareSettings, threads: int, skip_nonref: bool = True
             ) -> dict[str, Any]:

    check_file(src)
    if is_frame_store(src):
        raise VideoDecodeError(src, "already a flashvid frame store: prepare reads videos; train on the store as it is")
    try:
        container = open_container(src)
    except Exception as e:  # noqa: BLE001
        raise VideoDecodeError(src, decode_failure_reason(e, src)) from e
    with container:
        if not container.streams.video:
            raise VideoDecodeError(src, "no video stream (audio-only or not a video)")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoDecodeError(src, "stream has no frame rate")
        fps = float(rate)
        w, h = stream.codec_context.width, stream.codec_context.height
        packets = _demux(container, stream)
        gop = packets.keyframe_interval()
        info = {"width": w, "height": h, "fps": round(fps, 3), "codec": stream.codec_context.name,
                "keyframe_interval_frames": gop, "bytes": os.path.getsize(src)}
        out_fps = min(fps, s.max_fps) if s.max_fps else fps
        out_rate = rate if out_fps == fps else _fraction(out_fps)
        # the exact skip of the frames the cap drops (:class:`_CappedFrames`), H.264 only: checked frame for frame on
        # every H.264 file of ../shared/realclips; UCF101's MPEG-4 AVIs (packed B-frames: two frames in a packet)
        # gave other frames, so other codecs decode every frame
        skip = skip_nonref and out_fps < fps and stream.codec_context.name == "h264" and packets.complete
        ranks = _display_ranks(packets.pts) if skip else None
        if s.format == "frames":
            try:
                return _write_store(src, conv_dst, s, info, fps, out_fps, out_rate, threads, ranks)
            except _SkipNotExact:  # a frame the skip cannot place: every frame decoded instead
                return _write_store(src, conv_dst, s, info, fps, out_fps, out_rate, threads, None)
        small = min(w, h) <= s.short_side
        short_gop = gop is not None and gop / fps <= s.keep_max_gop
        seekable = Path(src).suffix.lower() not in SEQUENTIAL_ONLY_EXTENSIONS  # MPEG-TS: always converted
        # whatever its rate: a clip of it already decodes in milliseconds (UCF101: 8 ms)
        if small and short_gop and seekable:
            _keep(src, keep_dst)
            return {"action": "kept", "dst": keep_dst, "in": info, "out": {**info}}

        target = None if s.max_size_ratio is None else info["bytes"] * s.max_size_ratio
        seconds = _duration_s(container, stream, fps)
    Path(conv_dst).parent.mkdir(parents=True, exist_ok=True)
    pixels = math.prod(_scaled_size(w, h, s.short_side))  # the copy's frame, turned or not
    # bytes; a frame under 128x128 px is budgeted as one of that size: x264's own per-frame and per-macroblock bits
    # weigh there (a 32x40 copy held to 0.5 bits per pixel lost the difference between neighbouring frames)
    grain = None if s.max_bits_per_pixel is None or not seconds else \
        s.max_bits_per_pixel * max(pixels, 128 * 128) * out_fps * seconds / 8
    cap = min((b for b in (target, grain) if b is not None), default=None)
    maxrate = None if cap is None or not seconds else _maxrate_kbps(cap, seconds, s.keyframe_interval)
    # the cap is a rate over one-keyframe windows; a short file or the container's own bytes can still tip a copy
    # over its source: encode again under a cap lowered by the overshoot (at most twice more)
    for attempt in range(3):
        try:
            encoded = _encode_video(src, conv_dst, s, fps, out_fps, out_rate, threads, maxrate, ranks)
        except _SkipNotExact:  # a frame the skip cannot place: every frame decoded, in this and later encodes
            ranks = None
            encoded = _encode_video(src, conv_dst, s, fps, out_fps, out_rate, threads, maxrate, None)
        size_now = os.path.getsize(conv_dst)
        if target is None or size_now <= target or attempt == 2:
            break
        base = maxrate or _maxrate_kbps(target, encoded.written / out_fps, s.keyframe_interval)
        maxrate = max(1, int(base * target / size_now * 0.9))
    size, written, errors, out_bytes = encoded.size, encoded.written, encoded.errors, size_now
    note = f"damaged: decoding stopped after {written} frames ({errors[0]}); the copy holds those" if errors else None
    return {"action": "converted", "dst": conv_dst, "in": info, "note": note,
            "out": {"width": size[0], "height": size[1], "fps": round(out_fps, 3), "frames": written,
                    "keyframe_interval_frames": max(1, round(out_fps * s.keyframe_interval)),
                    "max_kbit_per_s": maxrate, "bytes": out_bytes, "encodes": attempt + 1,
                    "source_frames_decoded": encoded.decoded,
                    # the cap bound (the crf would have spent more) when the copy came out near it
                    "held_to_cap": target is not None and out_bytes >= 0.85 * target,
                    "held_to_bits_per_pixel": grain is not None and grain == cap and out_bytes >= 0.85 * grain,
                    "over_cap": target is not None and out_bytes > target}}


def _duration_s(container: Any, stream: Any, fps: float) -> float | None:
    """The source's length from its headers (None when they do not say)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1e6
    return stream.frames / fps if stream.frames else None


def _maxrate_kbps(target_bytes: float, seconds: float, keyframe_interval: float) -> int:
    """The VBV rate that keeps a copy of ``seconds`` within ``target_bytes``: x264 may spend the buffer's initial
    fill (0.9 of one keyframe interval's bits, its ``vbv-init``) on top of the rate, and the MP4 box costs ~3%."""
    return max(1, int(target_bytes * 8 / 1000 * 0.97 / (seconds + 0.9 * keyframe_interval)))


@dataclass
class _Encoded:
    written: int
    size: tuple[int, int]
    errors: list[str]
    decoded: int  # source frames decoded (fewer than the source's when the cap's skip applied)


def _encode_video(src: str, conv_dst: str, s: PrepareSettings, fps: float, out_fps: float, out_rate: Any,
                  threads: int, maxrate: int | None, ranks: Mapping[int, int] | None = None) -> _Encoded:
    """The capped, scaled, upright frames of ``src`` as an H.264 MP4 at ``conv_dst`` (written to a temporary name,
    then renamed), decoded from the start each call; ``maxrate`` (kbit/s) caps the bits through x264's VBV on top
    of the crf."""
    import av
    from av.video.frame import PictureType
    from av.video.reformatter import VideoReformatter

    tmp = f"{conv_dst}{TMP_MARK}-{os.getpid()}.mp4"
    written, rotation = 0, 0
    # one swscale context for the whole file: frame.reformat() builds one per frame (10x the conversion cost)
    scaler, to_yuv = VideoReformatter(), VideoReformatter()
    size: tuple[int, int] | None = None
    errors: list[str] = []
    try:
        with open_container(src) as container, av.open(tmp, "w", format="mp4") as dst:
            stream = container.streams.video[0]
            stream.thread_type, stream.thread_count = "AUTO", threads
            w, h = stream.codec_context.width, stream.codec_context.height
            enc = None
            capped = _CappedFrames(container, stream, errors, fps, out_fps, ranks)
            for slot, frame in capped:
                if enc is None:
                    rotation, size = _geometry(frame, w, h, s.short_side)
                    enc = dst.add_stream("libx264", rate=out_rate)
                    enc.width, enc.height, enc.pix_fmt = size[0], size[1], "yuv420p"
                    g = max(1, round(out_fps * s.keyframe_interval))
                    vbv = f"vbv-maxrate={maxrate}:vbv-bufsize={max(1, round(maxrate * s.keyframe_interval))}" \
                        if maxrate else ""
                    opts = {"crf": str(s.crf), "preset": s.preset,
                            "x264-params": ":".join(p for p in (f"keyint={g}:min-keyint={g}:scenecut=0",
                                                                s.x264_params, vbv) if p)}
                    if s.tune:
                        opts["tune"] = s.tune
                    enc.options = opts
                    enc.thread_count = threads
                    enc.codec_context.time_base = 1 / Fraction(out_rate)
                if rotation:  # phone videos: turn the pixels by the display matrix, as the readers do
                    arr = _upright(frame, rotation, size, scaler)
                    out = to_yuv.reformat(av.VideoFrame.from_ndarray(arr, format="rgb24"), format="yuv420p")
                else:
                    out = scaler.reformat(frame, width=size[0], height=size[1], format="yuv420p",
                                          interpolation="AREA")
                out.pts = slot
                out.time_base = enc.codec_context.time_base
                # x264 chooses the frame type: FFmpeg's libx264 forces a frame's own pict_type, and a decoded frame
                # carries the source's (a 60 fps source's kept frames made a copy of P-frames only: every frame a
                # reference, so a clip decoded all of them from the keyframe on)
                out.pict_type = PictureType.NONE
                for packet in enc.encode(out):
                    dst.mux(packet)
                written += 1
            if enc is None:
                raise VideoDecodeError(src, "no frames could be decoded")
            for packet in enc.encode():
                dst.mux(packet)
        os.replace(tmp, conv_dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    assert size is not None
    return _Encoded(written, size, errors, capped.decoded)


def _slot(n: int, fps: float, out_fps: float) -> int:
    """The copy's frame index (``out_fps`` slots) that source display frame ``n`` falls into (``out_fps <= fps``)."""
    return math.floor(n * out_fps / fps + 1e-6)


def _first_in_slot(n: int, fps: float, out_fps: float) -> bool:
    """Whether the cap keeps display frame ``n``: the first frame of its slot (slots run 0, 1, 2...)."""
    return n == 0 or _slot(n, fps, out_fps) > _slot(n - 1, fps, out_fps)


class _SkipNotExact(Exception):
    """A decoded frame's timestamp is not one the demuxer listed: the skip cannot place frames; decode them all."""


@dataclass
class _Packets:
    """The source's video packets in decode order, from one demux pass without decoding (~16 ms for 300 packets
    of 720p): where its keyframes are (the keep decision) and each packet's pts (the cap's skip)."""

    pts: list[int | None] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)  # packet indices
    complete: bool = True  # False: the demuxer failed before the end (no exact skip: the listing stops short)

    def keyframe_interval(self) -> int | None:
        return keyframe_gap(self.keyframes, len(self.pts))


def _demux(container: Any, stream: Any) -> _Packets:
    """:class:`_Packets` of ``stream``; a demuxer error ends the listing there (decoding then reports the file)."""
    packets = _Packets()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_keyframe:
                packets.keyframes.append(len(packets.pts))
            packets.pts.append(packet.pts)
    except Exception:  # noqa: BLE001  (a damaged tail: the frames before it are still converted)
        packets.complete = False
    return packets


def _display_ranks(pts: Sequence[int | None]) -> dict[int, int] | None:
    """Each video packet's pts -> its frame's display index (the rank of its pts); None when a pts is missing or
    repeated (no exact skip then)."""
    known = [p for p in pts if p is not None]
    if len(known) < len(pts):
        return None
    ranks = {p: i for i, p in enumerate(sorted(known))}
    return ranks if len(ranks) == len(known) else None


class _CappedFrames:
    """``(slot, frame)``: the frames the frame-rate cap keeps (the first of each ``out_fps`` slot), decoded from the
    start; ``decoded`` counts the source frames decoded.

    With ``ranks`` (:func:`_display_ranks`), a packet whose frame the cap drops is decoded with FFmpeg's
    ``skip_frame=NONREF``: when it is a non-reference frame (x264's B-frames between kept frames) it is not decoded
    at all, no other frame depends on it, and the frames kept are the ones decoding everything keeps, bit for bit
    (tested). Measured on 10 s of x264 720p at 30 fps capped to 15: 148 of 300 frames skipped, decoding 43%
    cheaper on the dev box."""

    def __init__(self, container: Any, stream: Any, errors: list[str], fps: float, out_fps: float,
                 ranks: Mapping[int, int] | None):
        self.container, self.stream, self.errors = container, stream, errors
        self.fps, self.out_fps, self.ranks = fps, out_fps, ranks
        self.decoded = 0

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for n, frame in self._indexed():
            if _first_in_slot(n, self.fps, self.out_fps):
                yield _slot(n, self.fps, self.out_fps), frame

    def _indexed(self) -> Iterator[tuple[int, Any]]:
        """``(display index, frame)`` of every frame decoded: counted without ``ranks``, else placed by them."""
        if self.ranks is None:
            for n, frame in enumerate(_until_damaged(self.container.decode(self.stream), self.errors)):
                self.decoded += 1
                yield n, frame
            return
        for frame in _until_damaged(self._skipping(self.ranks), self.errors):
            n = self.ranks.get(frame.pts)
            if n is None:
                raise _SkipNotExact(frame.pts)
            self.decoded += 1
            yield n, frame

    def _skipping(self, ranks: Mapping[int, int]) -> Iterator[Any]:
        """The stream's frames, each packet whose frame the cap drops decoded with ``skip_frame=NONREF``."""
        ctx = self.stream.codec_context
        skipping = False
        try:
            for packet in self.container.demux(self.stream):
                n = ranks.get(packet.pts) if packet.size else None
                skip = n is not None and not _first_in_slot(n, self.fps, self.out_fps)
                if skip != skipping:
                    ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                yield from packet.decode()
        finally:
            if skipping:
                ctx.skip_frame = "DEFAULT"


def _geometry(frame: Any, w: int, h: int, short_side: int) -> tuple[int, tuple[int, int]]:
    """The quarter turns that make ``frame`` upright (its display matrix) and the copy's (even) size."""
    rotation = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return rotation, _scaled_size(*((h, w) if rotation % 2 else (w, h)), short_side)


def _scaled_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    """A ``w`` x ``h`` frame with its short side at most ``short_side`` (never enlarged), both sides even."""
    scale = min(1.0, short_side / min(w, h))
    return _even(w * scale), _even(h * scale)


def _upright(frame: Any, rotation: int, size: tuple[int, int], scaler: Any) -> Any:
    """``frame`` scaled to ``size`` (area filter), upright, as an RGB ``(H, W, 3)`` array."""
    import numpy as np

    sw, sh = (size[1], size[0]) if rotation % 2 else size
    rgb = scaler.reformat(frame, width=sw, height=sh, format="rgb24", interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(np.rot90(rgb, rotation)) if rotation else rgb


def _write_store(src: str, dst: str, s: PrepareSettings, info: dict[str, Any], fps: float, out_fps: float,
                 out_rate: Any, threads: int, ranks: Mapping[int, int] | None) -> dict[str, Any]:
    """The frames a video copy would hold (same cap, size, turn), each a JPEG, into one frame store at ``dst``,
    decoded from the start each call."""
    from av.video.reformatter import VideoReformatter

    tmp = f"{dst}{TMP_MARK}-{os.getpid()}"
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    scaler = VideoReformatter()
    writer: FrameStoreWriter | None = None
    rotation, size = 0, (0, 0)
    errors: list[str] = []
    written = 0
    try:
        with open_container(src) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.thread_count = "AUTO", threads
            capped = _CappedFrames(container, stream, errors, fps, out_fps, ranks)
            for _, frame in capped:
                if writer is None:
                    rotation, size = _geometry(frame, info["width"], info["height"], s.short_side)
                    writer = FrameStoreWriter(tmp, out_rate, size[0], size[1], s.jpeg_quality,
                                              source={"path": os.path.basename(src), "fps": info["fps"]})
                writer.add(encode_jpegs([_upright(frame, rotation, size, scaler)], s.jpeg_quality)[0])
                written += 1
        if writer is None:
            raise VideoDecodeError(src, "no frames could be decoded")
        writer.close()
        os.replace(tmp, dst)
    finally:
        if writer is not None:
            writer.abort()
        if os.path.exists(tmp):
            os.remove(tmp)
    note = f"damaged: decoding stopped after {written} frames ({errors[0]}); the copy holds those" if errors else None
    return {"action": "converted", "dst": dst, "in": info, "note": note,
            "out": {"width": size[0], "height": size[1], "fps": round(out_fps, 3), "frames": written,
                    "format": "frames", "jpeg_quality": s.jpeg_quality, "bytes": os.path.getsize(dst),
                    "source_frames_decoded": capped.decoded}}


def _until_damaged(frames: Iterator[Any], errors: list[str]) -> Iterator[Any]:
    """``frames``; a damaged file's decode error after some frames ends them (noted in ``errors``), as training's
    readers keep the frames before the damage."""
    n = 0
    try:
        for frame in frames:
            n += 1
            yield frame
    except Exception as e:  # noqa: BLE001  (FFmpeg's InvalidDataError and friends)
        if n == 0:
            raise
        errors.append(decode_failure_reason(e))


def _fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1001)


def _keep(src: str, dst: str) -> None:
    """Hard-link the source into the copy (no space used), else copy it; atomically either way."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{dst}{TMP_MARK}-{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(os.path.realpath(src), tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


# ---------------------------------------------------------------------------------------------------- manifest
def _load_manifest(output: Path) -> dict[str, Any]:
    path = output / MANIFEST
    if not path.is_file():
        return {"version": MANIFEST_VERSION, "files": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("flashvid prepare: %s is unreadable: every file is checked again", path)
        return {"version": MANIFEST_VERSION, "files": {}}
    if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("files"), dict):
        return {"version": MANIFEST_VERSION, "files": {}}
    return data


def _fingerprint(src: str) -> dict[str, int] | None:
    try:
        st = os.stat(src)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _up_to_date(entry: Mapping[str, Any] | None, fp: Mapping[str, int] | None, settings: Mapping[str, Any],
                output: Path) -> bool:
    if not entry or fp is None or entry.get("size") != fp["size"] or entry.get("mtime_ns") != fp["mtime_ns"]:
        return False
    if entry.get("settings") != settings:
        return False
    if entry.get("action") == "failed":
        return True  # unchanged and unreadable: listed again, not retried
    return (output / entry["dst"]).is_file()


def _remove_stale_tmp(output: Path) -> None:
    for dirpath, _, names in os.walk(output):
        for name in names:
            if TMP_MARK in name:
                os.remove(os.path.join(dirpath, name))


# ---------------------------------------------------------------------------------------------------- the run
class PrepareWorkersDied(RuntimeError):
    """A worker process ended without a result: killed (out of memory, a signal) or, before any file was done,
    a script that calls :func:`prepare` outside ``if __name__ == "__main__":`` (the fork server imports the calling
    script again, which calls prepare again)."""

    def __init__(self, done: int):
        hint = "" if done else (
            "; when calling prepare() from a script, put the call under `if __name__ == \"__main__\":` (its workers "
            "start from a fork server, which imports the script again) or pass workers=1")
        super().__init__(f"prepare's worker processes ended abruptly (killed or out of memory) after {done} files"
                         f"{hint}; run the same command again to continue where it stopped")


def _worker_start() -> None:
    """A pool worker leaves Ctrl-C to the parent (which stops the pool and saves the manifest)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_context() -> Any:
    """Workers forked from a clean server process, never from this one: a process that has run torch holds
    OpenMP and decoder threads, and a fork copies their locks held (a worker forked after a training crashed in
    libgomp on the GPU machine; forked pools also hung CI). The server imports this module once, so each worker
    starts in milliseconds. Neither imports torch (PyAV, libx264 and Pillow's libjpeg do the work): with it, the
    server took the seconds torch takes to import before the first file, and each worker ran torch's JPEG encoder
    on a thread per core (16 workers x 16 threads on the GPU machine wrote stores at ~1 file/s)."""
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def start_pool_server() -> None:
    """Start the pool's server process now, not in the first :func:`prepare`: one server serves every later call
    of this process (a benchmark starts it before the clock; an application that prepares often, at start-up)."""
    proc = _pool_context().Process(target=os.getpid)
    proc.start()
    proc.join()


def prepare_samples(splits: Mapping[str, Sequence[VideoSample]], labels: Sequence[str], layout: _Layout,
                    output: str | os.PathLike, settings: PrepareSettings | None = None, *,
                    workers: int | None = None, progress: bool = True, force: bool = False,
                    skip_nonref: bool = True) -> PrepareReport:
    """Convert every sample of ``splits`` into ``output`` (see the module docstring); the report says what ran."""
    settings = settings or PrepareSettings()
    output = Path(output).expanduser().resolve()
    sources = _sources(splits, layout)
    _check_output(output, sources)
    plan = _plan(splits, layout, settings.suffix)
    _check_destinations(output, plan, sources)
    with locked_dir(output, busy=PREPARE_BUSY, unwritable=PREPARE_UNWRITABLE):  # before the stale files go
        return _prepare_into(output, plan, splits, labels, layout, settings, workers, progress, force, skip_nonref)


PREPARE_BUSY = ("the output {dir} is in use by another flashvid prepare (pid {pid}): wait for it to end, or choose "
                "another output=DIR")
PREPARE_UNWRITABLE = "cannot write in the output {dir} ({reason}): choose a writable output=DIR"


def _prepare_into(output: Path, plan: Mapping[str, tuple[Path, Path]], splits: Mapping[str, Sequence[VideoSample]],
                  labels: Sequence[str], layout: _Layout, settings: PrepareSettings, workers: int | None,
                  progress: bool, force: bool, skip_nonref: bool = True) -> PrepareReport:
    """The run itself, under the output's lock: another prepare into ``output`` would delete our temporary files."""
    _remove_stale_tmp(output)
    manifest = _load_manifest(output)
    files: dict[str, Any] = manifest["files"]
    skey = settings.key()
    report = PrepareReport(output=str(output), total=len(plan))
    todo = []
    for src, (conv, keep) in plan.items():
        fp = _fingerprint(src)
        if not force and _up_to_date(files.get(src), fp, skey, output):
            report.unchanged += 1
            continue
        todo.append((src, conv, keep, fp))
    # largest first: a long file started last would keep one worker busy after the others ran out of files
    todo.sort(key=lambda job: -(job[3] or {}).get("size", 0))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)

    t0 = time.perf_counter()
    last_save, save_cost = 0.0, 0.0

    def save(final: bool = False) -> None:
        # at most once a second, and at most ~5% of the time (a manifest of 300k files takes a while to write)
        nonlocal last_save, save_cost
        now = time.perf_counter()
        if final or now - last_save > max(1.0, 20 * save_cost):
            manifest["settings"] = skey
            _atomic_text(output / MANIFEST, json.dumps(manifest, indent=1))
            last_save = time.perf_counter()
            save_cost = last_save - now

    def record(src: str, fp: Mapping[str, int] | None, conv: Path, keep: Path, res: dict[str, Any]) -> None:
        old = files.get(src)
        entry = {**(fp or {}), "settings": skey, "action": res["action"], "seconds": res.get("seconds")}
        if res["action"] == "failed":
            entry["reason"] = res["reason"]
        else:
            entry["dst"] = (conv if res["action"] == "converted" else keep).as_posix()
            entry["in"], entry["out"] = res.get("in"), res.get("out")
            if res.get("note"):
                entry["note"] = res["note"]
            report.bytes_in += int(res["in"].get("bytes", 0))
            report.bytes_out += int(res["out"].get("bytes", 0))
        if old and old.get("dst") and old.get("dst") != entry.get("dst"):  # a decision or name changed: no orphan
            stale = output / old["dst"]
            if stale.is_file():
                stale.unlink()
        files[src] = entry
        if res["action"] == "converted":
            report.converted += 1
        elif res["action"] == "kept":
            report.kept += 1
        save()

    bar = _progress(len(todo)) if progress and todo else None
    interrupted = False
    try:
        if workers == 1:
            for src, conv, keep, fp in todo:
                res = convert_file(src, str(output / conv), str(output / keep), settings, threads, skip_nonref)
                record(src, fp, conv, keep, res)
                if bar is not None:
                    bar.advance()
        else:
            with ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_worker_start) as pool:
                pending: dict[Future, tuple] = {}
                queue = iter(todo)
                for job in queue:  # at most 2 jobs per worker in flight, so an interrupt loses little
                    pending[pool.submit(convert_file, job[0], str(output / job[1]), str(output / job[2]),
                                        settings, threads, skip_nonref)] = job
                    if len(pending) >= 2 * workers:
                        break
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            src, conv, keep, fp = pending.pop(fut)
                            try:
                                res = fut.result()
                            except BrokenProcessPool:
                                raise PrepareWorkersDied(report.converted + report.kept) from None
                            record(src, fp, conv, keep, res)
                            if bar is not None:
                                bar.advance()
                            nxt = next(queue, None)
                            if nxt is not None:
                                pending[pool.submit(convert_file, nxt[0], str(output / nxt[1]),
                                                    str(output / nxt[2]), settings, threads, skip_nonref)] = nxt
                except KeyboardInterrupt:
                    for fut in pending:
                        fut.cancel()
                    raise
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
        report.seconds = round(time.perf_counter() - t0, 3)
        save(final=True)
    if interrupted:
        print(f"flashvid prepare: interrupted; {report.converted + report.kept} files done, run the same command "
              "again to continue", file=sys.stderr)
        raise KeyboardInterrupt
    done_map = {src: e["dst"] for src, e in files.items() if src in plan and e.get("action") in ("converted", "kept")}
    report.failed = [{"path": src, "reason": files[src]["reason"]} for src in plan
                     if files.get(src, {}).get("action") == "failed"]
    report.files = [{"src": src, **{k: files[src].get(k) for k in ("action", "dst", "in", "out", "seconds", "note")}}
                    for src in plan if src in files]
    report.data_options = _write_lists(splits, labels, layout, output, done_map)
    save(final=True)
    return report


class _progress:
    """A rich progress bar with files/s and the time left."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("prepare"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                             console=Console(stderr=True))
        self._task = self._bar.add_task("prepare", total=total, rate="")
        self._t0 = time.perf_counter()
        self._n = 0
        self._bar.start()

    def advance(self) -> None:
        self._n += 1
        rate = self._n / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.update(self._task, advance=1, rate=f"{rate:.2f} files/s")

    def close(self) -> None:
        self._bar.stop()


def prepare(output: str | os.PathLike, *, source: str | None = None, settings: PrepareSettings | None = None,
            backbone: str | None = None, workers: int | None = None, progress: bool = True, force: bool = False,
            skip_nonref: bool = True, **options: Any) -> PrepareReport:
    """Convert a dataset into ``output`` once; see the module docstring.

    The source is a registered data source (:mod:`flashvid.source_registry`) with its arguments, as a ``data``
    config gives them: ``source="csv", train_file=..., root=...``; without ``source``, the one its arguments tell:
    class folders (``*_folder``), list files (``*_file`` with ``root``) or UCF101 (``root`` + ``annotations_dir``).
    Settings: a :class:`PrepareSettings`, or its fields among the keywords (``short_side=256, keyframe_interval=1.0,
    max_fps=15``); ``short_side`` and ``max_fps`` left out are sized for ``backbone``'s clips (default: 16 frames at
    stride 4 of 30 fps, 224 crops: short side 256, 15 fps), ``max_fps=None`` keeps the source's rate.
    ``skip_nonref=False`` decodes every source frame (the same copies, slower: to measure the cap's skip).
    """
    from ..source_registry import infer_source

    fields = {f.name for f in dataclasses.fields(PrepareSettings)}
    settings_kwargs = {k: options.pop(k) for k in list(options) if k in fields}
    if settings is None:
        settings = settings_for({}, backbone, **settings_kwargs)
    elif settings_kwargs or backbone:
        raise TypeError("pass settings=, or setting keywords and backbone=, not both")
    splits, labels, layout = _source(source or infer_source(options), options)
    return prepare_samples(splits, labels, layout, output, settings, workers=workers, progress=progress,
                           force=force, skip_nonref=skip_nonref)


def _source(source: str, arguments: Mapping[str, Any]) -> tuple[dict[str, list[VideoSample]], list[str], _Layout]:
    """The source's samples and the copy's layout: class folders and UCF101 keep theirs, any other source is written
    as path,label lists."""
    from ..source_registry import get_source, read_source
    from .sources import VIDEO_EXTENSIONS

    if "extensions" in get_source(source).arguments:  # MPEG-TS too: prepare converts it (training cannot seek in it)
        arguments = {"extensions": VIDEO_EXTENSIONS | SEQUENTIAL_ONLY_EXTENSIONS, **arguments}
    read = read_source(source, **arguments)
    if not any(read.splits.values()):
        raise ValueError(f"prepare: data source {source!r} gave no videos: set its paths (*_folder for class "
                         "folders, *_file for list files, root + annotations_dir for UCF101)")
    kind = read.layout if read.layout in ("folders", "ucf101") else "csv"
    roots = read.roots
    if kind == "csv":  # the copies go under videos/, relative to the folder every split's paths share
        folders = [str(p.resolve()) for p in roots.values()] or \
            [os.path.dirname(os.path.abspath(s.path)) for samples in read.splits.values() for s in samples]
        common = Path(os.path.commonpath(folders))
        roots = {split: common for split in read.splits}
    return read.splits, read.labels, _Layout(kind, roots, int(arguments.get("fold", 1)), inputs=read.inputs)


# ---------------------------------------------------------------------------------------------------- CLI
def model_data_config(data_cfg: Mapping[str, Any], backbone: str | None) -> "DataConfig":
    """The clip settings training will use: the backbone's (or the defaults), with ``data.*`` overrides on top."""
    from ..models.clip_settings import backbone_clip_settings  # torch-free until the registry loads
    from .clip_config import clip_overrides, resolve_clip_config

    return resolve_clip_config(backbone_clip_settings(str(backbone)) if backbone else None, clip_overrides(data_cfg))


def default_short_side(data_cfg: Mapping[str, Any], backbone: str | None) -> int:
    """What the training and evaluation crops need: the eval resize short side of the backbone (e.g. 256 for a
    224 crop), or ``data.resize_size`` / ``data.crop_size``, times the train short-side jitter when above 1."""
    short = model_data_config(data_cfg, backbone).short_side
    jitter = float(((data_cfg.get("augmentation") or {}).get("short_side_jitter")) or 1.0)
    return int(round(short * max(jitter, 1.0)))


def settings_for(data_cfg: Mapping[str, Any], backbone: str | None, **explicit: Any) -> PrepareSettings:
    """Settings sized for the model: ``short_side`` from its crops and ``max_fps`` from its sampler unless given;
    ``max_fps="auto"`` asks for the sampler's rate, ``None`` keeps the source's."""
    if explicit.get("short_side") is None:
        explicit["short_side"] = default_short_side(data_cfg, backbone)
    if "jpeg_quality" in explicit and explicit["jpeg_quality"] is None:  # the config's null: the measured default
        del explicit["jpeg_quality"]
    if explicit.get("max_fps", "auto") == "auto":
        sampling = model_data_config(data_cfg, backbone).sampling
        jitter = float(((data_cfg.get("augmentation") or {}).get("rate_jitter")) or 1.0)
        explicit["max_fps"] = default_max_fps(sampling, headroom=max(2.0, jitter))
    return PrepareSettings(**explicit)
