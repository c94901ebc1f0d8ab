"""The backbone registry and its builders (PyTorchVideo, transformers, torchvision and flashvid's own).

The names load on first use (PEP 562), so :mod:`.catalog` (the registry as data) is read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import backbone_clip_settings
    from .registry import (
        BackboneSpec,
        PretrainedWeightsUnavailable,
        VideoBackbone,
        create_backbone,
        get_backbone_spec,
        list_backbones,
        register_backbone,
    )

__all__ = ["BackboneSpec", "PretrainedWeightsUnavailable", "VideoBackbone", "backbone_clip_settings",
           "create_backbone", "get_backbone_spec", "list_backbones", "register_backbone"]
_TORCH_FREE = {"backbone_clip_settings"}  # read from the catalog: no torch


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'flashvid.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(".catalog" if name in _TORCH_FREE else ".registry", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
