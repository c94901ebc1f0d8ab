"""How the test views of a video (temporal clips x spatial crops) become one prediction.

``prob`` averages the views' softmax probabilities (PySlowFast sums them; MMAction2's ``average_clips='prob'``,
its default): each view has one vote of at most 1, so a single overconfident view cannot outvote the others.
``logit`` averages the raw scores (MMAction2's ``average_clips='score'``): views the model is sure about weigh
more, which helps when most views miss the action (it happens on one side or in a short part of a long video)
and the few that see it score it high. Multi-label models use sigmoids in place of the softmax.
"""

from __future__ import annotations

import torch

VIEW_AVERAGES = ("prob", "logit")


def check_view_average(how: str, option: str = "view_average") -> str:
    """``how`` if it is a known averaging, else a one-line error naming ``option``."""
    if how not in VIEW_AVERAGES:
        raise ValueError(f"{option} must be one of {', '.join(VIEW_AVERAGES)}, got {how!r}")
    return how


def average_views(logits: torch.Tensor, how: str = "prob", multi_label: bool = False) -> torch.Tensor:
    """``(B, V, C)`` per-view logits to ``(B, C)``: log-probabilities for single-label models (so ``nll_loss``
    and ``exp`` apply whichever the averaging), logits of the averaged sigmoids (or the averaged logits) for
    multi-label ones."""
    logits = logits.float()
    if how == "logit":
        mean = logits.mean(1)
        return mean if multi_label else mean.log_softmax(-1)
    check_view_average(how)
    if multi_label:
        return torch.logit(logits.sigmoid().mean(1), eps=1e-7)
    # log of the mean probability, computed stably from the log-probabilities
    return torch.logsumexp(logits.log_softmax(-1), dim=1) - torch.log(torch.tensor(float(logits.shape[1])))
