"""Clip settings: :class:`DataConfig` and the one place they are merged.

A clip's settings (frames, sampling rate, crop and resize size, mean/std) come from the backbone's registry entry,
with the values a user set explicitly on top (``VideoClassifier(data=...)``, the datamodule's arguments,
``data.*`` in the CLI). The classifier, the datamodule, ``prepare`` and checkpoint loading (``predict``) all call
:func:`resolve_clip_config`, so they agree on what training and inference see. This module depends on nothing
above the data helpers, so the backbone registry can import it, and imports no torch. It does not look backbones up
by name: that is the models' side (:func:`flashvid.models.backbone_clip_settings`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .sampling import CLIP_SAMPLINGS, ClipSampling

if TYPE_CHECKING:
    import torch


@dataclass
class DataConfig:
    """Everything about a clip that the model decides: sampled frames, spatial size and normalisation."""

    num_frames: int = 16
    sampling_rate: float = 4
    clip_duration: float | None = None
    target_fps: float | None = 30.0
    crop_size: int = 224
    resize_size: int | None = None  # short side before the crop; default crop_size * 256 / 224
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    clip_sampling: str = "stride"  # "segments": one frame per segment of the whole video (TSN; sampling.py)

    def __post_init__(self) -> None:  # a mistyped data.clip_sampling fails when the settings are merged
        if self.clip_sampling not in CLIP_SAMPLINGS:
            raise ValueError(f"data.clip_sampling={self.clip_sampling!r} is not one of {', '.join(CLIP_SAMPLINGS)} "
                             "(stride: num_frames frames sampling_rate apart; segments: one frame per segment)")

    @property
    def short_side(self) -> int:
        return self.resize_size or round(self.crop_size * 256 / 224)

    def eval_transform(self, num_crops: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
        """Evaluation's CPU transform: the centre crop, or ``num_crops`` crops along the long side (3-crop) at the
        same scale."""
        from .transforms import MultiCrop, ShortSideCenterCrop

        if num_crops > 1:
            return MultiCrop(self.crop_size, num_crops, self.short_side)
        return ShortSideCenterCrop(self.crop_size, self.short_side)

    @property
    def sampling(self) -> ClipSampling:
        return ClipSampling(self.num_frames, self.sampling_rate, self.clip_duration, self.target_fps,
                            clip_sampling=self.clip_sampling)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DataConfig":
        return resolve_clip_config(None, d)


CLIP_SETTINGS = tuple(f.name for f in fields(DataConfig))


def clip_overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The clip settings set (not None) in ``settings``, a mapping that may hold other keys (a ``data`` config):
    None means "the backbone's"."""
    return {k: settings[k] for k in CLIP_SETTINGS if settings.get(k) is not None}


def resolve_clip_config(base: DataConfig | Mapping[str, Any] | None,
                        overrides: Mapping[str, Any] | None = None) -> DataConfig:
    """The clip settings to use: ``base`` (a :class:`DataConfig`, its dict form, or None for the defaults; a
    backbone's by name: :func:`flashvid.models.backbone_clip_settings`) with ``overrides`` (clip settings set
    explicitly) on top.

    Every key of ``overrides`` applies as given, None included: pass :func:`clip_overrides` of a mapping whose
    None means "unset". Unknown keys fail, naming the valid ones.
    """
    merged = {**(base.to_dict() if isinstance(base, DataConfig) else dict(base or {})), **dict(overrides or {})}
    unknown = set(merged) - set(CLIP_SETTINGS)
    if unknown:
        raise ValueError(f"unknown data settings {sorted(unknown)}; valid: {sorted(CLIP_SETTINGS)}")
    for k in ("mean", "std"):
        if merged.get(k) is not None:
            merged[k] = tuple(float(v) for v in merged[k])
    return DataConfig(**merged)


def clip_shape_error(backbone: str, shape: Sequence[int], config: DataConfig, error: Exception,
                     built_frames: int, built_size: int) -> ValueError:
    """A backbone that cannot take ``(B, T, C, H, W)`` clips of ``shape``: the error names what it was built for
    and the settings this run feeds, and the fix."""
    t, _, h, w = shape[1:]
    return ValueError(
        f"backbone {backbone!r} cannot take clips of {t} frames of {h}x{w} "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). It was built for "
        f"{built_frames} frames of {built_size}x{built_size}; this run feeds "
        f"num_frames={config.num_frames}, crop_size={config.crop_size}. Remove the data.num_frames/crop_size "
        "overrides, or set them to what the backbone was built for."
    )
