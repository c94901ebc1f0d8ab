"""RandAugment / TrivialAugment of whole clips: one draw of operations and magnitudes per clip, applied to every
frame, per batch on the training device (uint8, before the crop, flip and normalisation of ``BatchAugmentation``).

torchvision's ``v2.RandAugment``/``v2.TrivialAugmentWide`` draw their parameters once per call and apply them to
every leading dimension, so a call on one clip ``(T, C, H, W)`` augments all its frames alike; the batch is walked
clip by clip (B small calls) so that clips differ. timm's ``rand-m7-n4-mstd0.5-inc1`` policy, the VideoMAE and
MViT recipes' setting, runs on PIL images (per frame, on the CPU); here it is parsed into torchvision's operations
on tensors: ``m`` the magnitude (of 30, as in timm), ``n`` the number of operations, ``mstd`` a per-clip Gaussian
noise on the magnitude (torchvision's fixed magnitude is redrawn per clip, which is what ``mstd`` does).
torchvision's operations already grow stronger with the magnitude (timm's ``inc1`` variants).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

MAX_MAGNITUDE = 30  # timm's _LEVEL_DENOM; torchvision's num_magnitude_bins=31 spans the same 0..30 scale


def parse_policy(policy: str) -> dict[str, float | str]:
    """``"rand-m7-n4-mstd0.5-inc1"`` or ``"trivial"`` to settings; a bad string names the valid form."""
    parts = policy.strip().lower().split("-")
    if parts[0] == "trivial" and len(parts) == 1:
        return {"kind": "trivial"}
    if parts[0] != "rand":
        raise ValueError(f"auto_augment={policy!r}: use 'rand-m<magnitude>-n<ops>[-mstd<std>][-inc1]' (timm's "
                         "form, e.g. 'rand-m7-n4-mstd0.5-inc1') or 'trivial'")
    out: dict[str, float | str] = {"kind": "rand", "magnitude": 9.0, "num_ops": 2, "magnitude_std": 0.0}
    for p in parts[1:]:
        try:
            if p.startswith("mstd"):
                out["magnitude_std"] = float(p[4:])
            elif p.startswith("m"):
                out["magnitude"] = float(p[1:])
            elif p.startswith("n"):
                out["num_ops"] = int(p[1:])
            elif p.startswith("inc"):
                if p != "inc1":
                    raise ValueError
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"auto_augment={policy!r}: cannot read {p!r}; the form is "
                             "'rand-m<magnitude>-n<ops>[-mstd<std>][-inc1]', e.g. 'rand-m7-n4-mstd0.5-inc1'") from None
    if not 0 <= float(out["magnitude"]) <= MAX_MAGNITUDE:
        raise ValueError(f"auto_augment={policy!r}: the magnitude must be in [0, {MAX_MAGNITUDE}]")
    return out


class ClipAutoAugment(nn.Module):
    """RandAugment (timm-style policy string) or TrivialAugment on uint8 ``(B, T, C, H, W)`` clips."""

    def __init__(self, policy: str):
        super().__init__()
        self.policy = policy
        cfg = parse_policy(policy)
        self.magnitude, self.magnitude_std = float(cfg.get("magnitude", 0)), float(cfg.get("magnitude_std", 0))
        if cfg["kind"] == "trivial":
            self.op: nn.Module = v2.TrivialAugmentWide()
        else:
            self.op = v2.RandAugment(num_ops=int(cfg["num_ops"]), magnitude=round(self.magnitude),
                                     num_magnitude_bins=MAX_MAGNITUDE + 1)

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dtype != torch.uint8:
            raise TypeError("ClipAutoAugment takes uint8 clips (it runs before BatchAugmentation's normalisation)")
        out = []
        for clip in video.unbind(0):
            if self.magnitude_std > 0 and isinstance(self.op, v2.RandAugment):
                m = self.magnitude + self.magnitude_std * float(torch.randn(()))
                self.op.magnitude = int(min(max(round(m), 0), MAX_MAGNITUDE))
            out.append(self.op(tv_tensors.Video(clip)).as_subclass(torch.Tensor))
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}"
