"""The backbone registry and its builders (PyTorchVideo, transformers, torchvision and flashvid's own)."""

from .registry import (
    BackboneSpec,
    PretrainedWeightsUnavailable,
    VideoBackbone,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)

__all__ = ["BackboneSpec", "PretrainedWeightsUnavailable", "VideoBackbone", "create_backbone",
           "get_backbone_spec", "list_backbones", "register_backbone"]
