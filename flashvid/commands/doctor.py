"""``flashvid doctor``: check a dataset before training (:mod:`flashvid.doctor`), its data built as for training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run_doctor(cfg: "DictConfig") -> int:
    """``cfg.data`` is instantiated as for training; options under ``cfg.doctor`` (all optional): ``json`` (report
    path), ``workers``, ``progress``, ``group_pattern``, ``imbalance_ratio``; ``max_failed_fraction`` defaults to
    ``cfg.model.max_failed_fraction``. Returns the exit code (0 ok, 1 cannot train, 2 bad data options)."""
    from ..doctor import run
    from .config import ConfigError, build

    opts = dict(cfg.get("doctor") or {})
    model_cfg = cfg.get("model") or {}
    kwargs: dict[str, Any] = {k: opts[k] for k in ("workers", "progress", "group_pattern", "imbalance_ratio")
                              if k in opts}
    kwargs["max_failed_fraction"] = opts.get("max_failed_fraction", model_cfg.get("max_failed_fraction", 0.05))
    # build() reports the datamodule's own error (a val_split that cannot split, a missing folder) against its key,
    # not Hydra's multi-line "Error in call to target" wrapper; the doctor writes it to its JSON too
    return run(lambda: build(cfg.data, "data"), json_path=opts.get("json"),
               input_errors=(ConfigError, FileNotFoundError, NotADirectoryError, ValueError), **kwargs)
