"""``VideoClassificationData``: the LightningDataModule users point at their videos.

Clip settings (frames, sampling rate, crop size, mean/std) default to ``None`` and are taken from the model's
backbone entry when the trainer attaches both, so they are set once, by choosing a backbone. Anything passed here
explicitly wins.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from .balanced import ClassBalancedOrder
from .batch_augment import Augmentation, BatchSteps, build_batch_steps
from .clip_config import DataConfig, clip_overrides, resolve_clip_config
from .dataset import JPEG_DECODE, VideoClipDataset, collate_clips, multi_hot
from .decoding import DECODERS, resolve_decoder
from .device_decode import decode_on_device, device_decodes_jpeg
from .directions import flips_off_notice, mirrored_classes
from .loader import EpochShuffleSampler, ResumableDataLoader, ShardedEpochSampler
from .planar import COLOR_CONVERT
from .sources import (
    UCF101_GROUP_PATTERN,
    VideoSample,
    collect_paths,
    group_split,
)
from .transforms import RandomShortSideCrop
from .view_averaging import check_view_average

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "predict")
# what each Lightning stage is doing, for log lines ("CPU testing with 2 decode workers")
STAGE_NAMES = {"fit": "training", "validate": "validation", "test": "testing", "predict": "prediction"}
SAMPLERS = ("shuffle", "balanced")  # training order: a shuffle of every video, or classes drawn evenly


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
        clip_sampling: str | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        view_average: str = "prob",
        clips_per_video: int = 1,
        keyframe_aligned: bool = False,
        decode_threads: int = 1,
        skip_nonref: bool = True,
        decoder: str = "auto",
        jpeg_decode: str = "workers",
        color_convert: str = "auto",
        transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        augmentation: Augmentation | Mapping[str, Any] | None = None,
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        prefetch_factor: int | None = 4,
        drop_last: bool = True,
        sampler: str = "shuffle",
        epoch_length: int | None = None,
        continuous_epochs: bool = True,
        worker_niceness: int = 0,
    ):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if epoch_length is not None and sampler != "balanced":
            raise ValueError("epoch_length applies to sampler=balanced (a shuffle visits every video once): set "
                             "data.sampler=balanced or leave data.epoch_length null")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}")
        if jpeg_decode not in ("auto", *JPEG_DECODE):
            raise ValueError(f"unknown jpeg_decode {jpeg_decode!r}: choose one of auto, {', '.join(JPEG_DECODE)}")
        if color_convert not in ("auto", *COLOR_CONVERT):
            raise ValueError(f"unknown color_convert {color_convert!r}: choose one of auto, {', '.join(COLOR_CONVERT)}")
        if transforms is not None:
            bad = set(transforms) - set(SPLITS)
            if bad:
                raise ValueError(f"transforms keys must be among {SPLITS}, got {sorted(bad)}")
        self.samples: dict[str, list[VideoSample]] = {
            k: list(v) for k, v in zip(SPLITS, (train, val, test, predict)) if v is not None
        }
        self.labels: list[str] = list(labels) if labels is not None else []
        if sampler == "balanced" and self.samples.get("train"):  # multi-label data or a bad length fail here
            ClassBalancedOrder([s.label for s in self.samples["train"]], epoch_length)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self._num_workers = num_workers
        self._threads_before: int | None = None  # torch threads before _share_cpu_cores lowered them
        self._overrides = clip_overrides(dict(
            num_frames=num_frames, sampling_rate=sampling_rate, clip_duration=clip_duration, target_fps=target_fps,
            crop_size=crop_size, resize_size=resize_size, mean=mean, std=std, clip_sampling=clip_sampling))
        self.data_config = resolve_clip_config(None, self._overrides)
        self.num_clips, self.num_crops = num_clips, num_crops
        # how the model combines the test views: set on the model at setup (flashvid.data.view_averaging)
        self.view_average = check_view_average(view_average, "view_average (data.view_average)")
        if clips_per_video < 1:
            raise ValueError(f"clips_per_video must be >= 1, got {clips_per_video}")
        if not 0 <= worker_niceness <= 19:
            raise ValueError(f"worker_niceness must be in 0..19 (os.nice), got {worker_niceness}")
        if decode_threads < 1:
            raise ValueError(f"decode_threads must be >= 1, got {decode_threads}")
        # training: N clips (each with its own crop) from one decoded span per video; a batch holds N x batch_size
        # clips, an epoch the same number of steps (VideoMAE / MAE-ST repeated sampling)
        self.clips_per_video = clips_per_video
        self.keyframe_aligned = keyframe_aligned  # training clips start at keyframes: no lead-in, fewer starts
        self.decode_threads = decode_threads  # decoder threads per loader worker (large frames, spare cores)
        self.skip_nonref = skip_nonref  # PyAV's exact non-reference skip; off only to measure what it saves
        self.decoder = decoder
        # where frame-store JPEGs are decoded: "workers", "device" (batched on the training device, nvJPEG on a
        # GPU) or "auto" (the device when it is a GPU that decodes JPEG)
        self.jpeg_decode = jpeg_decode
        # where a prepared copy's YUV frames become RGB: "workers", "device" (batched after the transfer:
        # flashvid.data.planar) or "auto" (the device when it is a GPU)
        self.color_convert = color_convert
        self.transforms = dict(transforms or {})
        if isinstance(augmentation, Mapping):
            augmentation = Augmentation(**augmentation)
        self.augmentation = self._flips_for_classes(augmentation or Augmentation())
        self.seed = seed
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.drop_last = drop_last
        self.sampler = sampler  # "balanced": each training epoch draws the classes evenly (ClassBalancedOrder)
        self.epoch_length = epoch_length  # balanced epochs' length in videos (None: the train split's size)
        self.continuous_epochs = continuous_epochs  # loader workers run on into the next epoch (ResumableDataLoader)
        self.worker_niceness = worker_niceness  # loader workers' CPU priority below the training process (os.nice)
        self.datasets: dict[str, VideoClipDataset] = {}
        self.source_warnings: list[str] = []  # what the source found odd but accepted (flashvid doctor lists it)
        self.batch_steps: dict[str, BatchSteps] = {}  # "train", "eval": built in setup (flashvid.data.batch_augment)

    def _flips_for_classes(self, a: Augmentation) -> Augmentation:
        """No horizontal flips when training classes name a direction a flip reverses (``swipe_left``), unless
        ``flip_directions``; the one-line notice says so and how to force them (``flips_off_for`` lists the names)."""
        self.flips_off_for: list[str] = []
        if a.hflip <= 0 or a.flip_directions or not self.samples.get("train"):
            return a
        names = mirrored_classes(self.labels)
        if not names:
            return a
        log.warning(flips_off_notice(names))
        self.flips_off_for = names
        return replace(a, hflip=0.0)

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_source(
        cls,
        source: str,
        val_split: float | None = None,
        group_pattern: str | None = UCF101_GROUP_PATTERN,
        **kwargs: Any,
    ) -> "VideoClassificationData":
        """Any registered data source (:mod:`flashvid.source_registry`: ``folders``, ``csv``, ``ucf101``, ``demo``
        ...): its reader takes the arguments it names, the datamodule the rest. Without a val split, ``val_split``
        holds out whole recording groups (``group_pattern``) of the training split."""
        from ..source_registry import get_source

        own = get_source(source).arguments
        read = get_source(source).read(**{k: kwargs.pop(k) for k in list(kwargs) if k in own})
        splits = read.splits
        if val_split and "train" in splits and "val" not in splits:
            splits["train"], splits["val"] = group_split(splits["train"], val_split, group_pattern,
                                                         kwargs.get("seed", 0))
        dm = cls(splits.get("train"), splits.get("val"), splits.get("test"), splits.get("predict"), read.labels,
                 **kwargs)
        dm.source_warnings = read.notes  # e.g. symlinks not followed, list paths outside root: flashvid doctor
        return dm

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
        return cls.from_source("folders", train_folder=train_folder, val_folder=val_folder, test_folder=test_folder,
                               predict_folder=predict_folder, val_split=val_split, group_pattern=group_pattern,
                               **kwargs)

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
        return cls.from_source("csv", train_file=train_file, val_file=val_file, test_file=test_file, root=root,
                               labels=labels, val_split=val_split, group_pattern=group_pattern,
                               allow_outside_root=allow_outside_root, **kwargs)

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
        return cls.from_source("ucf101", root=root, annotations_dir=annotations_dir, fold=fold, val_split=val_split,
                               group_pattern=UCF101_GROUP_PATTERN, **kwargs)

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
            model.view_average = self.view_average
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
        color_convert = self._color_convert_at()
        a = self.augmentation
        for split, samples in self.samples.items():
            clips = self.num_clips if split == "test" else 1
            train = split == "train"
            self.datasets[split] = VideoClipDataset(
                samples, replace(sampling, rate_jitter=a.rate_jitter) if split == "train" else sampling,
                self.transforms.get(split, default_transforms[split]), modes[split],
                num_clips=clips, decoder=decoder, seed=self.seed, decode_threads=self.decode_threads,
                skip_nonref=self.skip_nonref, clips_per_video=self.clips_per_video if train else 1,
                keyframe_aligned=self.keyframe_aligned and train, jpeg_decode=jpeg_decode,
                color_convert=color_convert,
            )
        self.batch_steps = build_batch_steps(a, cfg, self.num_classes)

    # ------------------------------------------------------------------ pixels made on the device
    def _jpeg_decode_at(self) -> str:
        """Where frame-store JPEGs are decoded this run: ``jpeg_decode``, with ``auto`` resolved (the device when
        training on a GPU that decodes JPEG, else the workers; said once in the log when it is the device)."""
        if self.jpeg_decode != "auto":
            return self.jpeg_decode
        device = self._training_device()
        if device is None or device.type != "cuda":
            return "workers"
        ok, why = device_decodes_jpeg(device)
        if ok:
            log.info("flashvid data: frame-store JPEGs are decoded on %s (nvJPEG), batched; workers read bytes", device)
            return "device"
        log.warning("flashvid data: frame-store JPEGs are decoded in the loader workers: %s cannot (%s)", device, why)
        return "workers"

    def _training_device(self) -> torch.device | None:
        """The device this datamodule's trainer trains on; None without a trainer."""
        return self.trainer.strategy.root_device if self.trainer is not None else None

    def _color_convert_at(self) -> str:
        """Where copies' YUV frames become RGB this run (:meth:`color_convert_on` the trainer's device), said once
        in the log when it is the device."""
        device = self._training_device()
        where = self.color_convert_on(device)
        if where == "device" and self.color_convert == "auto":
            log.info("flashvid data: copies' YUV frames are converted to RGB on %s, batched; workers cut the planes",
                     device)
        return where

    def color_convert_on(self, device: torch.device | None) -> str:
        """``color_convert`` for training on ``device``: ``auto`` is the device when it is a GPU (measured on an
        H200: 0.86-1.03 of model-only against 0.65-1.01 converting in the workers, docs/benchmarks.md), else the
        workers."""
        if self.color_convert != "auto":
            return self.color_convert
        return "device" if device is not None and device.type == "cuda" else "workers"

    def _split_running(self) -> str:
        trainer = self.trainer
        if trainer is None or trainer.training:
            return "train"
        if trainer.testing:
            return "test"
        if trainer.predicting:
            return "predict"
        return "val"

    def finish_on_device(self, batch: Any) -> Any:
        """Decode step (first in :meth:`on_after_batch_transfer`): a batch holding frame-store JPEGs (workers with
        ``jpeg_decode="device"``) gets its clips decoded on the batch's device and through the split's per-sample
        transform, with the crops CPU decoding would give (:mod:`.device_decode`); one holding YUV planes
        (``color_convert="device"``) gets them converted to RGB there."""
        if not isinstance(batch, dict) or "encoded" not in batch:
            return batch
        dataset = self.datasets.get(self._split_running())
        return decode_on_device(batch, dataset.transform if dataset is not None else None,
                                self._training_device() or torch.device("cpu"))

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
            continuous=train and self.continuous_epochs,
            worker_niceness=self.worker_niceness,
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
        :class:`~flashvid.data.loader.ShardedEpochSampler` shards first and skips within the rank's share.
        With ``sampler="balanced"`` every rank shards the same class-balanced order.
        """
        balanced = None
        if self.sampler == "balanced":
            balanced = ClassBalancedOrder([s.label for s in self.datasets["train"].samples], self.epoch_length)
        if not self._sharding():
            return EpochShuffleSampler(length, shuffle=shuffle, seed=self.seed, balanced=balanced)
        assert self.trainer is not None
        return ShardedEpochSampler(length, self.trainer.world_size, self.trainer.global_rank, shuffle=shuffle,
                                   seed=self.seed, balanced=balanced)

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

        The steps of :mod:`flashvid.data.batch_augment` (built from ``augmentation`` in :meth:`setup`) run in
        order: in training RandAugment/TrivialAugment (uint8), the random resized crop, flip and colour jitter,
        then mixup or CutMix, whose soft targets go to ``batch["target"]`` (``batch["label"]`` keeps the labels).
        Frame-store JPEGs and copies' YUV planes left for the device become pixels first (:meth:`finish_on_device`).
        """
        batch = self.finish_on_device(batch)
        if not isinstance(batch, dict) or batch.get("video") is None or not self.batch_steps:
            return batch
        if batch["label"].dim() == 2 and not batch["label"].is_floating_point():
            batch["label"] = multi_hot(batch["label"], self.num_classes)
        training = self.trainer is not None and self.trainer.training
        batch = self.batch_steps["train" if training else "eval"](batch)
        if self.trainer is not None and str(self.trainer.precision).startswith("bf16"):
            # what autocast feeds the first layer anyway; half the bytes kept
            batch["video"] = batch["video"].to(torch.bfloat16)
        return batch
