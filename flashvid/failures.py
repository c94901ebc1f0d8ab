"""Accounting of the videos that cannot be decoded, shared by ``VideoClassifier`` and ``VideoMAEPretrainer``.

A bad file never stops a run by itself: the dataset hands back a failure in place of the clip, the batch carries it
under ``"failed"``, and the LightningModule counts it here. At each training epoch's end the share of failed files
is checked against ``max_failed_fraction`` (over all DDP ranks), and ``failure_report()`` is what
``failures.json`` (:class:`flashvid.callbacks.FailureReport`) and the run summaries list.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import torch

log = logging.getLogger(__name__)


class TooManyFailedFiles(RuntimeError):
    """More than ``max_failed_fraction`` of the files seen could not be decoded."""


class DecodeFailureAccounting:
    """Mixin for a ``LightningModule`` whose batches come from flashvid's datamodule.

    Listed before ``LightningModule`` in the bases; its ``__init__`` starts the record empty: ``failed_files``
    (path -> reason) and ``_seen`` (every path a batch carried, failed or not; :class:`FailureReport` keeps both in
    checkpoints). The module calls :meth:`_account` on each batch, :meth:`_check_failures` at each training
    epoch's end, returns :meth:`_skip_loss` for a batch with no decodable clip, and needs ``max_failed_fraction`` in
    its hyperparameters.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failed_files: dict[str, str] = {}
        self._seen: set[str] = set()

    def _account(self, batch: Mapping[str, Any]) -> None:
        for f in batch.get("failed", []):
            if f["path"] not in self.failed_files:
                self.failed_files[f["path"]] = f["reason"]
                log.warning("flashvid: skipping unreadable video %s (%s)", f["path"], f["reason"])
            self._seen.add(f["path"])
        self._seen.update(batch.get("path", []))

    def _sync_failures(self) -> None:
        """Under DDP every rank learns the others' failed and seen files (called at epoch ends, on all ranks), so
        the failure share is decided on the whole data and rank 0's failures.json lists every file once."""
        if self._trainer is None or self.trainer.world_size <= 1:
            return
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.failed_files, sorted(self._seen)))
        for failed, seen in gathered:
            self.merge_failures(failed, seen)

    def merge_failures(self, failed: Mapping[str, str], seen: Iterable[str]) -> None:
        """Add another record (a rank's, or a checkpoint's): a path already listed keeps its first reason."""
        for path, reason in failed.items():
            self.failed_files.setdefault(path, reason)
        self._seen.update(seen)

    def _check_failures(self) -> None:
        self._sync_failures()
        if not self.failed_files or not self._seen:
            return
        share = len(self.failed_files) / len(self._seen)
        if share > self.hparams.max_failed_fraction:
            listing = "\n  ".join(f"{p}: {r}" for p, r in list(self.failed_files.items())[:20])
            raise TooManyFailedFiles(
                f"{len(self.failed_files)} of {len(self._seen)} videos ({share:.0%}) could not be decoded, more "
                f"than max_failed_fraction={self.hparams.max_failed_fraction:.0%}. Run `flashvid doctor` on the "
                f"data, fix or remove these files, or raise model.max_failed_fraction:\n  {listing}"
            )

    def failure_report(self) -> dict[str, Any]:
        return {"num_failed": len(self.failed_files), "num_seen": len(self._seen),
                "failed": [{"path": p, "reason": r} for p, r in sorted(self.failed_files.items())]}

    def _skip_loss(self) -> torch.Tensor:
        """A zero loss touching every trainable parameter: a batch with no decodable clip still steps in sync
        on every rank (returning None would hang DDP)."""
        return sum((p.sum() * 0.0 for p in self.parameters() if p.requires_grad), torch.zeros((), device=self.device))
