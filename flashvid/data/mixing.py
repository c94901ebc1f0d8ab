"""Mixup and CutMix of whole clips, per batch on the training device, with soft targets.

torchvision's ``v2.MixUp``/``v2.CutMix`` do the mixing; they see a clip batch ``(B, T, C, H, W)`` as images of
``T * C`` channels, so every frame of a clip gets the same mixing weight and the same CutMix box (the recipe's
"same mix for every frame"). What they lack and is added here: the per-batch probability of mixing at all and the
choice between the two per batch (timm's ``prob``/``switch_prob``, the VideoMAE/MViT recipes' settings). Label
smoothing stays in the loss (``model.label_smoothing``), which applies it to soft targets too.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2


class ClipMix(nn.Module):
    """Mix a batch of normalised float clips and return ``(clips, soft_targets)``; targets rows sum to 1.

    Args:
        num_classes: size of the target vectors.
        mixup_alpha: Beta(alpha, alpha) of mixup's weight; 0 turns mixup off.
        cutmix_alpha: Beta(alpha, alpha) of CutMix's area; 0 turns CutMix off.
        prob: share of batches that are mixed at all (the others get one-hot targets).
        switch_prob: with both on, the share of mixed batches that use CutMix instead of mixup.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 switch_prob: float = 0.5):
        super().__init__()
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha}, {cutmix_alpha}")
        if not 0.0 <= prob <= 1.0 or not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"mix_prob and mix_switch_prob must be in [0, 1], got {prob}, {switch_prob}")
        self.num_classes = num_classes
        self.mixup = v2.MixUp(alpha=mixup_alpha, num_classes=num_classes) if mixup_alpha > 0 else None
        self.cutmix = v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes) if cutmix_alpha > 0 else None
        self.prob, self.switch_prob = prob, switch_prob

    @property
    def active(self) -> bool:
        return (self.mixup is not None or self.cutmix is not None) and self.prob > 0

    @torch.no_grad()
    def forward(self, video: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, c, h, w = video.shape
        use = None
        if self.active and b > 1 and float(torch.rand(())) < self.prob:
            if self.mixup is None or (self.cutmix is not None and float(torch.rand(())) < self.switch_prob):
                use = self.cutmix
            else:
                use = self.mixup
        if use is None:
            return video, nn.functional.one_hot(labels, self.num_classes).to(torch.float32)
        mixed, targets = use(video.reshape(b, t * c, h, w), labels)
        return mixed.reshape(b, t, c, h, w), targets.to(torch.float32)

    def extra_repr(self) -> str:
        return (f"mixup={self.mixup is not None}, cutmix={self.cutmix is not None}, prob={self.prob}, "
                f"switch_prob={self.switch_prob}")
