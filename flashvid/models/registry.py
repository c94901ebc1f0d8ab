"""The backbone registry: one decorated builder per name, timm-style.

The family modules register into it when imported; :mod:`.factory` imports them all and answers lookups, so the
registry depends on no family.

Each entry carries what the data side needs (frames, sampling rate, crop size, mean/std, tensor layout, SlowFast's
alpha), so choosing a backbone configures the datamodule too. Builders return a :class:`VideoBackbone`, which
takes normalised ``(B, T, C, H, W)`` clips whatever layout the wrapped model wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import nn

from ..data.clip_config import DataConfig

Layout = Literal["BCTHW", "BTCHW"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights could not be loaded (offline, bad path): never a silent fallback to random weights."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    builder: Callable[..., "VideoBackbone"]
    data: DataConfig
    layout: Layout
    weights: str | None = None
    slowfast_alpha: int | None = None
    test_input: tuple[int, int] = (8, 64)  # (frames, size) small enough for a CPU smoke test
    test_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def summary(self) -> dict[str, Any]:
        d = self.data
        return {
            "name": self.name, "family": self.family, "frames": d.num_frames, "sampling_rate": d.sampling_rate,
            "crop_size": d.crop_size, "mean": list(d.mean), "std": list(d.std), "layout": self.layout,
            "slowfast_alpha": self.slowfast_alpha, "weights": self.weights, "clip_sampling": d.clip_sampling,
            "data": d.to_dict(),  # every clip setting: what prepare sizes copies from without importing torch
        }


class VideoBackbone(nn.Module):
    """A video model behind one interface: ``forward(B, T, C, H, W) -> logits``.

    ``head`` is the classifier layer sized for ``num_classes``; ``stages`` lists the model's parts from input to
    output (the head last), which finetuning strategies freeze and layer-wise LR decay ranks.
    """

    def __init__(self, model: nn.Module, spec: BackboneSpec, head: nn.Module, stages: Sequence[nn.Module]):
        super().__init__()
        self.model = model
        self.spec = spec
        self.head = head
        self._stages = list(stages)

    @property
    def stages(self) -> list[nn.Module]:
        return self._stages

    def __setattr__(self, name: str, value: Any) -> None:
        # ``backbone.head = layer`` must change what forward runs, not only the attribute: route it to replace_head
        if name == "head" and isinstance(value, nn.Module) and "head" in self._modules \
                and value is not self._modules["head"]:
            self.replace_head(value)
        else:
            super().__setattr__(name, value)

    def replace_head(self, new: nn.Module) -> nn.Module:
        """Swap the classifier layer wherever it sits (inside ``model``, in ``stages``) for ``new``.

        ``new`` takes the old head's input (e.g. the pooled features of a ``Linear`` head) and returns logits.
        """
        old = self._modules["head"]
        swapped = False
        for container in [self.model, *self._stages]:
            for parent in container.modules():
                for child_name, child in list(parent.named_children()):
                    if child is old:
                        setattr(parent, child_name, new)
                        swapped = True
        if not swapped:
            raise RuntimeError(f"{self.spec.name}: the head is not a sub-module of the model, cannot replace it")
        self._stages = [new if s is old else s for s in self._stages]
        nn.Module.__setattr__(self, "head", new)
        return new

    def to_model_input(self, video: torch.Tensor) -> Any:
        if self.spec.layout == "BCTHW":
            video = video.transpose(1, 2)
        if self.spec.slowfast_alpha:
            slow = video[:, :, :: self.spec.slowfast_alpha]
            return [slow, video]
        return video

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.model(self.to_model_input(video))

    def architecture(self) -> dict[str, Any] | None:
        """What rebuilds this exact model beyond the registry entry and ``backbone_kwargs``, as plain JSON-able
        data (checkpoints record it); None when those two already decide it."""
        return None

    def stage_index_of_parameters(self) -> dict[str, int]:
        """Parameter name -> stage index (parameters outside every stage, like position embeddings, get 0)."""
        owner: dict[int, int] = {}
        for i, stage in enumerate(self._stages):
            for p in stage.parameters():
                owner[id(p)] = i
        return {n: owner.get(id(p), 0) for n, p in self.named_parameters()}


_REGISTRY: dict[str, BackboneSpec] = {}


def registered() -> Mapping[str, BackboneSpec]:
    """Every entry registered so far, by name (:mod:`.factory` fills in the built-in families first)."""
    return _REGISTRY


def register_backbone(
    name: str,
    *,
    family: str,
    layout: Layout,
    num_frames: int,
    sampling_rate: float,
    crop_size: int,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    resize_size: int | None = None,
    clip_sampling: str = "stride",
    weights: str | None = None,
    slowfast_alpha: int | None = None,
    test_input: tuple[int, int] = (8, 64),
    test_kwargs: dict[str, Any] | None = None,
    description: str = "",
) -> Callable[[Callable[..., VideoBackbone]], Callable[..., VideoBackbone]]:
    """Register ``builder(spec, num_classes, pretrained, **kwargs) -> VideoBackbone`` under ``name``."""

    def wrap(builder: Callable[..., VideoBackbone]) -> Callable[..., VideoBackbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        data = DataConfig(num_frames=num_frames, sampling_rate=sampling_rate, crop_size=crop_size,
                          resize_size=resize_size, mean=tuple(mean), std=tuple(std), clip_sampling=clip_sampling)
        _REGISTRY[name] = BackboneSpec(name, family, builder, data, layout, weights, slowfast_alpha,
                                       test_input, dict(test_kwargs or {}), description or (builder.__doc__ or ""))
        return builder

    return wrap


def replace_linear(parent: nn.Module, attr: str, num_classes: int) -> nn.Linear:
    """Swap ``parent.attr`` (a Linear) for a freshly initialised one with ``num_classes`` outputs."""
    old = getattr(parent, attr)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    nn.init.trunc_normal_(new.weight, std=0.02)
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    setattr(parent, attr, new)
    return new


def load_weights_file(model: nn.Module, path: str, name: str) -> None:
    """Load a state_dict file of ``model`` itself (``pretrained=PATH``) with flashvid's safe loader (a pickle
    carrying code is refused); weights that do not fit are one ``ValueError`` naming a few of them."""
    from ..checkpoint import load_checkpoint

    problem = load_state_reporting(model, load_checkpoint(path), "the model's weights")
    if problem:
        raise ValueError(f"pretrained={path}: not a state_dict of the {name} model ({problem}). It takes that "
                         "model's own weights, or a flashvid checkpoint / VideoClassifier state_dict")


def load_state_reporting(model: nn.Module, state: Mapping[str, Any], whose: str) -> str:
    """Load ``state`` into ``model``; what did not fit, in a few words (``""`` when all of it did). Loading is
    not strict so that the answer names a few keys, where torch's strict error lists every one of them."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes differ
        return str(e).strip().splitlines()[-1].strip()
    if not (missing or unexpected):
        return ""
    return (f"{len(missing)} of {whose} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]})")


def offline_error(name: str, source: str, err: BaseException, how: str) -> PretrainedWeightsUnavailable:
    return PretrainedWeightsUnavailable(
        f"could not load pretrained weights for {name!r} from {source} ({type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}). This machine may be offline. Download them where "
        f"there is network and pass the local copy: {how}. flashvid never falls back to random weights; "
        "pass pretrained=False to train from scratch."
    )
