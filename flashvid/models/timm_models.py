"""Image backbones from timm made video models: TSN (segment consensus) and TSM (temporal shift).

TSN (Wang et al. 2016) runs a 2D network on one frame per segment and averages the per-frame features (the
segment consensus) before one linear head. TSM (Lin et al. 2019) is TSN with a temporal shift in every residual
block: before the block's first convolution, 1/8 of the channels take the next frame's values and 1/8 the previous
frame's (zeros past the ends), the "residual shift" of the paper and MMAction2's ``shift_place="blockres"``. Both
entries sample frames with ``clip_sampling="segments"`` (one per segment of the whole video), as TSN/TSM train.

The 2D network is ``timm.create_model(name, pretrained=False, num_classes=0)`` (pooled features); its ImageNet
weights are timm's: ``pretrained=True`` from the Hugging Face cache or hub, ``pretrained="<file>"`` a timm state
dict (``.pth``/``.safetensors``) of that network. The entries' mean/std are the weights' ``pretrained_cfg``.
"""

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
    load_state_reporting,
    offline_error,
    register_backbone,
)

SHIFT_DIV = 8  # 1/8 of the channels shifted each way (the TSM paper, MMAction2's shift_div=8)


class TemporalShift(nn.Module):
    """Shift ``1/fold_div`` of the channels one frame back and as many one frame forward, then run ``net``.

    Takes ``(B*T, C, H, W)``; ``segments`` (T) is set by :class:`SegmentConsensus` for each batch.
    """

    def __init__(self, net: nn.Module, fold_div: int = SHIFT_DIV):
        super().__init__()
        self.net = net
        self.fold_div = fold_div
        self.segments = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(temporal_shift(x, self.segments, self.fold_div))


def temporal_shift(x: torch.Tensor, segments: int, fold_div: int = SHIFT_DIV) -> torch.Tensor:
    """TSM's shift of ``(B*T, C, H, W)`` frames: channels ``[0, C/fold_div)`` from frame t+1, the next
    ``C/fold_div`` from frame t-1, zeros past the clip's ends, the rest unchanged."""
    bt, c, h, w = x.shape
    x = x.view(bt // segments, segments, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(bt, c, h, w)


class SegmentConsensus(nn.Module):
    """``(B, T, C, H, W)`` -> the 2D ``encoder`` on every frame -> features averaged over T -> dropout -> ``fc``."""

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(encoder.num_features, num_classes)
        nn.init.normal_(self.fc.weight, std=0.001)  # MMAction2's TSN/TSM head init
        nn.init.zeros_(self.fc.bias)
        self.shifts = [m for m in encoder.modules() if isinstance(m, TemporalShift)]

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        for shift in self.shifts:
            shift.segments = t
        features = self.encoder(video.flatten(0, 1))  # (B*T, F)
        return self.fc(self.dropout(features.view(b, t, -1).mean(1)))


def insert_temporal_shift(encoder: nn.Module) -> int:
    """Wrap the first convolution of every residual block (timm ResNets' ``conv1``) in a :class:`TemporalShift`;
    returns how many. A network without such blocks is refused: TSM is defined on residual blocks."""
    from timm.models.resnet import BasicBlock, Bottleneck

    blocks = [m for m in encoder.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    if not blocks:
        raise ValueError(f"TSM shifts channels in residual blocks; {type(encoder).__name__} has no ResNet blocks")
    for block in blocks:
        block.conv1 = TemporalShift(block.conv1)
    return len(blocks)


def _stages(encoder: nn.Module, head: nn.Module) -> list[nn.Module]:
    """timm's own fine-grained parameter groups (stem, each block, the final norm), then the head: the order layer
    decay ranks, as timm's ``param_groups_layer_decay`` does for image models."""
    from timm.models._manipulate import group_modules

    groups = group_modules(encoder, encoder.group_matcher(coarse=False))
    modules = dict(encoder.named_modules())
    stages: list[nn.Module] = []
    for _, names in sorted(groups.items()):
        parts = [modules[n] for n in names if n in modules]
        stages.append(nn.ModuleList(parts))
    return [*stages, head]


def _encoder(spec: BackboneSpec, timm_name: str, pretrained: bool | str, **kwargs: Any) -> nn.Module:
    """timm's 2D network with pooled features (``num_classes=0``), its weights loaded when asked."""
    import timm

    encoder = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
    if not pretrained:
        return encoder
    if pretrained is True:
        hub_id = timm.models.get_pretrained_cfg(timm_name).hf_hub_id
        path = _cached_file(hub_id) or _download(spec, hub_id, timm_name)
    else:
        path = str(pretrained)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"pretrained={path}: no such file (a timm state dict of {timm_name}, "
                                    ".pth or .safetensors)")
    load_image_weights(encoder, path, timm_name)
    return encoder


def _cached_file(hub_id: str | None) -> str | None:
    """The weights of ``hub_id`` in the local Hugging Face cache, if there."""
    if not hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for fname in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, fname)
        if isinstance(found, str):
            return found
    return None


def load_image_weights(encoder: nn.Module, path: str, timm_name: str) -> None:
    """Load timm's state dict of the image network, its classifier left out, strictly: timm's own loader only
    warns about keys that do not fit, which would train a wrong file's network from random weights."""
    from timm.models import load_state_dict

    state = load_state_dict(path)  # .safetensors or a weights-only .pth (a nested "state_dict" too)
    classifier = encoder.pretrained_cfg.get("classifier")
    heads = classifier if isinstance(classifier, (list, tuple)) else [classifier] if classifier else []
    state = {k: v for k, v in state.items() if not any(k.startswith(f"{h}.") for h in heads)}
    problem = load_state_reporting(encoder, state, "its weights")
    if problem:
        raise ValueError(f"pretrained={path}: not a state dict of timm's {timm_name} ({problem})")


def _download(spec: BackboneSpec, hub_id: str | None, timm_name: str) -> str:
    from .transformers_models import from_hub

    if not hub_id:
        raise ValueError(f"{spec.name}: timm's {timm_name} has no Hugging Face weights; pass pretrained=<file>")
    from huggingface_hub import hf_hub_download

    try:
        return from_hub(lambda repo, **kw: hf_hub_download(repo, "model.safetensors", **kw), hub_id)
    except OSError as e:
        raise offline_error(spec.name, f"the Hugging Face hub id {hub_id!r} (timm's {timm_name})", e,
                            f"run `huggingface-cli download {hub_id} model.safetensors --local-dir DIR` and pass "
                            "pretrained='DIR/model.safetensors'") from e


def _register(name: str, timm_name: str, shift: bool, num_frames: int, dropout: float, description: str,
              mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
    def builder(spec: BackboneSpec, num_classes: int, pretrained: bool | str, *, dropout: float = dropout,
                **kwargs: Any) -> VideoBackbone:
        encoder = _encoder(spec, timm_name, pretrained, **kwargs)
        if shift:
            insert_temporal_shift(encoder)
        model = SegmentConsensus(encoder, num_classes, dropout)
        return VideoBackbone(model, spec, model.fc, _stages(encoder, nn.ModuleList([model.dropout, model.fc])))

    builder.__doc__ = description
    register_backbone(name, family="timm", layout="BTCHW", num_frames=num_frames, sampling_rate=1, crop_size=224,
                      mean=mean, std=std, clip_sampling="segments", weights=timm_name, test_input=(4, 32),
                      description=description)(builder)


# (entry, timm model with its weights tag, temporal shift, segments, head dropout as in MMAction2's configs)
TIMM_ENTRIES = (
    ("tsn_resnet50", "resnet50.a1_in1k", False, 8, 0.4, "TSN ResNet-50, 8 segments, ImageNet weights (timm)"),
    ("tsm_resnet50", "resnet50.a1_in1k", True, 8, 0.5, "TSM ResNet-50, 8 segments, 1/8 channels shifted each way"),
    ("tsm_resnet18", "resnet18.a1_in1k", True, 8, 0.5, "TSM ResNet-18, 8 segments, 1/8 channels shifted each way"),
    ("tsn_convnext_tiny", "convnext_tiny.in12k_ft_in1k", False, 8, 0.4,
     "TSN ConvNeXt-T, 8 segments, ImageNet-12k/1k weights (timm)"),
)
for _entry in TIMM_ENTRIES:
    _register(*_entry)
