"""``VideoClassificationData``: the LightningDataModule users point at their videos.

Clip settings (frames, sampling rate, crop size, mean/std) default to ``None`` and are taken from the model's
backbone entry when the trainer attaches both, so they are set once, by choosing a backbone. Anything passed here
explicitly wins.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from .clip_augment import ClipAutoAugment
from .clip_config import DataConfig, clip_overrides, resolve_clip_config
from .dataset import (
    JPEG_DECODE,
    EpochShuffleSampler,
    ResumableDataLoader,
    ShardedEpochSampler,
    VideoClipDataset,
    collate_clips,
    multi_hot,
)
from .decoding import DECODERS, resolve_decoder
from .device_decode import decode_on_device, device_decodes_jpeg
from .mixing import ClipMix
from .sources import (
    UCF101_GROUP_PATTERN,
    VideoSample,
    as_multi_label,
    check_outside_root,
    collect_paths,
    group_split,
    read_csv,
    read_ucf101_split,
    scan_class_folders,
)
from .transforms import BatchAugmentation, RandomShortSideCrop

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "predict")
# what each Lightning stage is doing, for log lines ("CPU testing with 2 decode workers")
STAGE_NAMES = {"fit": "training", "validate": "validation", "test": "testing", "predict": "prediction"}


@dataclass
class Augmentation:
    """GPU training augmentation (Kornia), applied per batch after the transfer to the device."""

    scale: tuple[float, float] = (0.25, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: float = 0.0
    backend: str = "fused"  # "fused" (one roi_align kernel) or "kornia" (VideoSequential)
    short_side_jitter: float = 1.0  # CPU train short side drawn from [short_side, short_side * this]; the GPU
    # random resized crop already varies scale, so workers skip the extra resize by default
    auto_augment: str | None = None  # "rand-m7-n4-mstd0.5-inc1" (timm's form) or "trivial": same ops on every frame
    mixup_alpha: float = 0.0  # mixup with soft targets (0 = off); the VideoMAE/MViT recipes use 0.8
    cutmix_alpha: float = 0.0  # CutMix, one box for all frames of a clip (0 = off); the recipes use 1.0
    mix_prob: float = 1.0  # share of batches mixed at all
    mix_switch_prob: float = 0.5  # with both on: share of mixed batches that use CutMix
    rate_jitter: float = 1.0  # training clips' stride scaled by a factor in [1/this, this] (1 = off)

    def __post_init__(self) -> None:  # bad settings fail when the config is built, not at the first batch
        if self.auto_augment:
            from .clip_augment import parse_policy

            parse_policy(self.auto_augment)
        ClipMix(2, self.mixup_alpha, self.cutmix_alpha, self.mix_prob, self.mix_switch_prob)
        if self.rate_jitter < 1.0:
            raise ValueError(f"rate_jitter must be >= 1 (1 = off), got {self.rate_jitter}")


def default_num_workers(ranks_per_node: int = 1) -> int:
    """Decode workers per training process: about 5/8 of its share of the cores, keeping at least two cores
    for the main process and the pin-memory thread. Measured on 16 cores (H100 box, VideoMAE-base): 10 workers
    fed 307 clips/s, while 15 starved the training loop down to 243."""
    cores = max((os.cpu_count() or 1) // max(ranks_per_node, 1), 1)
    return max(1, min(cores - 2, round(cores * 5 / 8)))


class VideoClassificationData(L.LightningDataModule):
    """Folder, CSV, UCF101 or path sources into clip dataloaders with GPU per-batch augmentation.

    Use the ``from_*`` constructors. ``num_workers=None`` picks :func:`default_num_workers`.
    """

    def __init__(
        self,
        train: Sequence[VideoSample] | None = None,
        val: Sequence[VideoSample] | None = None,
        test: Sequence[VideoSample] | None = None,
        predict: Sequence[VideoSample] | None = None,
        labels: Sequence[str] | None = None,
        *,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        num_frames: int | None = None,
        sampling_rate: float | None = None,
        clip_duration: float | None = None,
        target_fps: float | None = None,
        crop_size: int | None = None,
        resize_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        clips_per_video: int = 1,
        keyframe_aligned: bool = False,
        decode_threads: int = 1,
        decoder: str = "auto",
        jpeg_decode: str = "auto",
        transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        augmentation: Augmentation | Mapping[str, Any] | None = None,
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        prefetch_factor: int | None = 4,
        drop_last: bool = True,
    ):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}")
        if jpeg_decode not in ("auto", *JPEG_DECODE):
            raise ValueError(f"unknown jpeg_decode {jpeg_decode!r}: choose one of auto, {', '.join(JPEG_DECODE)}")
        if transforms is not None:
            bad = set(transforms) - set(SPLITS)
            if bad:
                raise ValueError(f"transforms keys must be among {SPLITS}, got {sorted(bad)}")
        self.samples: dict[str, list[VideoSample]] = {
            k: list(v) for k, v in zip(SPLITS, (train, val, test, predict)) if v is not None
        }
        self.labels: list[str] = list(labels) if labels is not None else []
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self._num_workers = num_workers
        self._threads_before: int | None = None  # torch threads before _share_cpu_cores lowered them
        self._overrides = clip_overrides(dict(
            num_frames=num_frames, sampling_rate=sampling_rate, clip_duration=clip_duration, target_fps=target_fps,
            crop_size=crop_size, resize_size=resize_size, mean=mean, std=std))
        self.data_config = resolve_clip_config(None, self._overrides)
        self.num_clips, self.num_crops = num_clips, num_crops
        if clips_per_video < 1:
            raise ValueError(f"clips_per_video must be >= 1, got {clips_per_video}")
        if decode_threads < 1:
            raise ValueError(f"decode_threads must be >= 1, got {decode_threads}")
        # training: N clips (each with its own crop) from one decoded span per video; a batch holds N x batch_size
        # clips, an epoch the same number of steps (VideoMAE / MAE-ST repeated sampling)
        self.clips_per_video = clips_per_video
        self.keyframe_aligned = keyframe_aligned  # training clips start at keyframes: no lead-in, fewer starts
        self.decode_threads = decode_threads  # decoder threads per loader worker (large frames, spare cores)
        self.decoder = decoder
        # where frame-store JPEGs are decoded: "workers", "device" (batched on the training device, nvJPEG on a
        # GPU) or "auto" (the device when it is a GPU that decodes JPEG)
        self.jpeg_decode = jpeg_decode
        self.transforms = dict(transforms or {})
        if isinstance(augmentation, Mapping):
            augmentation = Augmentation(**augmentation)
        self.augmentation = augmentation or Augmentation()
        self.seed = seed
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.drop_last = drop_last
        self.datasets: dict[str, VideoClipDataset] = {}
        self.source_warnings: list[str] = []  # what the source found odd but accepted (flashvid doctor lists it)
        self._gpu_train: BatchAugmentation | None = None
        self._gpu_eval: BatchAugmentation | None = None
        self._auto_augment: ClipAutoAugment | None = None
        self._mix: ClipMix | None = None

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_folders(
        cls,
        train_folder: str | os.PathLike | None = None,
        val_folder: str | os.PathLike | None = None,
        test_folder: str | os.PathLike | None = None,
        predict_folder: str | os.PathLike | None = None,
        val_split: float | None = None,
        group_pattern: str | None = UCF101_GROUP_PATTERN,
        **kwargs: Any,
    ) -> "VideoClassificationData":
        """``<split>/<class>/<video>`` folders. Without ``val_folder``, ``val_split`` holds out whole groups."""
        labels = None
        train = val = test = None
        notes: list[str] = []
        if train_folder is not None:
            train, labels = scan_class_folders(train_folder, what="train_folder", notes=notes)
        if val_folder is not None:
            val, labels = scan_class_folders(val_folder, labels, what="val_folder", notes=notes)
        if test_folder is not None:
            test, labels = scan_class_folders(test_folder, labels, what="test_folder", notes=notes)
        predict = collect_paths(predict_folder) if predict_folder is not None else None
        if val_split and train is not None and val is None:
            train, val = group_split(train, val_split, group_pattern, kwargs.get("seed", 0))
        dm = cls(train, val, test, predict, labels, **kwargs)
        dm.source_warnings = notes  # symlinks not followed: flashvid doctor lists them
        return dm

    @classmethod
    def from_csv(
        cls,
        train_file: str | os.PathLike | None = None,
        val_file: str | os.PathLike | None = None,
        test_file: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        labels: Sequence[str] | None = None,
        val_split: float | None = None,
        group_pattern: str | None = UCF101_GROUP_PATTERN,
        allow_outside_root: bool = True,
        **kwargs: Any,
    ) -> "VideoClassificationData":
        """``path,label`` list files (label a name or an index); relative paths resolve against ``root``.

        Listed paths that resolve outside ``root`` (``../x.mp4``, absolute paths) are accepted with a warning
        (kept in ``source_warnings`` for ``flashvid doctor``), or refused with ``allow_outside_root=False``.
        ``path,label1;label2`` rows make multi-label data (train with ``VideoClassifier(multi_label=True)``).
        """
        splits: dict[str, list[VideoSample]] = {}
        notes: list[str] = []
        for split, f in (("train", train_file), ("val", val_file), ("test", test_file)):
            if f is not None:
                splits[split], labels = read_csv(f, root, labels, notes=notes)
                note = check_outside_root(splits[split], root, f"{split} list {str(f)!r}", allow_outside_root)
                if note:
                    notes.append(note)
        if any(isinstance(s.label, tuple) for samples in splits.values() for s in samples):
            splits = {k: as_multi_label(v) for k, v in splits.items()}
        if val_split and "train" in splits and "val" not in splits:
            splits["train"], splits["val"] = group_split(splits["train"], val_split, group_pattern,
                                                         kwargs.get("seed", 0))
        dm = cls(splits.get("train"), splits.get("val"), splits.get("test"), None, labels, **kwargs)
        dm.source_warnings = notes
        return dm

    @classmethod
    def from_ucf101(
        cls,
        root: str | os.PathLike,
        annotations_dir: str | os.PathLike,
        fold: int = 1,
        val_split: float | None = 0.1,
        **kwargs: Any,
    ) -> "VideoClassificationData":
        """The official UCF101 split: ``classInd.txt`` and ``trainlist0N``/``testlist0N``. Validation holds out
        whole ``_gNN_`` groups of the train list (the test list is the official test set)."""
        train, test, labels = read_ucf101_split(root, annotations_dir, fold)
        val = None
        if val_split:
            train, val = group_split(train, val_split, UCF101_GROUP_PATTERN, kwargs.get("seed", 0))
        return cls(train, val, test, None, labels, **kwargs)

    @classmethod
    def from_paths(cls, paths: str | os.PathLike | Iterable[str | os.PathLike],
                   labels: Sequence[str] | None = None, **kwargs: Any) -> "VideoClassificationData":
        """Predict-only data: files and/or folders."""
        return cls(predict=collect_paths(paths), labels=labels, **kwargs)

    from_files = from_paths

    # ------------------------------------------------------------------ label views
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        """Samples carry several classes each (``path,a;b`` list files): batches hold multi-hot labels."""
        return any(isinstance(s.label, tuple) for samples in self.samples.values() for s in samples[:1])

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    # ------------------------------------------------------------------ configuration from the model
    def configure_from_model(self, model_data_config: DataConfig | Mapping[str, Any]) -> None:
        """Adopt the model's clip settings, keeping the values passed to this datamodule explicitly."""
        self.data_config = resolve_clip_config(model_data_config, self._overrides)

    def setup(self, stage: str | None = None) -> None:
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        if model is not None and getattr(model, "data_config", None) is not None:
            self.configure_from_model(model.data_config)
        cfg = self.data_config
        log.info("flashvid data: %s", cfg)
        sampling = cfg.sampling
        jitter = max(self.augmentation.short_side_jitter, 1.0)
        default_transforms = {
            "train": RandomShortSideCrop(cfg.short_side, cfg.short_side, round(cfg.short_side * jitter)),
            "val": cfg.eval_transform(),
            "test": cfg.eval_transform(self.num_crops),
            "predict": cfg.eval_transform(),
        }
        modes = {"train": "random", "val": "center", "test": "uniform", "predict": "center"}
        decoder = resolve_decoder(self.decoder)  # once, here: forked workers inherit the choice and its log line
        self._share_cpu_cores(stage)
        jpeg_decode = self._jpeg_decode_at()
        a = self.augmentation
        for split, samples in self.samples.items():
            clips = self.num_clips if split == "test" else 1
            train = split == "train"
            self.datasets[split] = VideoClipDataset(
                samples, replace(sampling, rate_jitter=a.rate_jitter) if split == "train" else sampling,
                self.transforms.get(split, default_transforms[split]), modes[split],
                num_clips=clips, decoder=decoder, seed=self.seed, decode_threads=self.decode_threads,
                clips_per_video=self.clips_per_video if train else 1,
                keyframe_aligned=self.keyframe_aligned and train, jpeg_decode=jpeg_decode,
            )
        self._gpu_train = BatchAugmentation(cfg.mean, cfg.std, cfg.crop_size, train=True, scale=tuple(a.scale),
                                            ratio=tuple(a.ratio), hflip=a.hflip, color_jitter=a.color_jitter,
                                            backend=a.backend)
        self._gpu_eval = BatchAugmentation(cfg.mean, cfg.std, cfg.crop_size, train=False)
        self._auto_augment = ClipAutoAugment(a.auto_augment) if a.auto_augment else None
        mix = ClipMix(max(self.num_classes, 1), a.mixup_alpha, a.cutmix_alpha, a.mix_prob, a.mix_switch_prob)
        self._mix = mix if mix.active else None

    # ------------------------------------------------------------------ frame-store JPEGs on the device
    def _jpeg_decode_at(self) -> str:
        """Where frame-store JPEGs are decoded this run: ``jpeg_decode``, with ``auto`` resolved (the device when
        training on a GPU that decodes JPEG, else the workers; said once in the log when it is the device)."""
        if self.jpeg_decode != "auto":
            return self.jpeg_decode
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if device is None or device.type != "cuda":
            return "workers"
        ok, why = device_decodes_jpeg(device)
        if ok:
            log.info("flashvid data: frame-store JPEGs are decoded on %s (nvJPEG), batched; workers read bytes", device)
            return "device"
        log.warning("flashvid data: frame-store JPEGs are decoded in the loader workers: %s cannot (%s)", device, why)
        return "workers"

    def _split_running(self) -> str:
        trainer = self.trainer
        if trainer is None or trainer.training:
            return "train"
        if trainer.testing:
            return "test"
        if trainer.predicting:
            return "predict"
        return "val"

    def decode_jpegs_on_device(self, batch: Any) -> Any:
        """Decode step (first in :meth:`on_after_batch_transfer`): a batch holding frame-store JPEGs (workers with
        ``jpeg_decode="device"``) gets its clips decoded on the batch's device and through the split's per-sample
        transform, with the crops CPU decoding would give (:mod:`.device_decode`)."""
        if not isinstance(batch, dict) or "encoded" not in batch:
            return batch
        dataset = self.datasets.get(self._split_running())
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        return decode_on_device(batch, dataset.transform if dataset is not None else None, device)

    # ------------------------------------------------------------------ loaders
    def _share_cpu_cores(self, stage: str | None = None) -> None:
        """On the CPU, decode workers and torch's compute threads split the cores. Oversubscribed (1 worker plus
        torch's 2 threads on 2 cores) the demo trained several times slower. The log line names the stage."""
        trainer = self.trainer
        if trainer is None or trainer.strategy.root_device.type != "cpu" or self.num_workers == 0:
            return
        threads = max(1, (os.cpu_count() or 1) // max(trainer.num_devices, 1) - self.num_workers)
        if torch.get_num_threads() > threads:
            doing = STAGE_NAMES.get(stage or "", "running")
            log.info("flashvid: CPU %s with %d decode worker%s: torch compute threads %d -> %d", doing,
                     self.num_workers, "" if self.num_workers == 1 else "s", torch.get_num_threads(), threads)
            if self._threads_before is None:
                self._threads_before = torch.get_num_threads()
            torch.set_num_threads(threads)

    def teardown(self, stage: str | None = None) -> None:
        """Give the process its compute threads back after fit, test or predict: a notebook, a test suite or a
        sweep runs on in the same process, and later runs there (even ones without workers) would otherwise compute
        on fewer threads, with other rounding, than the same run in a fresh process."""
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    @property
    def num_workers(self) -> int:
        if self._num_workers is not None:
            return self._num_workers
        ranks = self.trainer.num_devices if self.trainer is not None else 1
        return default_num_workers(ranks)

    @num_workers.setter
    def num_workers(self, value: int | None) -> None:
        self._num_workers = value

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} data: pass a {split} folder/file to VideoClassificationData")
        ds = self.datasets[split]
        workers = self.num_workers
        kw: dict[str, Any] = {}
        if workers > 0:
            kw = dict(persistent_workers=self.persistent_workers and split != "predict",
                      prefetch_factor=self.prefetch_factor)
        train = split == "train"
        sampler: Any = (self._train_shard(len(ds), shuffle) if train
                        else EpochShuffleSampler(len(ds), shuffle=shuffle, seed=self.seed))
        if split in ("val", "test"):  # (predict: Lightning already shards without padding)
            sampler = self._eval_shard(sampler, split)
        return ResumableDataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_clips,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            drop_last=train and self.drop_last and len(sampler) > self.batch_size,
            **kw,
        )

    def _sharding(self) -> bool:
        """Under DDP, unless the user shards the data themselves (``use_distributed_sampler=False``)."""
        trainer = self.trainer
        return (trainer is not None and trainer.world_size > 1
                and getattr(trainer._accelerator_connector, "use_distributed_sampler", True))

    def _train_shard(self, length: int, shuffle: bool) -> EpochShuffleSampler:
        """Under DDP, this rank's share of the training order, resumable mid-epoch.

        Lightning would wrap the sampler in its ``DistributedSamplerWrapper``, which takes the whole order from the
        sampler and shards it: after a mid-epoch resume it shards the shortened order (or the epoch restarts),
        and the loader's saved position no longer names a place in any rank's share.
        :class:`~flashvid.data.dataset.ShardedEpochSampler` shards first and skips within the rank's share.
        """
        if not self._sharding():
            return EpochShuffleSampler(length, shuffle=shuffle, seed=self.seed)
        assert self.trainer is not None
        return ShardedEpochSampler(length, self.trainer.world_size, self.trainer.global_rank, shuffle=shuffle,
                                   seed=self.seed)

    def _eval_shard(self, sampler: EpochShuffleSampler, split: str) -> Any:
        """Under DDP, each rank's share of an evaluation split, every video exactly once.

        Lightning would wrap the sampler in a ``DistributedSampler``, which pads an uneven split by repeating
        videos (15 videos on 2 ranks: 16 scored, one twice). Lightning's own unpadded wrapper (what it uses for
        predict) instead leaves the ranks one batch apart, harmless without gradients, and since it is a
        ``DistributedSampler`` Lightning keeps it. The metrics sum their states over ranks, so video-level scores
        match a one-process run.
        """
        trainer = self.trainer
        if trainer is None or not self._sharding():
            return sampler
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSamplerWrapper

        if len(sampler) < trainer.world_size:
            raise ValueError(
                f"the {split} split has {len(sampler)} video(s), fewer than the {trainer.world_size} processes "
                f"(trainer.devices x trainer.num_nodes): every process needs at least one. Add {split} videos or "
                "use fewer devices"
            )
        return UnrepeatedDistributedSamplerWrapper(sampler, num_replicas=trainer.world_size,
                                                   rank=trainer.global_rank, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if "val" not in self.datasets:
            log.warning("flashvid: no validation data (no val folder/file and no val_split): validation is skipped")
            return []  # Lightning runs no validation loop for an empty list
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 clips become normalised floats here, on the device: augmented in training, plain otherwise.

        Training: RandAugment/TrivialAugment (uint8), the random resized crop, flip and colour jitter, then mixup or
        CutMix, whose soft targets go to ``batch["target"]`` (``batch["label"]`` keeps the integer labels).
        Frame-store JPEGs left for the device are decoded first (:meth:`decode_jpegs_on_device`).
        """
        batch = self.decode_jpegs_on_device(batch)
        if not isinstance(batch, dict) or batch.get("video") is None or self._gpu_train is None:
            return batch
        if batch["label"].dim() == 2 and not batch["label"].is_floating_point():
            batch["label"] = multi_hot(batch["label"], self.num_classes)
        training = self.trainer is not None and self.trainer.training
        aug = self._gpu_train if training else self._gpu_eval
        aug.to(batch["video"].device)
        video = batch["video"]
        if training and self._auto_augment is not None and video.dtype == torch.uint8:
            video = self._auto_augment(video)
        video = aug(video)
        if training and self._mix is not None:
            video, batch["target"] = self._mix(video, batch["label"])
        if self.trainer is not None and str(self.trainer.precision).startswith("bf16"):
            video = video.to(torch.bfloat16)  # what autocast feeds the first layer anyway; half the bytes kept
        batch["video"] = video
        return batch
