"""VideoMAE at another clip length or crop size than its checkpoint: its position table, resampled.

transformers' VideoMAE has no learned position embeddings: ``embeddings.position_embeddings`` is a fixed 1D
sinusoid table over the flattened ``(t, h, w)`` token index, rebuilt from the config (``num_frames``,
``image_size``, ``tubelet_size``, ``patch_size``). Loading a 16x224 checkpoint with ``num_frames=8`` or
``image_size=160`` therefore runs, but each token then gets the code of another place than the weights learned
(token ``(t, h, w)`` of a 10x10 grid takes index ``t*100 + h*10 + w``, which meant ``(t, h', w')`` on the 14x14
grid). As MAE-ST and VideoMAE v2 do for position tables when fine-tuning at another size, the table of the
checkpoint's grid is interpolated (trilinear) to the new grid, so every token keeps the code of the same place in
the clip. ``config.position_grid`` records the checkpoint's grid, so a flashvid checkpoint (which rebuilds the
model from its config) recomputes the same table.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

GRID_KEYS = frozenset({"num_frames", "image_size", "tubelet_size", "patch_size"})


def token_grid(config: Any) -> tuple[int, int, int]:
    """(time, height, width) tokens of a VideoMAE config."""
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    patch = config.patch_size if isinstance(config.patch_size, int) else config.patch_size[0]
    return config.num_frames // config.tubelet_size, size // patch, size // patch


def resampled_table(hidden_size: int, source: tuple[int, int, int], target: tuple[int, int, int]) -> torch.Tensor:
    """VideoMAE's sinusoid table of the ``source`` grid, interpolated to ``target``: ``(1, T*H*W, hidden_size)``."""
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    table = get_sinusoid_encoding_table(source[0] * source[1] * source[2], hidden_size)
    if source == target:
        return table
    grid = table.reshape(1, *source, hidden_size).permute(0, 4, 1, 2, 3)  # (1, D, T, H, W)
    grid = nn.functional.interpolate(grid, size=target, mode="trilinear", align_corners=False)
    return grid.permute(0, 2, 3, 4, 1).reshape(1, -1, hidden_size)


def apply_position_grid(model: nn.Module) -> bool:
    """Give ``model`` (a VideoMAE classifier) the table of ``config.position_grid`` resampled to its own grid.
    Returns whether it differs from the default one."""
    config = model.config
    source = getattr(config, "position_grid", None)
    target = token_grid(config)
    if not source or tuple(source) == target:
        return False
    embeddings = model.videomae.embeddings
    embeddings.position_embeddings = resampled_table(config.hidden_size, tuple(source), target)
    return True
