"""Backbones by name: the registry, filled with every built-in family first.

The family modules register their builders into :mod:`.registry` when they are imported. This module imports
them all before it answers, as ``timm.models`` imports its families before ``timm.create_model`` runs. So the
families depend on the registry only, and the registry on none of them. ``python -m flashvid.models.factory``
rewrites ``catalog.json`` (the registry as data, :mod:`.catalog`) after a built-in entry changed.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from . import (  # noqa: F401  (importing a family registers its builders)
    flashvid_models,
    pytorchvideo_models,
    timm_models,
    torchvision_models,
    transformers_models,
)
from .catalog import CATALOG_FILE, looks_like_hf_checkpoint, unknown_backbone
from .registry import BackboneSpec, VideoBackbone, registered


def list_backbones(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered backbone names matching a glob ``pattern`` (and ``family``), sorted."""
    return sorted(n for n, s in registered().items()
                  if fnmatch.fnmatch(n, pattern) and (family is None or s.family == family))


def get_backbone_spec(name: str) -> BackboneSpec:
    """The entry for ``name``; an HF checkpoint directory or hub id gets an entry built from its config."""
    entries = registered()
    if name in entries:
        return entries[name]
    if looks_like_hf_checkpoint(name):
        return transformers_models.spec_from_hf_checkpoint(name)
    raise unknown_backbone(name, list(entries))


def create_backbone(name: str, num_classes: int, pretrained: bool | str = False, **kwargs: Any) -> VideoBackbone:
    """Build ``name`` with a ``num_classes`` head; ``pretrained=True`` loads its published weights and
    ``pretrained="<path or id>"`` a local file or directory. Extra ``kwargs`` go to the underlying builder."""
    spec = get_backbone_spec(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return spec.builder(spec, num_classes, pretrained, **kwargs)


def registry_catalog() -> list[dict[str, Any]]:
    """The built-in entries as the registry gives them now (entries that user code registered are left out)."""
    specs = [get_backbone_spec(n) for n in list_backbones()]
    return [s.summary() for s in specs if s.builder.__module__.startswith(f"{__package__}.")]


def write_catalog(path: Path = CATALOG_FILE) -> None:
    path.write_text(json.dumps(registry_catalog(), indent=1) + "\n")


if __name__ == "__main__":
    write_catalog()
    print(f"wrote {CATALOG_FILE}")
