"""The backbone registry as data: what every built-in entry needs, readable without importing torch.

The registry (:mod:`.registry`) is the source of truth, but its family modules import torch, PyTorchVideo and
transformers: 10 s of CPU (30 s wall on a busy 2-core machine) before ``flashvid backbones`` could print a table
or a mistyped ``model.backbone`` could be named. ``catalog.json`` holds each entry's summary, written from the
registry by ``python -m flashvid.models.factory``; a test fails when it no longer matches the registry.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).with_name("catalog.json")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def looks_like_hf_checkpoint(name: str) -> bool:
    """A transformers checkpoint directory or a hub id (``org/name``): the registry builds an entry from its config."""
    if os.path.isdir(name):
        return os.path.isfile(os.path.join(name, "config.json"))
    return bool(_HUB_ID.match(name))


@lru_cache(maxsize=1)
def catalog() -> tuple[dict[str, Any], ...]:
    """Every built-in backbone's summary (name, family, frames, sampling rate, crop, mean/std, layout, weights),
    sorted by name."""
    return tuple(json.loads(CATALOG_FILE.read_text()))


def catalog_entries(pattern: str = "*", family: str | None = None) -> list[dict[str, Any]]:
    """The summaries whose name matches the glob ``pattern`` (and ``family``)."""
    return [dict(e) for e in catalog()
            if fnmatch.fnmatch(e["name"], pattern) and (family is None or e["family"] == family)]


def catalog_clip_settings(name: str) -> dict[str, Any] | None:
    """A built-in backbone's clip settings (:class:`~flashvid.data.clip_config.DataConfig` as a dict), None for a
    name the catalog does not hold."""
    for e in catalog():
        if e["name"] == name:
            return dict(e["data"])
    return None


def check_backbone_name(name: str) -> None:
    """Raise ``ValueError`` naming close matches when ``name`` is neither a built-in entry nor a transformers
    checkpoint; the same message as :func:`~flashvid.models.get_backbone_spec`, without importing torch."""
    names = [e["name"] for e in catalog()]
    if name not in names and not looks_like_hf_checkpoint(name):
        raise unknown_backbone(name, names)


def unknown_backbone(name: str, names: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown backbone {name!r}.{hint} Available: {', '.join(sorted(names))}. "
                      "A transformers VideoMAE/TimeSformer/ViViT/V-JEPA 2/VideoPrism checkpoint directory or hub id "
                      "works too.")
