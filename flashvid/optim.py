"""Optimizers over a backbone's parameters: groups by stage LR scale (layer decay) and weight decay, and groups
added mid-training (unfrozen stages) that follow the running schedule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .models import VideoBackbone

OPTIMIZERS = ("adamw", "adam", "sgd")


def check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def parameter_groups(backbone: VideoBackbone, lr: float, weight_decay: float, layer_decay: float | None = None,
                     modules: Iterable[nn.Module] | None = None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (stage LR scale, weight decay): no decay on biases, norms and position
    embeddings; stage s of n scaled by ``layer_decay ** (n - 1 - s)``. ``modules``: only their parameters."""
    stage_of = backbone.stage_index_of_parameters()
    last = len(backbone.stages) - 1
    wanted = None if modules is None else {id(p) for m in modules for p in m.parameters()}
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in backbone.named_parameters():
        if not p.requires_grad or (wanted is not None and id(p) not in wanted):
            continue
        scale = layer_decay ** (last - stage_of[name]) if layer_decay else 1.0
        wd = 0.0 if p.ndim <= 1 or name.endswith(".bias") or "pos" in name.split(".")[-1] else weight_decay
        groups.setdefault((scale, wd), []).append(p)
    return [{"params": ps, "lr": lr * s, "weight_decay": wd, "lr_scale": s}
            for (s, wd), ps in sorted(groups.items(), key=lambda kv: kv[0])]


def build_optimizer(name: str, groups: list[dict[str, Any]], lr: float, fused: bool = False) -> torch.optim.Optimizer:
    """One of :data:`OPTIMIZERS` over ``groups``: SGD with Nesterov momentum 0.9, Adam, or AdamW (``fused``
    kernels on CUDA)."""
    kwargs = {"fused": True} if fused else {}
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, **kwargs)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), **kwargs)


def add_param_groups(optimizer: torch.optim.Optimizer, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``groups``' parameters that ``optimizer`` lacks, each group starting at the schedule's current factor
    (read off the first group) so it follows the running schedule; returns the groups added."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    first = optimizer.param_groups[0]
    factor = first["lr"] / first["initial_lr"] if first.get("initial_lr") else 1.0
    added = []
    for group in groups:
        group["params"] = [p for p in group["params"] if id(p) not in held]
        if not group["params"]:
            continue
        group["initial_lr"] = group["lr"]
        group["lr"] = group["initial_lr"] * factor
        optimizer.add_param_group(group)
        added.append(group)
    return added
