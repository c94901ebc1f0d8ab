"""torchvision's video models (weights from their ``*_Weights`` enums)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    VideoBackbone,
    load_weights_file,
    offline_error,
    register_backbone,
    replace_linear,
)

# torchvision's Kinetics video models normalise with these (its weight enums' transforms)
TV_MEAN = (0.43216, 0.394666, 0.37645)
TV_STD = (0.22803, 0.22145, 0.216989)


def _weights_enum(spec: BackboneSpec):
    import torchvision.models.video as video

    enum_name, member = spec.weights.split(".")
    return getattr(getattr(video, enum_name), member)


def _build(spec: BackboneSpec, pretrained: bool | str, **kwargs: Any) -> nn.Module:
    import torchvision.models.video as video

    builder = getattr(video, spec.name)
    weights = None
    if pretrained is True:
        weights = _weights_enum(spec)
        try:
            weights.get_state_dict(progress=False)
        except Exception as e:
            cache = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
            raise offline_error(spec.name, f"torchvision {spec.weights} ({weights.url})", e,
                                f"pretrained='/path/{os.path.basename(weights.url)}' (or place it at {cache})") from e
    model = builder(weights=weights, **kwargs)
    if isinstance(pretrained, str):
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f"pretrained={pretrained!r}: no such checkpoint file for {spec.name}")
        load_weights_file(model, pretrained, spec.name)
    return model


def _build_resnet3d(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
    model = _build(spec, pretrained, **kwargs)
    head = replace_linear(model, "fc", num_classes)
    return VideoBackbone(model, spec, head, [model.stem, model.layer1, model.layer2, model.layer3, model.layer4,
                                             model.fc])


def _build_s3d(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
    model = _build(spec, pretrained, **kwargs)
    model.avgpool = nn.AdaptiveAvgPool3d(1)
    old = model.classifier[1]
    head = nn.Conv3d(old.in_channels, num_classes, kernel_size=1, bias=True)
    model.classifier[1] = head
    return VideoBackbone(model, spec, head, [*model.features, model.classifier])


def _build_mvit(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
    model = _build(spec, pretrained, **kwargs)
    head = _replace_seq_linear(model.head, num_classes)
    stages = [nn.ModuleList([model.conv_proj, model.pos_encoding]), *model.blocks,
              nn.ModuleList([model.norm, model.head])]
    return VideoBackbone(model, spec, head, stages)


def _build_swin3d(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
    model = _build(spec, pretrained, **kwargs)
    head = replace_linear(model, "head", num_classes)
    return VideoBackbone(model, spec, head, [model.patch_embed, *model.features, model.norm, model.head])


def _replace_seq_linear(seq: nn.Sequential, num_classes: int) -> nn.Linear:
    idx = max(i for i, m in enumerate(seq) if isinstance(m, nn.Linear))
    old = seq[idx]
    new = nn.Linear(old.in_features, num_classes)
    nn.init.trunc_normal_(new.weight, std=0.02)
    nn.init.zeros_(new.bias)
    seq[idx] = new
    return new


_TV = dict(family="torchvision", layout="BCTHW")
for _name, _enum in (("r3d_18", "R3D_18_Weights"), ("mc3_18", "MC3_18_Weights"),
                     ("r2plus1d_18", "R2Plus1D_18_Weights")):
    register_backbone(_name, **_TV, num_frames=16, sampling_rate=2, crop_size=112, resize_size=128,
                      mean=TV_MEAN, std=TV_STD, weights=f"{_enum}.KINETICS400_V1", test_input=(4, 64),
                      description=f"torchvision {_name} (Kinetics-400)")(_build_resnet3d)

register_backbone("s3d", **_TV, num_frames=16, sampling_rate=2, crop_size=224, resize_size=256, mean=TV_MEAN,
                  std=TV_STD, weights="S3D_Weights.KINETICS400_V1", test_input=(8, 64),
                  description="torchvision S3D (Kinetics-400)")(_build_s3d)

for _name, _enum, _frames in (("mvit_v1_b", "MViT_V1_B_Weights", 16), ("mvit_v2_s", "MViT_V2_S_Weights", 16)):
    register_backbone(_name, **_TV, num_frames=_frames, sampling_rate=4, crop_size=224, resize_size=256,
                      mean=TV_MEAN, std=TV_STD, weights=f"{_enum}.KINETICS400_V1",
                      test_input=(16, 224),  # torchvision fixes MViT's input size: no smaller smoke test
                      description=f"torchvision {_name} (Kinetics-400)")(_build_mvit)

for _name, _enum in (("swin3d_t", "Swin3D_T_Weights"), ("swin3d_s", "Swin3D_S_Weights"),
                     ("swin3d_b", "Swin3D_B_Weights")):
    register_backbone(_name, **_TV, num_frames=16, sampling_rate=2, crop_size=224, resize_size=256,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD, weights=f"{_enum}.KINETICS400_V1", test_input=(4, 64),
                      description=f"torchvision {_name} video Swin (Kinetics-400)")(_build_swin3d)
