"""Start a new training from a flashvid checkpoint's weights: ``model.pretrained=<checkpoint.ckpt>``.

The way to fine-tune a trained model on other classes (a checkpoint cannot be *resumed* on them): the backbone's
weights come from the checkpoint, the classifier head is new (sized for the new classes, freshly initialised), and
nothing else of the old run (optimizer, epoch, callbacks) is carried over. Works for every backbone family, because
it loads the checkpoint's ``state_dict`` into flashvid's own module rather than through a family's weight loader.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .checkpoint import CheckpointError, load_checkpoint

if TYPE_CHECKING:
    from .classifier import VideoClassifier

log = logging.getLogger(__name__)


class WarmStartError(CheckpointError, ValueError):
    """``model.pretrained=<checkpoint>`` names a file whose weights cannot start this model."""


def is_flashvid_checkpoint(source: Any) -> bool:
    """True for a path to a Lightning/flashvid checkpoint file (``.ckpt``, or any file with a ``state_dict`` of
    ``backbone.*`` weights) or a VideoClassifier's bare ``state_dict`` (``backbone.*`` tensors), as opposed to a
    backbone's own weight file or a hub id."""
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_file():
        return False
    if Path(source).suffix == ".ckpt":
        return True
    try:
        ck = load_checkpoint(source, mmap=True)
    except CheckpointError:
        return False
    sd = ck.get("state_dict", ck)
    return isinstance(sd, dict) and any(str(k).startswith("backbone.") for k in sd)


def load_backbone_from_checkpoint(model: "VideoClassifier", source: str | os.PathLike) -> list[str]:
    """Copy every weight of ``source``'s model into ``model`` except its classifier head; returns the head's keys.

    Refuses, naming both, a checkpoint of another backbone (missing or differently shaped weights outside the head).
    """
    try:
        ck = load_checkpoint(source, mmap=True)
    except CheckpointError as e:
        raise WarmStartError(f"model.pretrained={source}: {e}") from None
    state = _model_state(ck)
    if state is None:
        raise WarmStartError(f"model.pretrained={source}: neither a flashvid checkpoint nor a state_dict (its keys: "
                             f"{', '.join(map(str, list(ck)[:6]))})")
    head = _head_keys(model)
    own = model.state_dict()
    wanted = {k for k in own if k.startswith("backbone.") and k not in head}
    missing = sorted(wanted - set(state))
    shaped = sorted(k for k in wanted & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or shaped:
        old = (ck.get("hyper_parameters") or {}).get("backbone")
        unexpected = sorted(k for k in state if k not in own and k.startswith("backbone."))
        counts = (f"{len(missing)} missing, {len(shaped)} of another shape, {len(unexpected)} unexpected, e.g. "
                  f"{(missing + shaped)[0]}{f' / {unexpected[0]}' if unexpected else ''}")
        if old is None:
            raise WarmStartError(
                f"model.pretrained={source}: its weights do not fit {model.backbone.spec.name!r} ({counts}): give "
                f"a state_dict of that backbone's model or of a VideoClassifier of it, or choose its model.backbone")
        raise WarmStartError(
            f"model.pretrained={source}: that checkpoint is of {old!r}, whose weights do not fit "
            f"{model.backbone.spec.name!r} ({counts}). Choose model.backbone={old} (or the model config of it)")
    with torch.no_grad():
        for k in sorted(wanted):
            own[k].copy_(state[k])
    log.info("flashvid: backbone weights from %s (%d tensors); new %d-class head", source, len(wanted),
             model.num_classes)
    return sorted(head)


def _model_state(ck: dict[str, Any]) -> dict[str, Any] | None:
    """The VideoClassifier weights of a checkpoint, of a VideoClassifier's bare state_dict, or of the backbone
    model's own state_dict (its keys then get the ``backbone.model.`` prefix); None for anything else."""
    if isinstance(ck.get("state_dict"), dict):
        return ck["state_dict"]
    if not ck or not all(isinstance(v, torch.Tensor) for v in ck.values()):
        return None
    if any(str(k).startswith("backbone.") for k in ck):
        return ck
    return {f"backbone.model.{k}": v for k, v in ck.items()}


def _head_keys(model: "VideoClassifier") -> set[str]:
    """The state_dict keys of ``model.backbone.head`` (wherever the head sits inside the model)."""
    tensors = {id(t) for t in [*model.backbone.head.parameters(), *model.backbone.head.buffers()]}
    return {k for k, v in model.state_dict(keep_vars=True).items() if id(v) in tensors}
