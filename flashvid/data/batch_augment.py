"""The GPU per-batch augmentations: steps built from the ``augmentation`` settings through a registry.

Once a batch is on the device, :meth:`VideoClassificationData.on_after_batch_transfer` runs the steps of the
current mode (training or evaluation) in the order of their stages, and within a stage in registration order:

- ``decode``: the batch's frames to uint8 clips (none built in: the place for a GPU decode step);
- ``uint8``: augmentations of uint8 clips (``auto_augment``: RandAugment / TrivialAugment);
- ``normalize``: uint8 to normalised floats at the crop size (``crop_flip_jitter``: in training the random resized
  crop, flip and colour jitter of :class:`~flashvid.data.transforms.BatchAugmentation`);
- ``float``: augmentations of normalised floats and their targets (``mixup_cutmix``: soft targets in
  ``batch["target"]``).

To add one: a field of :class:`Augmentation` (its config key, ``+data.augmentation.<field>=``) and a builder
decorated with :func:`register_batch_augmentation` that reads it and returns a step (``batch -> batch``) or ``None``
when the settings leave it off; in its own module, imported at the end of this one. The datamodule is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from .clip_augment import ClipAutoAugment, parse_policy
from .clip_config import DataConfig
from .mixing import ClipMix
from .transforms import BatchAugmentation

STAGES = ("decode", "uint8", "normalize", "float")
MODES = ("train", "eval")


@dataclass
class Augmentation:
    """The settings of the GPU training augmentation steps, applied per batch after the transfer to the device; each
    field is a config key (``data.augmentation.<field>``), read by the registered builders."""

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
    flip_directions: bool = False  # keep hflip when class names mean left/right or a sense of rotation

    def __post_init__(self) -> None:  # bad settings fail when the config is built, not at the first batch
        if self.auto_augment:
            parse_policy(self.auto_augment)
        ClipMix(2, self.mixup_alpha, self.cutmix_alpha, self.mix_prob, self.mix_switch_prob)
        if self.rate_jitter < 1.0:
            raise ValueError(f"rate_jitter must be >= 1 (1 = off), got {self.rate_jitter}")


@dataclass(frozen=True)
class BatchContext:
    """What a builder reads besides the settings: the resolved clip settings, the classes, the mode."""

    data: DataConfig
    num_classes: int
    train: bool


BatchStep = Callable[[dict[str, Any]], dict[str, Any]]
Builder = Callable[[Augmentation, BatchContext], Optional[BatchStep]]


@dataclass(frozen=True)
class _Registered:
    name: str
    stage: str
    build: Builder


_REGISTRY: dict[str, _Registered] = {}


def register_batch_augmentation(name: str, stage: str) -> Callable[[Builder], Builder]:
    """Register ``builder(settings, context) -> step | None`` under ``name``, run at ``stage`` (one of
    :data:`STAGES`)."""
    if stage not in STAGES:
        raise ValueError(f"batch augmentation {name!r}: stage must be one of {', '.join(STAGES)}, got {stage!r}")

    def register(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"a batch augmentation named {name!r} is already registered")
        _REGISTRY[name] = _Registered(name, stage, builder)
        return builder

    return register


def batch_augmentations() -> list[tuple[str, str]]:
    """``(name, stage)`` of every registered step, in the order they run."""
    return [(r.name, r.stage) for r in _ordered()]


def _ordered() -> list[_Registered]:
    return sorted(_REGISTRY.values(), key=lambda r: STAGES.index(r.stage))  # stable: registration order within


class BatchSteps:
    """The built steps of one mode, run in order on a batch dict."""

    def __init__(self, steps: list[tuple[str, BatchStep]]):
        self.steps = steps

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        for _, step in self.steps:
            batch = step(batch)
        return batch

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def __repr__(self) -> str:
        return f"BatchSteps({', '.join(self.names) or 'none'})"


def build_batch_steps(settings: Augmentation, data: DataConfig, num_classes: int) -> dict[str, BatchSteps]:
    """Every mode's steps (``"train"``, ``"eval"``) from the settings, each registered builder asked once per mode."""
    out = {}
    for mode in MODES:
        context = BatchContext(data, num_classes, train=mode == "train")
        built = [(r.name, r.build(settings, context)) for r in _ordered()]
        out[mode] = BatchSteps([(name, step) for name, step in built if step is not None])
    return out


class VideoStep:
    """A step that changes only ``batch["video"]`` with a module (moved to the batch's device first)."""

    def __init__(self, op: nn.Module, uint8_only: bool = False):
        self.op, self.uint8_only = op, uint8_only

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        video = batch["video"]
        if not self.uint8_only or video.dtype == torch.uint8:
            batch["video"] = self.op.to(video.device)(video)
        return batch

    def __repr__(self) -> str:
        return f"VideoStep({self.op!r})"


# ------------------------------------------------------------------------------------------------ built-in steps
@register_batch_augmentation("auto_augment", stage="uint8")
def auto_augment(settings: Augmentation, context: BatchContext) -> BatchStep | None:
    """RandAugment / TrivialAugment per clip, training only (:mod:`flashvid.data.clip_augment`)."""
    if not (context.train and settings.auto_augment):
        return None
    return VideoStep(ClipAutoAugment(settings.auto_augment), uint8_only=True)


@register_batch_augmentation("crop_flip_jitter", stage="normalize")
def crop_flip_jitter(settings: Augmentation, context: BatchContext) -> BatchStep | None:
    """To normalised floats; in training after the random resized crop, flip and colour jitter."""
    cfg, a = context.data, settings
    if not context.train:
        return VideoStep(BatchAugmentation(cfg.mean, cfg.std, cfg.crop_size, train=False))
    return VideoStep(BatchAugmentation(cfg.mean, cfg.std, cfg.crop_size, train=True, scale=tuple(a.scale),
                                       ratio=tuple(a.ratio), hflip=a.hflip, color_jitter=a.color_jitter,
                                       backend=a.backend))


@register_batch_augmentation("mixup_cutmix", stage="float")
def mixup_cutmix(settings: Augmentation, context: BatchContext) -> BatchStep | None:
    """Mixup or CutMix of the training clips (:mod:`flashvid.data.mixing`); soft targets in ``batch["target"]``
    (``batch["label"]`` keeps the integer labels)."""
    a = settings
    mix = ClipMix(max(context.num_classes, 1), a.mixup_alpha, a.cutmix_alpha, a.mix_prob, a.mix_switch_prob)
    if not (context.train and mix.active):
        return None

    def step(batch: dict[str, Any]) -> dict[str, Any]:
        batch["video"], batch["target"] = mix(batch["video"], batch["label"])
        return batch

    return step


# Steps kept in their own modules register when imported: import them here, below the registry, e.g.
# from . import my_step  # noqa: E402, F401
