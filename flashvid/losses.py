"""The classification losses' pieces: soft-target cross-entropy with class weights, multi-hot targets, and
``class_weights="auto"`` computed from the training videos."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .data.dataset import multi_hot
from .data.sources import VideoSample

log = logging.getLogger(__name__)


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None,
                           smoothing: float) -> torch.Tensor:
    """Cross-entropy of integer class ids or soft targets (mixup/CutMix), with label smoothing and class weights."""
    if weight is not None and labels.is_floating_point():
        # F.cross_entropy divides weighted probability targets by the batch size but weighted class ids by
        # the sum of their weights: normalise soft targets by their weight too, so the loss of a batch has
        # the same scale mixed or not (and equals the integer-label loss for one-hot targets)
        q = labels.float()
        smoothed = q * (1 - smoothing) + smoothing / q.shape[-1]
        nll = -(smoothed * weight * logits.float().log_softmax(-1)).sum()
        return nll / (q * weight).sum().clamp(min=1e-12)
    return F.cross_entropy(logits.float(), labels.float() if labels.is_floating_point() else labels,
                           weight=weight, label_smoothing=smoothing)


def multi_hot_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Multi-hot float targets, from the datamodule's multi-hot rows or collate's padded class indices."""
    if labels.is_floating_point():
        return labels.float()
    if labels.dim() == 1:
        labels = labels.unsqueeze(1)
    return multi_hot(labels, num_classes)


def check_class_weights(class_weights: str | Sequence[float] | None,
                        num_classes: int) -> str | list[float] | None:
    """``"auto"``, one float per class, or ``None``; anything else is refused with the accepted forms."""
    if isinstance(class_weights, str) and class_weights != "auto":
        raise ValueError(f"class_weights must be 'auto', a list of {num_classes} numbers or null, "
                         f"got {class_weights!r}")
    if class_weights is None or isinstance(class_weights, str):
        return class_weights
    weights = [float(w) for w in class_weights]
    if len(weights) != num_classes:
        raise ValueError(f"class_weights has {len(weights)} values for {num_classes} classes")
    return weights


def datamodule_class_weights(datamodule: Any, num_classes: int, multi_label: bool,
                             names: Sequence[str]) -> torch.Tensor:
    """``class_weights="auto"``: :func:`auto_class_weights` of the training videos of the trainer's datamodule."""
    train = getattr(datamodule, "samples", {}).get("train") if datamodule is not None else None
    if not train:
        raise ValueError("class_weights='auto' needs the training videos: train with a VideoClassificationData "
                         "datamodule, or pass one weight per class")
    return auto_class_weights(train, num_classes, multi_label, names)


def auto_class_weights(train: Sequence[VideoSample], num_classes: int, multi_label: bool,
                       names: Sequence[str]) -> torch.Tensor:
    """Inverse frequency of the classes among the training videos (``n / (k * count)``, 0 for a class without
    videos); multi-label: each class's negatives / positives (binary cross-entropy's ``pos_weight``)."""
    if multi_label:
        hot = torch.zeros(len(train), num_classes)
        for i, s in enumerate(train):
            hot[i, list(s.label) if isinstance(s.label, tuple) else [s.label]] = 1.0
        positives = hot.sum(0)
        weights = (len(train) - positives) / positives.clamp(min=1)
        weights[positives == 0] = 1.0  # no positive to weigh
        log.info("flashvid: positive weights (negatives / positives): %s",
                 ", ".join(f"{n}={w:.2f}" for n, w in zip(names, weights.tolist())))
        return weights
    counts = torch.bincount(torch.tensor([s.label for s in train]), minlength=num_classes).float()
    weights = counts.sum() / (num_classes * counts.clamp(min=1))
    weights[counts == 0] = 0.0  # a class with no training video contributes no loss (doctor warns about it)
    log.info("flashvid: class weights (inverse frequency): %s",
             ", ".join(f"{n}={w:.2f}" for n, w in zip(names, weights.tolist())))
    return weights
