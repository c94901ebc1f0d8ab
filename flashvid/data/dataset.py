"""Map-style clip datasets: one item = one video's clip (or all its test views), uint8.

Map-style (with ``__len__``) rather than pytorchvideo's iterable datasets, so samplers shard evenly across workers
and ranks and an epoch has a known length. A file that fails to decode yields a failure record instead of raising:
:func:`collate_clips` drops it from the batch and lists it under ``batch["failed"]``, so one broken download never
stops a run and every failure reaches the main process to be counted and reported.
"""

from __future__ import annotations

import logging
import random
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence

import torch
from torch.utils.data import Dataset

from .decoding import PyAVReader, VideoDecodeError, check_clip_size, decode_short_side, keyframe_indices, open_video
from .frame_store import FrameStoreReader
from .loader import EpochShuffleSampler, ResumableDataLoader, ShardedEpochSampler  # noqa: F401  (moved there)
from .planar import COLOR_CONVERT, NotPlanar, PlanarFrames, clip_planes, coefficients
from .sampling import ClipMode, ClipSampling
from .sources import VideoSample

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test", "predict"]


@dataclass(frozen=True)
class DecodeFailure:
    index: int
    path: str
    reason: str


def _item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """Clip choice depends only on (seed, epoch, index): the same with any number of workers or after a resume."""
    return random.Random(zlib.crc32(f"{seed}:{epoch}:{index}".encode()))


@contextmanager
def _seeded_globals(seed: int | None) -> Iterator[None]:
    """Seed Python's and torch's global RNGs with the item's transform seed (drawn from its rng), then restore them.

    Random crops (ours, and torchvision's in a user's transform) draw from the global RNGs, which each DataLoader
    worker seeds differently: without this the same seed gave different crops with 0 and 2 workers.
    """
    if seed is None:
        yield
        return
    state = random.getstate()
    random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    finally:
        random.setstate(state)


def clip_views(frames: torch.Tensor, num_clips: int, frames_per_clip: int,
               transform: Callable[[torch.Tensor], torch.Tensor] | None, seed: int | None, single: bool
               ) -> torch.Tensor:
    """A file's decoded clips (``num_clips`` x ``frames_per_clip`` frames, in order) through the per-sample
    ``transform``, whose random choices come from ``seed``: ``(T, C, H, W)`` when ``single``, else the views
    stacked ``(V, T, C, H, W)``. The same wherever the frames were decoded (a loader worker, or the training device
    for frame-store JPEGs: :mod:`.device_decode`), so both give a sample the same crop."""
    views: list[torch.Tensor] = []
    with _seeded_globals(seed):
        for c in range(num_clips):
            clip = frames[c * frames_per_clip : (c + 1) * frames_per_clip]
            clip = transform(clip) if transform is not None else clip
            views.extend(clip.unbind(0) if clip.dim() == 5 else [clip])
    if single and len(views) == 1:
        return views[0]
    return torch.stack(views)


class EncodedClip:
    """A frame-store clip whose JPEGs are decoded on the training device (``jpeg_decode="device"``): what a loader
    worker hands over instead of pixels. ``buffer[bounds[k]:bounds[k + 1]]`` is the k-th distinct frame, ``order``
    the clips' frames as distinct frames; ``seed`` is the transform seed the worker drew (the sample's crop).
    Not a tensor: Lightning's transfer to the device leaves it on the CPU, where nvJPEG reads its input."""

    __slots__ = ("path", "buffer", "bounds", "order", "num_clips", "frames_per_clip", "seed", "single", "repeated")

    def __init__(self, path: str, buffer: Any, bounds: list[int], order: list[int], num_clips: int,
                 frames_per_clip: int, seed: int | None, single: bool, repeated: bool):
        self.path, self.buffer, self.bounds, self.order = path, buffer, bounds, order
        self.num_clips, self.frames_per_clip, self.seed = num_clips, frames_per_clip, seed
        self.single, self.repeated = single, repeated

    @property
    def rows(self) -> int:
        """Batch rows it becomes: one per clip when repeated (``clips_per_video``), else one."""
        return self.num_clips if self.repeated else 1


JPEG_DECODE = ("workers", "device")
PLANAR_ROW = "planar"  # in ``batch["encoded"]``: the next clip of ``batch["planar"]`` (see collate_clips)


class VideoClipDataset(Dataset):
    """Decode clips of ``samples``.

    ``clip_mode`` picks the clip start (``random`` for training, ``center``/``uniform`` for evaluation);
    ``num_clips > 1`` returns every clip of a video together as views ``(V, T, C, H, W)``, and a ``transform``
    that returns ``(crops, T, C, H, W)`` (:class:`~flashvid.data.transforms.MultiCrop`) multiplies the views.
    ``jpeg_decode="device"``: frame-store files come back as :class:`EncodedClip` (JPEG bytes, decoded and
    transformed on the training device by :func:`~flashvid.data.device_decode.decode_on_device`); videos are
    decoded here either way. ``color_convert="device"``: training or single-view clips whose transform only crops
    (a prepared copy) come back as the crops' YUV planes (:class:`~flashvid.data.planar.PlanarFrames`), converted
    to RGB on the training device (:mod:`.planar`).
    """

    def __init__(
        self,
        samples: Sequence[VideoSample],
        sampling: ClipSampling,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        clip_mode: ClipMode = "random",
        num_clips: int = 1,
        decoder: str = "auto",
        seed: int = 0,
        clips_per_video: int = 1,
        keyframe_aligned: bool = False,
        decode_threads: int = 1,
        skip_nonref: bool = True,
        jpeg_decode: str = "workers",
        color_convert: str = "workers",
    ):
        if jpeg_decode not in JPEG_DECODE:
            raise ValueError(f"jpeg_decode must be one of {', '.join(JPEG_DECODE)}, got {jpeg_decode!r}")
        if color_convert not in COLOR_CONVERT:
            raise ValueError(f"color_convert must be one of {', '.join(COLOR_CONVERT)}, got {color_convert!r}")
        self.jpeg_decode, self.color_convert = jpeg_decode, color_convert
        if clips_per_video < 1:
            raise ValueError(f"clips_per_video must be >= 1, got {clips_per_video}")
        if (clips_per_video > 1 or keyframe_aligned) and clip_mode != "random":
            raise ValueError("clips_per_video and keyframe_aligned are for random (training) clips")
        self.clips_per_video = clips_per_video
        self.keyframe_aligned = keyframe_aligned
        self.decode_threads = decode_threads
        self.skip_nonref = skip_nonref  # PyAV's exact non-reference skip (decoding.open_video); off to measure it
        self.samples = list(samples)
        self.sampling = sampling
        self.transform = transform
        self.clip_mode = clip_mode
        self.num_clips = num_clips
        self.decoder = decoder
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | DecodeFailure:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        try:
            video = self.load(sample.path, _item_rng(self.seed, epoch, index))
        except VideoDecodeError as e:
            return DecodeFailure(index, e.path, e.reason)
        except Exception as e:  # a transform or decoder bug on one odd file must not kill the run either
            return DecodeFailure(index, sample.path, f"{type(e).__name__}: {e}")
        item = {"video": video, "label": sample.label, "index": index, "path": sample.path}
        if self.clips_per_video > 1:
            item["repeated"] = True  # (N, T, C, H, W): collate_clips makes N batch rows of it
        return item

    def _clips(self, path: str, info: Any, rng: random.Random | None) -> list[list[int]]:
        if self.clips_per_video == 1 and not self.keyframe_aligned:
            return self.sampling.clips(info.num_frames, info.fps, self.clip_mode, self.num_clips, rng)
        keys = keyframe_indices(path) if self.keyframe_aligned else None
        return self.sampling.repeated_clips(info.num_frames, info.fps, self.clips_per_video, rng, keys)

    def load(self, path: str, rng: random.Random | None = None) -> torch.Tensor | EncodedClip | PlanarFrames:
        """The clip(s) of one file: ``(T, C, H, W)``, or ``(V, T, C, H, W)`` when there are several views.

        Only the frames the clips need are decoded, so memory is bounded by ``num_frames`` x frame size whatever
        the file's length, and frames much larger than the transform's ``decode_short_side`` are scaled down while
        decoding (:func:`~flashvid.data.decoding.decode_short_side`). With ``rng`` the random transforms draw from it
        too (through a private seeding of ``random``), so a sample's crop depends on (seed, epoch, index) alone, as
        its clip start does. A frame store with ``jpeg_decode="device"``: its :class:`EncodedClip`; a crop left in
        YUV for the device (``color_convert="device"``): its :class:`~flashvid.data.planar.PlanarFrames`.
        """
        single = self.num_clips == 1 and self.clips_per_video == 1
        reader = open_video(path, self.decoder, num_threads=self.decode_threads, skip_nonref=self.skip_nonref)
        try:
            info = reader.info
            clips = self._clips(path, info, rng)
            flat = [i for clip in clips for i in clip]
            seed = rng.getrandbits(63) if rng is not None else None
            if self.jpeg_decode == "device" and isinstance(reader, FrameStoreReader):
                buffer, bounds, order = reader.jpegs_at(flat)
                return EncodedClip(path, buffer, bounds, order, len(clips), self.sampling.num_frames, seed, single,
                                   self.clips_per_video > 1)
            needed = getattr(self.transform, "decode_short_side", None)  # None: a transform of unknown size
            short = decode_short_side(info, self.sampling.num_frames, needed)
            check_clip_size(path, info, self.sampling.num_frames, short)  # per clip (views multiply it by choice)
            if self.color_convert == "device" and self.num_clips == 1 and short is None and \
                    isinstance(reader, PyAVReader):
                planes = self._planes(reader, info, flat, len(clips), seed)
                if planes is not None:
                    return planes
            frames = reader.frames_at(flat, short)
        finally:
            reader.close()
        return clip_views(frames, len(clips), self.sampling.num_frames, self.transform, seed, single)

    def _planes(self, reader: PyAVReader, info: Any, flat: list[int], clips: int, seed: int | None
                ) -> PlanarFrames | None:
        """The crops the transform would cut under ``seed`` from the frames ``flat`` of ``clips`` clips (one crop
        per clip, drawn in order as :func:`clip_views` draws them), as YUV planes; None when the transform does
        more than crop these frames, or they are not plain 4:2:0 (rotated, another format or matrix): RGB then."""
        crop_box = getattr(self.transform, "crop_box", None)
        if crop_box is None:
            return None
        with _seeded_globals(seed):
            boxes = [crop_box(info.height, info.width) for _ in range(clips)]
        if any(box is None for box in boxes):
            return None
        try:
            return clip_planes(reader.decoded_frames(flat), boxes, self.sampling.num_frames)
        except NotPlanar as e:
            log.debug("flashvid: %s is converted to RGB in the worker: %s", reader.path, e)
            return None


def collate_clips(items: Sequence[dict[str, Any] | DecodeFailure]) -> dict[str, Any]:
    """Stack good items; list the failed ones under ``failed`` (``video`` is None when all failed).

    Items of ``clips_per_video=N`` (marked ``repeated``) become N consecutive rows each, with their label, index
    and path repeated: the batch holds N x the videos, and the model sees plain ``(B, T, C, H, W)`` clips.
    Multi-label items (a tuple of class indices each) give ``label`` as ``(batch, most classes)`` indices padded
    with -1; :func:`multi_hot` (the datamodule, once it knows the number of classes) turns them into 0/1 rows.

    When an item is an :class:`EncodedClip` (frame-store JPEGs left for the device) or YUV planes
    (:class:`~flashvid.data.planar.PlanarFrames`), ``video`` is None and ``encoded`` lists every good item's rows in
    order: a tensor (decoded in the worker), an :class:`EncodedClip`, or ``"planar"`` for the next clip of
    ``planar`` (the planes of all of them, one row per clip);
    :func:`~flashvid.data.device_decode.decode_on_device` makes ``video`` of them.
    """
    good = [it for it in items if not isinstance(it, DecodeFailure)]
    reps = [it["video"].rows if isinstance(it["video"], (EncodedClip, PlanarFrames)) else it["video"].shape[0]
            if it.get("repeated") else 1 for it in good]
    videos = [it["video"] if it.get("repeated") or isinstance(it["video"], (EncodedClip, PlanarFrames))
              else it["video"].unsqueeze(0) for it in good]
    planar = [v for v in videos if isinstance(v, PlanarFrames)]
    encoded = bool(planar) or any(isinstance(v, EncodedClip) for v in videos)
    batch = {
        "video": torch.cat(videos) if good and not encoded else None,
        "label": _labels([it["label"] for it, r in zip(good, reps) for _ in range(r)]),
        "index": torch.tensor([it["index"] for it, r in zip(good, reps) for _ in range(r)], dtype=torch.long),
        "path": [it["path"] for it, r in zip(good, reps) for _ in range(r)],
        "failed": [{"index": f.index, "path": f.path, "reason": f.reason}
                   for f in items if isinstance(f, DecodeFailure)],
    }
    if encoded:
        batch["encoded"] = [r for v in videos for r in ([PLANAR_ROW] * v.rows if isinstance(v, PlanarFrames) else [v])]
    if planar:  # one tensor per plane for the whole batch: pinned and copied to the device once
        batch["planar"] = {
            "y": torch.cat([p.y for p in planar]), "uv": torch.cat([p.uv for p in planar]),
            "coeffs": torch.tensor([coefficients(p.matrix, p.full_range) for p in planar for _ in range(p.rows)]),
            "phase": [ph for p in planar for ph in p.phases],  # a list: read on the host, the device need not wait
        }
    return batch


def _labels(labels: Sequence[int | tuple[int, ...]]) -> torch.Tensor:
    if not any(isinstance(x, tuple) for x in labels):
        return torch.tensor(labels, dtype=torch.long)
    rows = [x if isinstance(x, tuple) else (x,) for x in labels]
    width = max((len(r) for r in rows), default=0)
    return torch.tensor([list(r) + [-1] * (width - len(r)) for r in rows], dtype=torch.long).view(len(rows), width)


def multi_hot(indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(batch, k)`` class indices padded with -1 into ``(batch, num_classes)`` float 0/1 targets."""
    out = torch.zeros(indices.shape[0], num_classes + 1, device=indices.device)
    out.scatter_(1, torch.where(indices < 0, num_classes, indices), 1.0)
    return out[:, :num_classes]
