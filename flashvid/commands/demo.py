"""``data=demo``: flashvid's generated demo videos, written once into a folder and reused."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import ConfigError

if TYPE_CHECKING:
    from ..data import VideoClassificationData

log = logging.getLogger(__name__)
DEMO_MARKER = ".flashvid-demo-complete"


def ensure_demo_data(root: str | os.PathLike = "demo_data", **generate: Any) -> Path:
    """Write flashvid's demo videos into ``root`` unless a complete set is there (a marker file says so)."""
    root = Path(root)
    if (root / DEMO_MARKER).is_file():
        return root
    from ..data import make_demo_dataset

    log.info("flashvid: writing the demo videos into %s", root)
    make_demo_dataset(root, **generate)
    (root / DEMO_MARKER).write_text(json.dumps(generate, default=str) + "\n")
    return root


def demo_data(root: str = "demo_data", generate: Mapping[str, Any] | None = None,
              **kwargs: Any) -> "VideoClassificationData":
    """``data=demo``: the demo videos (generated on first use) through ``VideoClassificationData.from_folders``."""
    from ..data import VideoClassificationData

    ensure_demo_data(root, **dict(generate or {}))
    return VideoClassificationData.from_folders(**kwargs)


demo_data.forwards_kwargs_to = "flashvid.data.VideoClassificationData.from_folders"  # type: ignore[attr-defined]


def ensure_demo_source(data_cfg: Mapping[str, Any]) -> None:
    """Write the demo videos when ``data_cfg`` (a resolved ``data`` config) is the demo's, for commands that read
    its folders without building the datamodule (which would write them itself)."""
    from hydra.utils import get_object

    target = data_cfg.get("_target_")
    if not isinstance(target, str):
        return
    try:
        obj = get_object(target)
    except Exception as e:  # noqa: BLE001  (ImportError, AttributeError...: a bad _target_)
        raise ConfigError(f"data._target_: cannot import {target!r}: {e}") from None
    if obj is demo_data:
        ensure_demo_data(data_cfg.get("root", "demo_data"), **dict(data_cfg.get("generate") or {}))
