"""Finetune strategies as Lightning callbacks, selectable by name (Lightning Flash's names and tuples).

``"no_freeze"`` trains everything; ``"freeze"`` trains the head only; ``("freeze_unfreeze", N)`` trains the head,
then everything from epoch N; ``("unfreeze_milestones", ((m1, m2), n))`` trains the head, then the last ``n``
stages from epoch m1, then everything from m2; ``("layer_decay", 0.75)`` trains everything with layer-wise
learning-rate decay (VideoMAE's recipe: stage i of L gets ``lr * decay ** (L - i)``).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning, Callback
from torch import nn

log = logging.getLogger(__name__)

STRATEGIES = ("no_freeze", "freeze", "freeze_unfreeze", "unfreeze_milestones", "layer_decay")


def _body(pl_module: L.LightningModule) -> list[nn.Module]:
    """Every stage but the head, input side first."""
    head = pl_module.backbone.head
    return [s for s in pl_module.backbone.stages if s is not head and head not in list(s.modules())]


class NoFreeze(Callback):
    """Train every parameter (the default)."""


class Freeze(BaseFinetuning):
    """Train the classifier head only; the backbone stays frozen, BatchNorm statistics included."""

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(pl_module.backbone, train_bn=False)
        self.make_trainable(pl_module.backbone.head)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        pass


class FreezeUnfreeze(Freeze):
    """Head only until ``unfreeze_epoch``, then the whole backbone joins at a tenth of the learning rate."""

    def __init__(self, unfreeze_epoch: int = 10, train_bn: bool = True):
        super().__init__()
        self.unfreeze_epoch, self.train_bn = unfreeze_epoch, train_bn

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        if epoch == self.unfreeze_epoch:
            self.unfreeze_and_add_param_group(_body(pl_module), optimizer, train_bn=self.train_bn)
            log.info("flashvid finetune: epoch %d, backbone unfrozen", epoch)


class UnfreezeMilestones(Freeze):
    """Head only; at ``milestones[0]`` the last ``num_layers`` stages, at ``milestones[1]`` the rest."""

    def __init__(self, milestones: Sequence[int] = (5, 10), num_layers: int = 5, train_bn: bool = True):
        super().__init__()
        if len(milestones) != 2 or milestones[0] >= milestones[1]:
            raise ValueError(f"milestones must be two increasing epochs, got {milestones}")
        self.milestones, self.num_layers, self.train_bn = tuple(milestones), num_layers, train_bn

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        body = _body(pl_module)
        split = max(len(body) - self.num_layers, 0)
        if epoch == self.milestones[0]:
            self.unfreeze_and_add_param_group(body[split:], optimizer, train_bn=self.train_bn)
            log.info("flashvid finetune: epoch %d, last %d stages unfrozen", epoch, len(body) - split)
        elif epoch == self.milestones[1]:
            self.unfreeze_and_add_param_group(body[:split], optimizer, train_bn=self.train_bn)
            log.info("flashvid finetune: epoch %d, all stages unfrozen", epoch)


class LayerDecay(Callback):
    """Layer-wise learning-rate decay; the module builds its optimizer's parameter groups from it."""

    def __init__(self, decay: float = 0.75):
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"layer decay must be in (0, 1], got {decay}")
        self.decay = decay

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.layer_decay = self.decay  # read by configure_optimizers, which runs after setup


def resolve_strategy(strategy: str | tuple | Callback | None) -> Callback | None:
    """A strategy name, ``(name, argument)`` tuple or callback into a callback (None for ``no_freeze``)."""
    if strategy is None or isinstance(strategy, Callback):
        return strategy if not isinstance(strategy, NoFreeze) else None
    name, arg = (strategy, None) if isinstance(strategy, str) else (strategy[0], strategy[1])
    if name == "no_freeze":
        return None
    if name == "freeze":
        return Freeze()
    if name == "freeze_unfreeze":
        return FreezeUnfreeze(int(arg) if arg is not None else 10)
    if name == "unfreeze_milestones":
        milestones, n = arg if arg is not None else ((5, 10), 5)
        return UnfreezeMilestones(tuple(milestones), int(n))
    if name == "layer_decay":
        return LayerDecay(float(arg) if arg is not None else 0.75)
    raise ValueError(f"unknown finetune strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
