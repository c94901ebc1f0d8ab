"""Frame-store JPEGs decoded, and copies' YUV planes converted, on the training device, batched: the step before
the batch augmentations.

With ``jpeg_decode="device"`` a loader worker reads a store clip's JPEG bytes and decodes nothing (a fraction of a
millisecond per clip instead of the CPU decode); here, after the transfer, every JPEG of the batch is decoded in
one ``torchvision.io.decode_jpeg`` call on the device (nvJPEG on a GPU), then each clip goes through the split's
per-sample transform with the seed its worker drew, so a sample gets the crop CPU decoding gives it. With the store
at the data's short side (``flashvid prepare`` sizes it so), that transform is a slice: the train crop is a square
of the short side and the eval crop needs no resize.

A store whose JPEGs do not decode is dropped from the batch and listed under ``failed``, as an unreadable video is.

With ``color_convert="device"`` the workers hand over the crops of prepared copies as YUV planes
(:mod:`.planar`): every clip of the batch becomes RGB in one vectorised step here, already cropped.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from .dataset import PLANAR_ROW, EncodedClip, clip_views
from .frame_store import decode_jpegs, split_jpegs, stack_frames
from .planar import yuv_to_rgb
from .video_file import VideoDecodeError


@lru_cache(maxsize=None)
def device_decodes_jpeg(device: torch.device) -> tuple[bool, str]:
    """Whether torchvision decodes JPEG on ``device`` here (a CUDA build with nvJPEG), and why not."""
    from torchvision.io import decode_jpeg, encode_jpeg

    try:
        decode_jpeg([encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8))], device=device)
    except Exception as e:  # noqa: BLE001  (a build without nvJPEG raises RuntimeError; anything else: same answer)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"{type(e).__name__}: {first}"
    return True, "nvJPEG"


def _decode_all(clips: list[EncodedClip], device: torch.device) -> list[list[torch.Tensor] | VideoDecodeError]:
    """Each clip's distinct frames decoded: one batched call for all of them, or clip by clip (to find which) when
    one fails."""
    jpegs = [split_jpegs(c.buffer, c.bounds) for c in clips]
    try:
        frames = decode_jpegs([j for js in jpegs for j in js], device)
    except VideoDecodeError:
        out: list[list[torch.Tensor] | VideoDecodeError] = []
        for c, js in zip(clips, jpegs):
            try:
                out.append(decode_jpegs(js, device, c.path))
            except VideoDecodeError as e:
                out.append(e)
        return out
    result: list[list[torch.Tensor] | VideoDecodeError] = []
    start = 0
    for js in jpegs:
        result.append(list(frames[start:start + len(js)]))
        start += len(js)
    return result


def decode_on_device(batch: dict[str, Any], transform: Callable[[torch.Tensor], torch.Tensor] | None,
                     device: torch.device | str) -> dict[str, Any]:
    """``batch["encoded"]`` (see :func:`~flashvid.data.dataset.collate_clips`) into ``batch["video"]``: the store
    clips decoded on ``device`` and transformed there, the planar clips converted there, the worker-decoded rows
    as they came."""
    parts = batch.pop("encoded", None)
    if parts is None:
        return batch
    device = torch.device(device)
    planes = batch.pop("planar", None)
    rgb = None if planes is None else yuv_to_rgb(
        planes["y"].to(device, non_blocking=True), planes["uv"].to(device, non_blocking=True),
        planes["coeffs"].to(device, non_blocking=True), planes["phase"])
    if rgb is not None and all(isinstance(p, str) for p in parts):  # the usual batch: nothing to put in between
        batch["video"] = rgb
        return batch
    converted = iter(rgb if rgb is not None else ())
    clips = [p for p in parts if isinstance(p, EncodedClip)]
    decoded = iter(_decode_all(clips, device) if clips else ())
    videos: list[torch.Tensor] = []
    keep: list[bool] = []
    for part in parts:
        if isinstance(part, str) and part == PLANAR_ROW:
            videos.append(next(converted).unsqueeze(0))
            keep.append(True)
            continue
        if not isinstance(part, EncodedClip):
            videos.append(part.to(device, non_blocking=True))
            keep += [True] * part.shape[0]
            continue
        frames = next(decoded)
        if isinstance(frames, VideoDecodeError):
            index = int(batch["index"][len(keep)])
            batch["failed"].append({"index": index, "path": part.path, "reason": frames.reason})
            keep += [False] * part.rows
            continue
        video = clip_views(stack_frames(frames, part.order), part.num_clips, part.frames_per_clip, transform,
                           part.seed, part.single)
        videos.append(video if part.repeated else video.unsqueeze(0))
        keep += [True] * part.rows
    if not all(keep):
        _drop_rows(batch, keep)
    batch["video"] = torch.cat(videos) if videos else None
    return batch


def _drop_rows(batch: dict[str, Any], keep: list[bool]) -> None:
    """Remove the rows of failed stores from the labels, indices and paths."""
    mask = torch.tensor(keep)
    batch["label"] = batch["label"][mask.to(batch["label"].device)]
    batch["index"] = batch["index"][mask.to(batch["index"].device)]
    batch["path"] = [p for p, k in zip(batch["path"], keep) if k]
