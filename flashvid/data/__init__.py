"""Video sources, decoding, clip sampling, transforms and the ``VideoClassificationData`` datamodule."""

from .batch_augment import Augmentation, register_batch_augmentation
from .clip_config import DataConfig, resolve_clip_config
from .datamodule import VideoClassificationData
from .dataset import DecodeFailure, EpochShuffleSampler, VideoClipDataset, collate_clips
from .decoding import VideoDecodeError, VideoInfo, open_video, probe, resolve_decoder
from .demo import make_demo_dataset
from .prepare import PrepareReport, PrepareSettings, prepare  # flashvid.data.prepare(...) is the function
from .sampling import ClipSampling
from .sources import VIDEO_EXTENSIONS, VideoSample, collect_paths, group_split, list_videos
from .transforms import BatchAugmentation, MultiCrop, RandomShortSideCrop, ShortSideCenterCrop, resize_short_side

__all__ = [
    "Augmentation", "BatchAugmentation", "ClipSampling", "DataConfig", "DecodeFailure", "EpochShuffleSampler",
    "MultiCrop", "PrepareReport", "PrepareSettings", "RandomShortSideCrop", "ShortSideCenterCrop",
    "VIDEO_EXTENSIONS", "VideoClassificationData", "VideoClipDataset", "VideoDecodeError", "VideoInfo",
    "VideoSample", "collate_clips", "collect_paths",
    "group_split", "list_videos", "make_demo_dataset", "open_video", "prepare", "probe", "resize_short_side",
    "register_batch_augmentation", "resolve_clip_config", "resolve_decoder",
]
