"""flashvid's own small models: fast enough to train from scratch on a laptop CPU (demos, tests, smoke runs)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import BackboneSpec, VideoBackbone, load_weights_file, register_backbone


def _stem(cout: int) -> nn.Sequential:
    # a full 3x5x5 conv on the input frames: direction-selective filters see motions of a few pixels per frame at
    # full resolution, before any downsampling blurs them (a (1,3,3)-then-(3,1,1) first stage cannot)
    return nn.Sequential(
        nn.Conv3d(3, cout, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False),
        nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
    )


def _block(cin: int, cout: int, stride: tuple[int, int, int]) -> nn.Sequential:
    # (2+1)D factorisation: a spatial conv, then a temporal one; cheap and sensitive to motion
    return nn.Sequential(
        nn.Conv3d(cin, cout, (1, 3, 3), stride=(1, stride[1], stride[2]), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, (3, 1, 1), stride=(stride[0], 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
    )


class TinyR2Plus1D(nn.Module):
    """A 3D conv stem, three (2+1)D conv stages, global pooling and a linear head (~0.17 M parameters at width 16).

    Input ``(B, 3, T, H, W)``; 8 frames of 64x64 cost about 11 ms of one CPU core per clip for forward + backward.
    """

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.2):
        super().__init__()
        w = width
        self.blocks = nn.ModuleList([
            _stem(w), _block(w, 2 * w, (1, 2, 2)), _block(2 * w, 4 * w, (2, 2, 2)), _block(4 * w, 8 * w, (2, 2, 2)),
        ])
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.fc(self.dropout(self.pool(x).flatten(1)))


# resize_size == crop_size: the evaluation view is the whole short side (all of a square frame), not its centre 89%
@register_backbone("tiny_r2plus1d", family="flashvid", layout="BCTHW", num_frames=8, sampling_rate=2,
                   crop_size=64, resize_size=64, test_input=(4, 32))
def tiny_r2plus1d(spec: BackboneSpec, num_classes: int, pretrained: bool | str = False,
                  **kwargs: Any) -> VideoBackbone:
    """A tiny (2+1)D CNN trained from scratch in minutes on a CPU; it has no published weights."""
    if pretrained is True:
        raise ValueError("tiny_r2plus1d has no published weights: pass pretrained=False or a checkpoint path")
    model = TinyR2Plus1D(num_classes, **kwargs)
    if isinstance(pretrained, str):
        load_weights_file(model, pretrained, spec.name)
    return VideoBackbone(model, spec, model.fc, [*model.blocks, model.fc])
