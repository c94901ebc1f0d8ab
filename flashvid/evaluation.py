"""Scoring a :class:`~flashvid.classifier.VideoClassifier` on its validation and test splits, and the step logs.

:class:`EvaluationSteps` holds the Lightning hooks of evaluation: each batch's video-level probabilities (a test
video's clip x crop views averaged), the metric, loss and per-class updates, what is logged at the epoch's end, and
each split's per-class accuracy. Its running state lives on the model under the names it always had
(``val_metrics``, ``val_loss``, ``val_per_class`` and the ``test_`` ones), so checkpoints keep their keys.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from .losses import multi_hot_targets
from .metrics import evaluation_metrics

if TYPE_CHECKING:
    from .classifier import VideoClassifier

log = logging.getLogger(__name__)


class EvaluationSteps:
    """Mixin for :class:`~flashvid.classifier.VideoClassifier` (listed before ``LightningModule`` in its bases):
    the validation and test hooks, and the training step's logs.

    Needs ``num_classes``, ``labels``, ``multi_label``, ``threshold`` and ``build_metrics`` of the model, the
    failure accounting of :class:`~flashvid.failures.DecodeFailureAccounting`, and :meth:`_add_evaluation_state`
    called once those are set.
    """

    def _add_evaluation_state(self: VideoClassifier) -> None:
        self.val_metrics, self.test_metrics = self._split_metrics("val"), self._split_metrics("test")
        # The evaluation loss as a torchmetrics mean (sum and weight, summed over ranks): Lightning's
        # self.log(sync_dist=True) averages each rank's integer batch-size count with a truncating integer mean,
        # so ranks with unequal numbers of videos (3 and 2) reported a loss 25% too high.
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        # per-class accuracy (recall), kept out of the logged collection: k values per epoch would flood the logs;
        # read it from per_class_accuracy (written to metrics.json / test_metrics.json by the command line).
        # Single-label only: a metric never updated warns "compute before update" (multi-label per-class AP and F1
        # are in flashvid test's report)
        k = self.num_classes
        self.val_per_class = None if self.multi_label else MulticlassAccuracy(k, top_k=1, average="none")
        self.test_per_class = None if self.multi_label else MulticlassAccuracy(k, top_k=1, average="none")
        self.per_class_accuracy: dict[str, dict[str, float]] = {}

    def _split_metrics(self: VideoClassifier, prefix: str) -> MetricCollection:
        return evaluation_metrics(self.num_classes, prefix, self.multi_label, self.threshold,
                                  self.build_metrics(self.num_classes))

    def _log_training_step(self: VideoClassifier, loss: torch.Tensor, logits: torch.Tensor,
                           labels: torch.Tensor) -> None:
        n = len(labels)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        # against the integer labels even when the loss saw mixed targets (then it measures the dominant clip)
        if not self.multi_label:  # a multi-label model reports mAP at evaluation, no training accuracy
            self.log("train/acc", (logits.detach().argmax(-1) == labels).float().mean(), batch_size=n)

    def on_validation_epoch_start(self: VideoClassifier) -> None:
        self._share_buffers()

    def on_test_epoch_start(self: VideoClassifier) -> None:
        self._share_buffers()

    def validation_step(self: VideoClassifier, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self: VideoClassifier) -> None:
        self._log_eval("val", prog_bar=True)
        self._store_per_class("val")

    def test_step(self: VideoClassifier, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any] | None:
        """Returns each video's probabilities with its label (multi-label: its multi-hot row) and path, once per
        video (what :class:`flashvid.reports.TestReport` collects)."""
        probs = self._eval_step(batch, "test")
        if probs is None:
            return None
        label = multi_hot_targets(batch["label"], self.num_classes) if self.multi_label else batch["label"]
        return {"probs": probs.detach(), "label": label, "path": list(batch["path"]), "index": batch["index"]}

    def on_test_epoch_end(self: VideoClassifier) -> None:
        self._log_eval("test", prog_bar=False)
        self._store_per_class("test")

    def _eval_step(self: VideoClassifier, batch: Mapping[str, Any], split: str) -> torch.Tensor | None:
        """Update ``split``'s metrics, mean loss and per-class accuracy with the batch's video-level
        probabilities (views averaged) and return them; ``None`` for a batch with no decodable clip."""
        self._account(batch)
        if batch["video"] is None:
            return None
        video, labels = batch["video"], batch["label"]
        out = self(video)
        metrics, mean_loss = getattr(self, f"{split}_metrics"), getattr(self, f"{split}_loss")
        if self.multi_label:
            targets = multi_hot_targets(labels, self.num_classes)
            probs = out.float().sigmoid()
            metrics.update(probs, targets.long())
            loss = F.binary_cross_entropy_with_logits(out.float(), targets)
            mean_loss.update(loss.detach(), weight=len(labels))
            return probs
        if video.dim() == 6:  # out holds the log of the view-averaged probabilities
            loss = F.nll_loss(out, labels)
            probs = out.exp()
        else:
            loss = F.cross_entropy(out.float(), labels)
            probs = out.float().softmax(-1)
        metrics.update(probs, labels)
        per_class = getattr(self, f"{split}_per_class")
        assert per_class is not None  # single-label
        per_class.update(probs, labels)
        mean_loss.update(loss.detach(), weight=len(labels))
        return probs

    def _log_eval(self: VideoClassifier, split: str, prog_bar: bool) -> None:
        """Video-level metrics and the mean loss over every rank's videos (each counted once: the datamodule's
        evaluation samplers do not pad), then the failed files of all ranks."""
        self._sync_failures()
        metrics, loss = getattr(self, f"{split}_metrics"), getattr(self, f"{split}_loss")
        values = dict(metrics.compute())
        with warnings.catch_warnings():  # every rank computes (a collective), even one whose batches all failed
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
            mean_loss = loss.compute()
        if not torch.isnan(mean_loss):
            values[f"{split}/loss"] = mean_loss
        # values are already equal on every rank; sync_dist averages equal floats (exact) and keeps Lightning quiet
        self.log_dict(values, prog_bar=prog_bar, sync_dist=True)
        metrics.reset()
        loss.reset()

    def _store_per_class(self: VideoClassifier, split: str) -> None:
        """Per-class accuracy of the classes present in the split (a class without videos has no accuracy)."""
        metric = getattr(self, f"{split}_per_class")
        if metric is None:  # multi-label
            return
        seen = (metric.tp + metric.fn) > 0
        acc = metric.compute()
        self.per_class_accuracy[split] = {self.labels[i]: float(acc[i]) for i in range(self.num_classes)
                                          if bool(seen[i])}
        metric.reset()

    def _share_buffers(self: VideoClassifier) -> None:
        """Under DDP, rank 0's buffers (BatchNorm running statistics) on every rank before evaluating.

        DDP broadcasts buffers at the start of each training forward, so after the last step every other rank
        keeps statistics updated by its own last batch; evaluated with them, part of the videos were scored by a
        model that is not the one checkpointed (rank 0's), and DDP and one-process metrics of a checkpoint
        differed.
        """
        if self._trainer is None or self.trainer.world_size <= 1:
            return
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for buf in self.buffers():
                dist.broadcast(buf, src=0)

    def _monitor_map(self: VideoClassifier) -> None:
        """Checkpointing and early stopping configured on ``val/acc`` follow ``val/mAP``: a multi-label model
        logs no accuracy (both are "higher is better", so the mode stays)."""
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        for cb in self.trainer.callbacks:  # type: ignore[union-attr]
            if isinstance(cb, (ModelCheckpoint, EarlyStopping)) and cb.monitor == "val/acc":
                log.info("flashvid: multi-label model: %s monitors val/mAP instead of val/acc", type(cb).__name__)
                cb.monitor = "val/mAP"
