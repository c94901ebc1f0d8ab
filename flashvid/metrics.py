"""The evaluation metrics a :class:`~flashvid.classifier.VideoClassifier` logs as ``val/<name>`` and ``test/<name>``."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassRecall,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
)


class MeanClassAccuracy(MulticlassRecall):
    """The mean of the per-class recalls over the classes that have videos in the evaluated split.

    torchmetrics' macro accuracy also averages in a class that has no videos but was predicted (its recall 0), so a
    test folder holding a subset of the classes scored lower than its classes' recalls say (2 classes recalled at
    0.5 and 1.0, a third predicted once: 0.5 instead of 0.75).
    """

    def __init__(self, num_classes: int, **kwargs: Any):
        super().__init__(num_classes, average=None, **kwargs)

    def compute(self) -> torch.Tensor:
        tp, _, _, fn = self._final_state()
        support = tp + fn
        present = support > 0
        if not present.any():
            return torch.tensor(0.0, device=tp.device)
        return (tp[present].float() / support[present]).mean()


def evaluation_metrics(num_classes: int, prefix: str, multi_label: bool = False, threshold: float = 0.5,
                       extra: MetricCollection | None = None) -> MetricCollection:
    """Single-label: accuracy (``acc``), top-5 (``acc5``, with more than 5 classes) and ``mean_class_acc`` over
    (probabilities, integer labels). Multi-label, over (sigmoid probabilities, multi-hot targets): ``mAP``, ``f1``
    and ``f1_micro`` at ``threshold``, and ``subset_acc``; a class with no positive video in the split scores 0 in
    the mAP average (torchmetrics' convention, with a warning): evaluate on splits that hold every class.
    ``extra`` (a subclass's ``build_metrics``) joins them."""
    k = num_classes
    metrics: dict[str, Any]
    if multi_label:
        metrics = {"mAP": MultilabelAveragePrecision(k, average="macro"),
                   "f1": MultilabelF1Score(k, threshold=threshold, average="macro"),
                   "f1_micro": MultilabelF1Score(k, threshold=threshold, average="micro"),
                   "subset_acc": MultilabelExactMatch(k, threshold=threshold)}
    else:
        metrics = {"acc": MulticlassAccuracy(k, top_k=1, average="micro")}
        if k > 5:  # with 5 classes or fewer the top 5 hold every class: acc5 would always be 1
            metrics["acc5"] = MulticlassAccuracy(k, top_k=5, average="micro")
        metrics["mean_class_acc"] = MeanClassAccuracy(k)
    if extra is not None:
        metrics.update(dict(extra.items()))
    # compute_groups=False: torchmetrics merges metrics whose states are equal after the first update into one
    # group, and top-5 (always right with 2 classes) and macro accuracy can agree on a batch of one video, after
    # which mean_class_acc silently reported acc5. Three small states are cheap to update separately.
    return MetricCollection(metrics, prefix=f"{prefix}/", compute_groups=False)
