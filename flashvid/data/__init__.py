"""Video sources, decoding, clip sampling, transforms and the ``VideoClassificationData`` datamodule.

The names load on first use (PEP 562), as in ``flashvid/__init__.py``: a process that only prepares or probes
videos (``prepare``'s pool workers, ``doctor``) does not import Lightning, Kornia and torchmetrics (~10 s here).
``prepare`` is imported at once: ``flashvid.data.prepare`` is the function, not the submodule of that name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .prepare import PrepareReport, PrepareSettings, prepare

if TYPE_CHECKING:
    from .batch_augment import Augmentation, register_batch_augmentation
    from .clip_config import DataConfig, resolve_clip_config
    from .datamodule import VideoClassificationData
    from .dataset import DecodeFailure, EpochShuffleSampler, VideoClipDataset, collate_clips
    from .decoding import VideoDecodeError, VideoInfo, open_video, probe, resolve_decoder
    from .demo import make_demo_dataset
    from .sampling import ClipSampling
    from .sources import VIDEO_EXTENSIONS, VideoSample, collect_paths, group_split, list_videos
    from .transforms import BatchAugmentation, MultiCrop, RandomShortSideCrop, ShortSideCenterCrop, resize_short_side

# public name -> the submodule that defines it
_LAZY = {
    **dict.fromkeys(["Augmentation", "register_batch_augmentation"], ".batch_augment"),
    **dict.fromkeys(["DataConfig", "resolve_clip_config"], ".clip_config"),
    "VideoClassificationData": ".datamodule",
    **dict.fromkeys(["DecodeFailure", "EpochShuffleSampler", "VideoClipDataset", "collate_clips"], ".dataset"),
    **dict.fromkeys(["VideoDecodeError", "VideoInfo", "open_video", "probe", "resolve_decoder"], ".decoding"),
    "make_demo_dataset": ".demo",
    "ClipSampling": ".sampling",
    **dict.fromkeys(["VIDEO_EXTENSIONS", "VideoSample", "collect_paths", "group_split", "list_videos"], ".sources"),
    **dict.fromkeys(["BatchAugmentation", "MultiCrop", "RandomShortSideCrop", "ShortSideCenterCrop",
                     "resize_short_side"], ".transforms"),
}

__all__ = [
    "Augmentation", "BatchAugmentation", "ClipSampling", "DataConfig", "DecodeFailure", "EpochShuffleSampler",
    "MultiCrop", "PrepareReport", "PrepareSettings", "RandomShortSideCrop", "ShortSideCenterCrop",
    "VIDEO_EXTENSIONS", "VideoClassificationData", "VideoClipDataset", "VideoDecodeError", "VideoInfo",
    "VideoSample", "collate_clips", "collect_paths",
    "group_split", "list_videos", "make_demo_dataset", "open_video", "prepare", "probe", "resize_short_side",
    "register_batch_augmentation", "resolve_clip_config", "resolve_decoder",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'flashvid.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
