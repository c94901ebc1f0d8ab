"""A callback the interruption tests add on the command line (``+callbacks.pace._target_=pace.Pace``): it writes
the training step and the start of each validation to marker files, so a test knows when to send its signal, and
can slow steps and validation batches down so the signal lands inside them, or stop at one step until killed (the
checkpoint of the step before is then on disk). It draws no random numbers. ``InterruptAt`` is a user's Ctrl-C at a
given step (``+callbacks.stop._target_=pace.InterruptAt``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class Pace(Callback):
    def __init__(self, marker: str, train_sleep: float = 0.0, val_sleep: float = 0.0, stall_at: int | None = None):
        self.marker, self.train_sleep, self.val_sleep = Path(marker), train_sleep, val_sleep
        self.stall_at = stall_at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        Path(f"{self.marker}.step").write_text(str(trainer.global_step))
        time.sleep(600 if trainer.global_step == self.stall_at else self.train_sleep)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            Path(f"{self.marker}.val").write_text(str(trainer.current_epoch))
            time.sleep(self.val_sleep)


class InterruptAt(Callback):
    """Send this process a SIGINT (a user's Ctrl-C) after training step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)
