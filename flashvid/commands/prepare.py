"""``flashvid prepare <data options> output=DIR``: a training-friendly copy of a dataset
(:mod:`flashvid.data.prepare`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..data.prepare import prepare, settings_for
from ..rundir import RunDirectoryError
from ..source_registry import configured_source
from .config import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


def run_prepare(cfg: "DictConfig") -> int:
    """``flashvid prepare <data options> output=DIR``: the handler the CLI calls; exit 0, or 1 if files failed."""
    from omegaconf import OmegaConf

    output = OmegaConf.select(cfg, "output", throw_on_missing=False)
    if not output or output == "???":
        raise ConfigError("prepare needs output=DIR (where the training-friendly copy goes), e.g. "
                          "flashvid prepare data.train_folder=videos/train output=videos_prepared")
    try:
        return _run(cfg, str(output))
    except (ValueError, RunDirectoryError) as e:  # bad settings or source, a busy output: one line, no traceback
        raise ConfigError(str(e)) from None


def _run(cfg: "DictConfig", output: str) -> int:
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(data, dict)
    opts = dict(cfg.get("prepare") or {})
    workers = opts.pop("workers", None)
    progress = bool(opts.pop("progress", True))
    force = bool(opts.pop("force", False))
    settings = settings_for(data, (cfg.get("model") or {}).get("backbone"), **opts)
    source, src = configured_source(data)  # data.source and its own keys (folders, list files, UCF101's ...)
    what = (f"JPEG frame stores (quality {settings.jpeg_quality})" if settings.format == "frames" else
            f"H.264, keyframe every {settings.keyframe_interval:.2f} s")
    log.info("flashvid prepare: short side %d, %s, frame rate %s -> %s", settings.short_side, what,
             f"capped at {settings.max_fps:g}" if settings.max_fps else "kept", output)
    report = prepare(output, source=source, settings=settings, workers=workers, progress=progress, force=force,
                     **src)
    print(report.format_text())
    return 1 if report.failed else 0
