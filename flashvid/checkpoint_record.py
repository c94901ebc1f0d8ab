"""What a :class:`~flashvid.classifier.VideoClassifier` checkpoint records besides its weights, and reading it back.

The record lets ``load_from_checkpoint`` rebuild the model as it was trained without its pretrained source: the
resolved labels and class count, the backbone's architecture, the clip settings, the class (a subclass's head and
hooks are rebuilt only by that class) and the last per-class accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checkpoint import check_class, class_path
from .data.clip_config import resolve_clip_config

if TYPE_CHECKING:
    from .classifier import VideoClassifier


def write_record(model: VideoClassifier, checkpoint: dict[str, Any]) -> None:
    """Restoring a checkpoint loads its own weights: never re-download the pretrained ones. The hyperparameters
    hold the arguments as given (labels may have been None): the resolved ones are stored, so
    ``load_from_checkpoint`` rebuilds the same head and names."""
    checkpoint["hyper_parameters"] = {**checkpoint.get("hyper_parameters", {}), "pretrained": False,
                                      "compile": False, "labels": list(model.labels),
                                      "num_classes": model.num_classes,
                                      "architecture": model.backbone.architecture()}
    checkpoint["flashvid"] = {"labels": list(model.labels), "data_config": model.data_config.to_dict(),
                              "class": class_path(type(model)), "per_class_accuracy": model.per_class_accuracy}


def read_record(model: VideoClassifier, checkpoint: dict[str, Any]) -> None:
    """Check the class and labels before the weights load (a class mismatch is named here rather than as a head
    size mismatch, or, with the same number of classes, not at all), then adopt the recorded clip settings and
    per-class accuracy."""
    saved = checkpoint.get("flashvid", {})
    check_class(saved.get("class"), type(model), "the checkpoint")
    if saved.get("labels") is not None:
        from .callbacks import check_labels

        check_labels(list(saved["labels"]), model.labels, source="the checkpoint")
    # The clip settings the weights were trained with (the datamodule's explicit values included) win over
    # the ones rebuilt from the backbone entry and hyperparameters.
    if "data_config" in saved:
        model._set_data_config(resolve_clip_config(saved["data_config"]))
    # the last evaluations' per-class accuracy, for a resumed run that evaluates nothing more (a finished one);
    # never over this model's own
    for split, accuracy in (saved.get("per_class_accuracy") or {}).items():
        model.per_class_accuracy.setdefault(split, dict(accuracy))
