"""The backbone registry and its builders (PyTorchVideo, transformers, torchvision and flashvid's own).

The names load on first use (PEP 562), so :mod:`.catalog` (the registry as data) is read without importing torch.
Layers, bottom up: :mod:`.catalog` and :mod:`.registry`, the family modules (each registers its builders), then
:mod:`.factory` (lookups, with every family loaded) and :mod:`.clip_settings` (what the data side asks).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clip_settings import backbone_clip_settings
    from .factory import create_backbone, get_backbone_spec, list_backbones
    from .registry import BackboneSpec, PretrainedWeightsUnavailable, VideoBackbone, register_backbone

# public name -> the module that holds it
_HOME = {"BackboneSpec": ".registry", "PretrainedWeightsUnavailable": ".registry", "VideoBackbone": ".registry",
         "register_backbone": ".registry", "create_backbone": ".factory", "get_backbone_spec": ".factory",
         "list_backbones": ".factory", "backbone_clip_settings": ".clip_settings"}  # the last: no torch
__all__ = ["BackboneSpec", "PretrainedWeightsUnavailable", "VideoBackbone", "backbone_clip_settings",
           "create_backbone", "get_backbone_spec", "list_backbones", "register_backbone"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'flashvid.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
