"""What the training loader alone produces (clips/s, no model, no GPU): the ceiling end to end can reach on a
configuration, so a shortfall end to end is told apart from one in decoding."""

from __future__ import annotations

import argparse
from typing import Any

from flashvid import VideoClassificationData

from .matrix import fit_epoch
from .timing import production_rate


def measure_config(args: argparse.Namespace, backbone: str, kw: dict[str, Any]) -> dict[str, Any]:
    from flashvid.models import get_backbone_spec

    kw = dict(kw)
    cpv = int(kw.get("clips_per_video", 1))
    videos = int(kw.pop("batch_size", max(1, args.batch_size // cpv)))
    dm = VideoClassificationData.from_folders(batch_size=videos, **kw)
    workers = dm.num_workers
    warmup, timed = max(args.warmup, workers + 1), max(args.steps, args.min_timed, workers)
    dm.samples["train"] = fit_epoch(dm.samples["train"], warmup + timed + 2, videos, exact=False)
    dm.configure_from_model(get_backbone_spec(backbone).data)
    dm.setup("fit")
    rate = production_rate(dm.train_dataloader(), warmup, timed, lambda b: b["video"].shape[0],
                           max_s=args.max_timed_s, min_count=max(args.min_timed, workers))
    return {"clips_per_s": rate["per_s"], "batches": rate["batches"], "s": rate["s"], "workers": workers,
            "warmup_batches": warmup, "batch_videos": videos, "clips_per_video": cpv}
