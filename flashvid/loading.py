"""Rebuilding a trained :class:`VideoClassifier` (or the subclass it was trained as) from its checkpoint."""

from __future__ import annotations

import importlib
import os
from typing import Any

from .checkpoint import CheckpointError, check_class, load_checkpoint, require_training_checkpoint
from .classifier import VideoClassifier


def load_classifier(path: str | os.PathLike, cls: type[VideoClassifier] | str | None = None,
                    map_location: Any = "cpu") -> VideoClassifier:
    """The model a flashvid checkpoint holds, rebuilt as it was trained, loaded with ``weights_only=True``.

    ``cls``: the class it was trained with when that is a subclass (the class or its ``module.Name``); the
    checkpoint records which one and refuses another. Class names come from the checkpoint's ``flashvid``
    record when its hyperparameters lack them (checkpoints of flashvid 0.1.0 keep them only there).
    Raises :class:`~flashvid.checkpoint.CheckpointError` (one line saying what to do) for a file that is no
    training checkpoint, carries code, or needs ``cls``.
    """
    ck = load_checkpoint(path, mmap=True)
    require_training_checkpoint(ck, path)
    saved = ck.get("flashvid") or {}
    if isinstance(cls, str):
        module, _, name = cls.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise CheckpointError(f"cannot import the class {cls!r} to load {str(path)!r} with: {e}") from None
    cls = VideoClassifier if cls is None else cls
    if not (isinstance(cls, type) and issubclass(cls, VideoClassifier)):
        raise CheckpointError(f"cls={cls!r} is not a VideoClassifier subclass: cannot load {str(path)!r} with it")
    check_class(saved.get("class"), cls, repr(str(path)))
    labels = saved.get("labels")
    kwargs = {"labels": labels} if labels and "labels" not in (ck.get("hyper_parameters") or {}) else {}
    del ck
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=True, **kwargs)
