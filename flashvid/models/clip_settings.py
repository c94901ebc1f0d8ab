"""What the data side asks of a backbone: its clip settings, without importing torch when it can.

``flashvid prepare`` sizes its copies for a backbone and must not wait for torch and every model family, so the
settings come from the catalog (:mod:`.catalog`) while the registry is not loaded, and from the registry
(:mod:`.factory`) once it is, or for a name the catalog does not hold (checkpoint directories, entries that user
code registered).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .catalog import catalog_clip_settings

if TYPE_CHECKING:
    from ..data.clip_config import DataConfig


def backbone_clip_settings(name: str) -> "DataConfig | dict[str, Any]":
    """A backbone's clip settings, for :func:`~flashvid.data.clip_config.resolve_clip_config`. Unknown names raise
    ``ValueError`` naming close matches."""
    if "flashvid.models.registry" not in sys.modules:
        settings = catalog_clip_settings(name)
        if settings is not None:
            return settings
    from .factory import get_backbone_spec

    return get_backbone_spec(name).data
