"""Learning-rate schedules: warm-up then decay, per step, over every parameter group (added ones too)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

SCHEDULERS = ("cosine", "linear", "constant")


def check_scheduler(name: str) -> None:
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")


def with_schedule(optimizer: torch.optim.Optimizer, scheduler: str, warmup_ratio: float, min_lr_ratio: float,
                  total_steps: Callable[[], int | float]) -> Any:
    """``configure_optimizers``' answer: the optimizer alone for a constant LR without warm-up, else with a per-step
    :func:`warmup_then_decay` schedule over ``total_steps()`` (asked only then: the trainer's estimate)."""
    if scheduler == "constant" and not warmup_ratio:
        return optimizer
    total = max(int(total_steps()), 1)
    factor = warmup_then_decay(total, int(total * warmup_ratio), min_lr_ratio, scheduler)
    sched = GroupAwareLambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_then_decay(total: int, warmup: int, floor: float, shape: str = "cosine") -> Callable[[int], float]:
    """The LR multiplier of each step: linear warm-up over ``warmup`` steps, then ``constant``, ``linear`` or
    ``cosine`` decay to ``floor`` at step ``total`` (per step, not per epoch, so short runs decay smoothly)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if shape == "constant":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        if shape == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class GroupAwareLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """``LambdaLR`` with one factor for every parameter group, including groups added after it was built.

    Finetune strategies add the unfrozen backbone to the optimizer mid-training; a plain ``LambdaLR`` then fails
    (``zip() argument 2 is shorter than argument 1``) or leaves the new groups unscheduled. A new group's base LR is
    its ``initial_lr`` when set, else its current LR divided by the schedule's current factor.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Any, last_epoch: int = -1):
        self._factor = factor
        super().__init__(optimizer, factor, last_epoch)

    def _sync_groups(self) -> None:
        groups = self.optimizer.param_groups
        if len(self.base_lrs) < len(groups):
            now = self._factor(max(self.last_epoch - 1, 0))
            for group in groups[len(self.base_lrs):]:
                if "initial_lr" not in group:
                    group["initial_lr"] = group["lr"] / now if now > 0 else group["lr"]
                self.base_lrs.append(group["initial_lr"])
        while len(self.lr_lambdas) < len(groups):  # also after load_state_dict restored longer base_lrs
            self.lr_lambdas.append(self._factor)

    def get_lr(self) -> list[float]:  # type: ignore[override]  # torch: list[float | Tensor]
        self._sync_groups()
        return super().get_lr()  # type: ignore[return-value]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_factor", None)  # a closure: neither picklable nor needed (rebuilt by configure_optimizers)
        return state
