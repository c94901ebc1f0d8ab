"""``flashvid.Trainer``: a Lightning ``Trainer`` with Flash's ``finetune(model, datamodule=, strategy=)``."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from .finetuning import resolve_strategy


class Trainer(L.Trainer):
    def finetune(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
                 strategy: str | tuple | Callback | None = "no_freeze", **fit_kwargs: Any) -> None:
        """``fit`` with a finetune strategy (see :mod:`flashvid.finetuning` for the names)."""
        callback = resolve_strategy(strategy)
        if callback is not None:
            self.callbacks.append(callback)
        self.fit(model, datamodule=datamodule, **fit_kwargs)
