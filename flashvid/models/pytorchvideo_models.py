"""PyTorchVideo's model zoo (Kinetics-400 weights from its torch.hub URLs).

Head pooling is made adaptive, so every model also runs at clip sizes other than the one it was trained at, and
the softmax some heads apply is removed: the module needs logits.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Callable

import torch
from torch import nn

from .. import _compat  # noqa: F401  (pytorchvideo imports a module current torchvision renamed)
from .registry import BackboneSpec, VideoBackbone, offline_error, register_backbone, replace_linear


def _pytorchvideo_hub():
    """``pytorchvideo.models.hub``, imported without its torch.jit deprecation noise (pytorchvideo 0.1.5 is frozen)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        import pytorchvideo.models.hub as hub
    return hub


def _hub(name: str) -> Callable[..., nn.Module]:
    return getattr(_pytorchvideo_hub(), name)


def _checkpoint_url(name: str) -> str | None:
    hub = _pytorchvideo_hub()

    for mod in ("x3d", "resnet", "slowfast", "csn", "r2plus1d", "vision_transformers", "efficient_x3d_mobile_cpu"):
        module = getattr(hub, mod, None)
        for attr in ("checkpoint_paths", "_checkpoint_paths"):
            paths = getattr(module, attr, None) or {}
            if name in paths:
                return paths[name]
    return None


def _load_weights(model: nn.Module, spec: BackboneSpec, pretrained: bool | str) -> None:
    if pretrained is False or pretrained is None:
        return
    if isinstance(pretrained, str):
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f"pretrained={pretrained!r}: no such checkpoint file for {spec.name}")
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(pretrained)  # weights_only; a pickle carrying code is refused in one line
        source = pretrained
    else:
        url = spec.weights
        if url is None:
            raise ValueError(f"{spec.name} has no published weights; pass pretrained=False or a local file")
        try:
            ckpt = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
        except Exception as e:
            cache = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
            raise offline_error(spec.name, url, e, f"pretrained='/path/{os.path.basename(url)}' (or place the "
                                f"file at {cache})") from e
        source = url
    state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else ckpt
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "proj" not in k and "projection" not in k]:
        raise ValueError(f"{source} does not fit {spec.name}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _adaptive_pools(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.AvgPool3d):
            setattr(module, name, nn.AdaptiveAvgPool3d(1))
        else:
            _adaptive_pools(child)


def _build_resnet_like(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
    model = _hub(spec.name)(pretrained=False, **kwargs)
    _load_weights(model, spec, pretrained)
    head = model.blocks[-1]
    _adaptive_pools(head)
    if type(model.blocks[-2]).__name__ == "PoolConcatPathway":  # SlowFast pools each pathway before the head
        _adaptive_pools(model.blocks[-2])
    head.activation = None
    new = replace_linear(head, "proj", num_classes)
    return VideoBackbone(model, spec, new, list(model.blocks))


def _build_efficient_x3d(spec: BackboneSpec, num_classes: int, pretrained: bool | str,
                         **kwargs: Any) -> VideoBackbone:
    model = _hub(spec.name)(pretrained=False, **kwargs)
    _load_weights(model, spec, pretrained)
    new = replace_linear(model.projection, "model", num_classes)
    stages = [model.s1, model.s2, model.s3, model.s4, model.s5, model.head, model.projection]
    return VideoBackbone(model, spec, new, stages)


def _build_mvit(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
    model = _hub(spec.name)(pretrained=False, **kwargs)
    _load_weights(model, spec, pretrained)
    new = replace_linear(model.head, "proj", num_classes)
    stages = [nn.ModuleList([model.patch_embed, model.cls_positional_encoding]), *model.blocks,
              nn.ModuleList([model.norm_embed, model.head])]
    return VideoBackbone(model, _mvit_spec(spec, kwargs), new, stages)


def _mvit_spec(spec: BackboneSpec, kwargs: dict[str, Any]) -> BackboneSpec:
    """The entry with the clip size MViT was built for: its position embeddings fix frames and crop."""
    size, frames = kwargs.get("spatial_size"), kwargs.get("temporal_size")
    size = size[0] if isinstance(size, (tuple, list)) else size
    changes = {k: v for k, v in (("crop_size", size), ("num_frames", frames)) if v is not None}
    return dataclasses.replace(spec, data=dataclasses.replace(spec.data, **changes)) if changes else spec


_X3D_TEST = dict(test_input=(4, 64))
_RESNET = dict(family="pytorchvideo", layout="BCTHW", crop_size=224)

# name: (frames, sampling rate, crop, extra registration settings)
_ZOO: dict[str, dict[str, Any]] = {
    "x3d_xs": dict(num_frames=4, sampling_rate=12, crop_size=160, resize_size=182, **_X3D_TEST),
    "x3d_s": dict(num_frames=13, sampling_rate=6, crop_size=160, resize_size=182, **_X3D_TEST),
    "x3d_m": dict(num_frames=16, sampling_rate=5, crop_size=224, resize_size=256, **_X3D_TEST),
    "x3d_l": dict(num_frames=16, sampling_rate=5, crop_size=312, resize_size=356, **_X3D_TEST),
    "slow_r50": dict(num_frames=8, sampling_rate=8, crop_size=224),
    "c2d_r50": dict(num_frames=8, sampling_rate=8, crop_size=224),
    "i3d_r50": dict(num_frames=8, sampling_rate=8, crop_size=224),
    "r2plus1d_r50": dict(num_frames=16, sampling_rate=4, crop_size=224),
    "csn_r101": dict(num_frames=32, sampling_rate=2, crop_size=224),
    "slowfast_r50": dict(num_frames=32, sampling_rate=2, crop_size=224, slowfast_alpha=4),
    "slowfast_r101": dict(num_frames=32, sampling_rate=2, crop_size=224, slowfast_alpha=4),
}

for _name, _cfg in _ZOO.items():
    register_backbone(_name, family="pytorchvideo", layout="BCTHW", weights=_checkpoint_url(_name),
                      description=f"PyTorchVideo {_name} (Kinetics-400)", **_cfg)(_build_resnet_like)

for _name in ("efficient_x3d_xs", "efficient_x3d_s"):
    register_backbone(_name, family="pytorchvideo", layout="BCTHW", weights=_checkpoint_url(_name),
                      num_frames=4 if _name.endswith("xs") else 13, sampling_rate=12 if _name.endswith("xs") else 6,
                      crop_size=160, resize_size=182, test_input=(4, 64),
                      description=f"PyTorchVideo {_name}, mobile-friendly X3D (Kinetics-400)")(_build_efficient_x3d)

for _name, _frames, _rate in (("mvit_base_16x4", 16, 4), ("mvit_base_32x3", 32, 3)):
    register_backbone(_name, family="pytorchvideo", layout="BCTHW", weights=_checkpoint_url(_name),
                      num_frames=_frames, sampling_rate=_rate, crop_size=224, test_input=(4, 64),
                      test_kwargs=dict(spatial_size=64, temporal_size=4),
                      description=f"PyTorchVideo {_name} multiscale ViT (Kinetics-400)")(_build_mvit)
