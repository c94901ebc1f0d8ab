"""Learning-rate schedules: warm-up then decay, per step, over every parameter group (added ones too)."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

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
    sched = warmup_decay_scheduler(optimizer, int(total_steps()), warmup_ratio, min_lr_ratio, scheduler)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_decay_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float,
                           min_lr_ratio: float, shape: str = "cosine") -> GroupAwareLambdaLR:
    """A per-step :func:`warmup_then_decay` scheduler over ``total_steps`` that records its settings, so a resume
    with another budget (``trainer.max_steps``, ``max_epochs``) is told the schedule changed."""
    total = max(int(total_steps), 1)
    settings = {"total": total, "warmup": int(total * warmup_ratio), "floor": float(min_lr_ratio), "shape": shape}
    return GroupAwareLambdaLR(optimizer, warmup_then_decay(**settings), settings=settings)


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

    ``settings`` (the :func:`warmup_then_decay` arguments ``factor`` was made with) travel in the state: a resume
    whose schedule differs from the checkpoint's (the budget is what usually changes: the schedule is sized from
    it) follows the new one from its first step and says in one line that the run is not the one the new settings
    give in one go.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Any, last_epoch: int = -1,
                 settings: dict[str, Any] | None = None):
        self._factor = factor
        self.settings = settings
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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        settings, saved = self.settings, state_dict.get("settings")
        super().load_state_dict(state_dict)
        self.settings = settings  # the schedule is this run's; the checkpoint gives the position in it
        if saved and settings and saved != settings:
            self._follow_changed_schedule(saved)

    def _follow_changed_schedule(self, saved: dict[str, Any]) -> None:
        """Set the groups' rates to this schedule's at the resumed step (the optimizer's state holds the old
        schedule's), and say so when the steps already taken ran at other rates than this schedule gives."""
        assert self.settings is not None
        step, old, new = self.last_epoch, warmup_then_decay(**saved), self._factor
        self._sync_groups()
        # the checkpoint's base_lrs may name groups a finetune strategy has not added back yet: they follow at its
        # next step
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * new(step)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        if all(math.isclose(old(s), new(s), rel_tol=1e-9) for s in range(step)):
            return  # e.g. only the decay after this step changed: the run is the new settings' run
        changes = ", ".join(f"{what} {saved.get(key)} -> {self.settings[key]}{unit}" for key, what, unit in (
            ("total", "sized for", " steps"), ("warmup", "warm-up", " steps"), ("floor", "floor", ""),
            ("shape", "shape", "")) if saved.get(key) != self.settings[key])
        budget = "; trainer.max_steps or max_epochs size it" if saved.get("total") != self.settings["total"] else ""
        log.warning("flashvid: resuming at step %d with another learning-rate schedule than the checkpoint's (%s%s): "
                    "the LR goes from x%.3g to x%.3g of the base rate and the run differs from one trained with these "
                    "settings in one go. To pause a run and continue it unchanged, stop it with Ctrl-C or SIGTERM "
                    "and resume with the same settings", step, changes, budget, old(step), new(step))
