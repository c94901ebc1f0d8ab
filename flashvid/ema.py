"""EMA of the weights: Lightning's ``WeightAveraging`` with a decay that warms up.

Lightning's callback validates with the averaged weights (swapped in for the validation loop), saves them as the
checkpoint's ``state_dict`` (the raw weights under ``current_model_state``), and copies them into the model when
training ends, so ``best.ckpt``, ``last.ckpt``, ``flashvid test`` and ``export_model`` all see the EMA weights
(``trainer.test(ckpt_path=...)`` runs a checkpoint's ``state_dict``, the EMA weights: Lightning restores callback
state only when fitting). Added here: the decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n``
updates (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``, timm's ``ModelEmaV3`` warm-up).
``EMAWeightAveraging`` uses a fixed decay: at 0.999 its average still holds ~1/e of the random initial weights
after 1000 steps, longer than a whole small-data run (50 clips x 200 epochs at batch 8 is 1250 steps).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging


def ema_avg_fn(decay: float):
    """``AveragedModel`` ``avg_fn`` for an EMA whose decay warms up over the first updates."""

    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        return torch.lerp(current, averaged, d) if averaged.is_floating_point() else current

    return avg


class EMA(WeightAveraging):
    """Exponential moving average of the weights (buffers too, e.g. BatchNorm statistics), updated every step."""

    def __init__(self, decay: float = 0.999, **kwargs: Any):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.999, got {decay}")
        self.decay = decay
        self._train_ended = False
        super().__init__(avg_fn=ema_avg_fn(decay), use_buffers=True, **kwargs)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_ended = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._train_ended = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resume of a finished run (killed after its last checkpoint) skips the training loop and so
        # on_train_end: the model would keep the raw weights, and the final validation and test would see them.
        if not self._train_ended and self._average_model is not None:
            self._copy_average_to_current(pl_module)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Outside fit (train's final test of best.ckpt, `flashvid test`) there is no average to restore: the
        # checkpoint's state_dict already holds the EMA weights, which is what is evaluated. Lightning warns on every
        # such load that the state "cannot be restored"; nothing is lost, so only a fit restores (and may warn).
        if self._average_model is not None:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
