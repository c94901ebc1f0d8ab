"""A tiny classifier fitted for a few steps on the CPU, for tests that only need training to run and learn."""

from __future__ import annotations

import lightning as L
import torch


def fit_moves_weights(model: L.LightningModule, datamodule: L.LightningDataModule, max_steps: int) -> bool:
    """Fit ``model`` on ``datamodule`` for ``max_steps`` on the CPU (one val batch; no sanity check, logs,
    checkpoints or progress bar); whether any of its weights changed."""
    before = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, limit_val_batches=1, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
