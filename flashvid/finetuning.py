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
from torch.nn.modules.batchnorm import _BatchNorm

log = logging.getLogger(__name__)

STRATEGIES = ("no_freeze", "freeze", "freeze_unfreeze", "unfreeze_milestones", "layer_decay")


def _without(module: nn.Module, head: nn.Module) -> list[nn.Module]:
    """``module``'s parts other than ``head`` (which it contains somewhere below)."""
    if module is head:
        return []
    if not any(m is head for m in module.modules()):
        return [module]
    return [part for child in module.children() for part in _without(child, head)]


def _body(pl_module: L.LightningModule) -> list[nn.Module]:
    """Every stage but the head, input side first. The head's own stage (e.g. a final norm + the classifier)
    counts as the last body stage with what it holds besides the head, so that norm is unfrozen too."""
    head = pl_module.backbone.head
    body: list[nn.Module] = []
    for stage in pl_module.backbone.stages:
        rest = _without(stage, head)
        if rest == [stage]:
            body.append(stage)
        elif any(next(m.parameters(), None) is not None for m in rest):
            body.append(nn.ModuleList(rest))
    return body


def _unfreeze(pl_module: L.LightningModule, modules: list[nn.Module], optimizer: Any, train_bn: bool,
              lr_scale: float = 0.1) -> int:
    """Make ``modules`` trainable and add them to ``optimizer`` at ``lr_scale`` of the learning rate; returns how
    many parameter values (elements) were frozen before, for the log line.

    Unlike ``BaseFinetuning.unfreeze_and_add_param_group``, the new groups keep the module's weight-decay split
    (none on biases and norms) and layer-decay scales, and carry ``initial_lr`` so the LR schedule drives them.
    """
    if not modules:
        return 0
    frozen = {id(p): p.numel() for m in modules for p in m.parameters() if not p.requires_grad}
    BaseFinetuning.make_trainable(modules)
    if not train_bn:
        for m in BaseFinetuning.flatten_modules(modules):
            if isinstance(m, _BatchNorm):
                BaseFinetuning.freeze_module(m)
    if hasattr(pl_module, "add_param_groups"):
        pl_module.add_param_groups(modules, optimizer, lr_scale)
    else:  # any LightningModule with a ``backbone``: one group
        # by identity: BaseFinetuning.filter_on_optimizer compares values and drops e.g. zero-initialised biases
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        params = [p for p in BaseFinetuning.filter_params(modules, train_bn=train_bn, requires_grad=True)
                  if id(p) not in held]
        if params:
            optimizer.add_param_group({"params": params, "lr": optimizer.param_groups[0]["lr"] * lr_scale})
    return sum(n for m in modules for p in m.parameters() if p.requires_grad and (n := frozen.pop(id(p), 0)))


def _log_unfreeze(epoch: int, what: str, count: int, lr_scale: float = 0.1) -> None:
    """One INFO line per unfreeze event: when, what and how much joined the training (else invisible in a log)."""
    log.info("flashvid finetune: epoch %d: unfroze %s (%s parameters), at %g x the learning rate", epoch, what,
             f"{count:,}", lr_scale)


class NoFreeze(Callback):
    """Train every parameter (the default)."""


class Freeze(BaseFinetuning):
    """Train the classifier head only; the backbone stays frozen, BatchNorm statistics included."""

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(pl_module.backbone, train_bn=False)
        self.make_trainable(pl_module.backbone.head)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        pass

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        restarting = self._restarting
        super().on_fit_start(trainer, pl_module)  # a resumed run: puts the unfrozen groups back in the optimizer
        if not restarting:
            return
        # ... but leaves their parameters frozen by freeze_before_training, so they would silently stop training
        held = {id(p) for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]}
        for module in self.flatten_modules(pl_module.backbone):
            params = list(module.parameters(recurse=False))
            if params and all(id(p) in held for p in params):
                self.make_trainable(module)


class FreezeUnfreeze(Freeze):
    """Head only until ``unfreeze_epoch``, then the whole backbone joins at a tenth of the learning rate."""

    def __init__(self, unfreeze_epoch: int = 10, train_bn: bool = True):
        super().__init__()
        self.unfreeze_epoch, self.train_bn = unfreeze_epoch, train_bn

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Any) -> None:
        if epoch == self.unfreeze_epoch:
            _log_unfreeze(epoch, "the whole backbone",
                          _unfreeze(pl_module, [pl_module.backbone], optimizer, self.train_bn))


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
            count = _unfreeze(pl_module, body[split:], optimizer, self.train_bn)
            _log_unfreeze(epoch, f"the last {len(body) - split} of {len(body)} stages", count)
        elif epoch == self.milestones[1]:
            count = _unfreeze(pl_module, [pl_module.backbone], optimizer, self.train_bn)
            _log_unfreeze(epoch, f"the remaining {split} of {len(body)} stages", count)


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
