"""``flashvid doctor``: check a dataset and this machine before training (:func:`flashvid.doctor.main`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run_doctor(cfg: "DictConfig") -> Any:
    """``flashvid.doctor.main(cfg)`` with the train config (data, model...)."""
    from ..doctor import main

    return main(cfg)
