"""``flashvid.Trainer``: a Lightning ``Trainer`` with Flash's ``finetune(model, datamodule=, strategy=)``."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from .finetuning import resolve_strategy


class _NoPromotionalTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger / litmodels" lines (logged at INFO on every run since
    Lightning 2.6): advertisements for third-party services have no place in flashvid's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip:" not in record.getMessage()


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
              "lightning_utilities.core.rank_zero"):
    logging.getLogger(_name).addFilter(_NoPromotionalTips())


class Trainer(L.Trainer):
    def finetune(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
                 strategy: str | tuple | Callback | None = "no_freeze", **fit_kwargs: Any) -> None:
        """``fit`` with a finetune strategy (see :mod:`flashvid.finetuning` for the names)."""
        callback = resolve_strategy(strategy)
        if callback is not None:
            self.callbacks.append(callback)
        self.fit(model, datamodule=datamodule, **fit_kwargs)
