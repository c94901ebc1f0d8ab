"""Class-balanced training epochs (``data.sampler=balanced``): every class drawn equally often, whatever its size.

The order is a pure function of (seed, epoch), so it is the same on every DDP rank (each takes its share, see
:class:`~flashvid.data.loader.ShardedEpochSampler`), after a resume, and whether or not the loader's workers are
handed the next epoch early.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Sequence


class ClassBalancedOrder:
    """Each epoch: ``epoch_length`` videos (default: as many as there are), an equal share per class.

    The share of a class goes through its videos in a fresh shuffle, round after round (a small class repeats its
    videos, each as often as the others give or take one; a large one shows a different subset every epoch), and
    the epoch's draws are then shuffled together. Written by hand rather than with torch's
    ``WeightedRandomSampler``: its independent draws with replacement balance classes only on average (40 draws
    over 4 classes: each class 10 +- 2.7 per epoch, binomial) and repeat some videos while skipping others of the
    same class; here every epoch's class counts differ by at most one.
    """

    def __init__(self, labels: Sequence[int | tuple[int, ...]], epoch_length: int | None = None):
        if any(isinstance(label, tuple) for label in labels):
            raise ValueError("data.sampler=balanced needs one class per video; this data is multi-label "
                             "(path,a;b rows): use data.sampler=shuffle")
        if not labels:
            raise ValueError("data.sampler=balanced needs training videos; the train split is empty")
        if epoch_length is not None and epoch_length < 1:
            raise ValueError(f"data.epoch_length must be >= 1 (or null: the train split's size), got {epoch_length}")
        by_class: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_class[int(label)].append(index)  # type: ignore[arg-type]  # (tuples refused above)
        self.by_class = dict(sorted(by_class.items()))
        self.num_videos = len(labels)
        self.epoch_length = epoch_length or len(labels)

    def __len__(self) -> int:
        return self.epoch_length

    def order_state(self) -> dict[str, Any]:
        """What, besides the seed and length, fixes the order (a checkpoint's position needs the same)."""
        return {"sampler": "balanced", "videos": self.num_videos}

    def order(self, seed: int, epoch: int) -> list[int]:
        """The epoch's indices: ``epoch_length`` of them, classes within one of each other, shuffled."""
        rng = random.Random(f"flashvid-balanced:{seed}:{epoch}")  # str seeds are stable across processes
        classes = list(self.by_class)
        shares = [self.epoch_length // len(classes)] * len(classes)
        for c in rng.sample(range(len(classes)), self.epoch_length % len(classes)):
            shares[c] += 1
        order: list[int] = []
        for label, share in zip(classes, shares):
            videos = self.by_class[label]
            drawn: list[int] = []
            while len(drawn) < share:
                round_ = list(videos)
                rng.shuffle(round_)
                drawn.extend(round_)
            order.extend(drawn[:share])
        rng.shuffle(order)
        return order
