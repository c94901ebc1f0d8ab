"""What the training loader alone produces (clips/s, no model; the GPU only for frame-store JPEGs it decodes, with
``--decode-device gpu``): the ceiling end to end can reach on a configuration, so a shortfall end to end is told
apart from one in decoding."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Iterable, Iterator

from flashvid import VideoClassificationData

from .matrix import fit_epoch
from .timing import production_rate, sync


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
    batches: Iterable[dict[str, Any]] = dm.train_dataloader()
    if kw.get("jpeg_decode") == "device":  # frame-store JPEGs: the clips are made on the GPU, as training makes them
        batches = decoded_on_device(batches, dm.datasets["train"].transform)
    rate = production_rate(batches, warmup, timed, lambda b: b["video"].shape[0],
                           max_s=args.max_timed_s, min_count=max(args.min_timed, workers))
    return {"clips_per_s": rate["per_s"], "batches": rate["batches"], "s": rate["s"], "workers": workers,
            "warmup_batches": warmup, "batch_videos": videos, "clips_per_video": cpv}


def decoded_on_device(batches: Iterable[dict[str, Any]], transform: Callable[..., Any] | None
                      ) -> Iterator[dict[str, Any]]:
    """Each batch's frame-store JPEGs decoded on the GPU (nvJPEG, one call a batch) and transformed there, as the
    datamodule does after the transfer; the GPU synchronised, so the rate includes the decode."""
    import torch

    from flashvid.data.device_decode import decode_on_device

    for batch in batches:
        batch = decode_on_device(batch, transform, torch.device("cuda"))
        sync()
        yield batch
