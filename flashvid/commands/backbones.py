"""``flashvid backbones``: the registry as a table or JSON, with the config that selects each entry."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from .config import ConfigError
from .model_configs import select_with

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run_backbones(cfg: "DictConfig") -> list[dict[str, Any]]:
    """The registry as a table (or JSON): frames, sampling rate, crop, mean/std, layout, weights, config name."""
    from ..models.catalog import catalog_entries  # the registry as data: no torch import for a listing

    if cfg.format not in ("table", "json"):
        raise ConfigError(f"format must be 'table' or 'json', got {cfg.format!r}")
    rows = catalog_entries(str(cfg.pattern), cfg.family)
    if not rows:
        families = sorted({e["family"] for e in catalog_entries()})
        raise ConfigError(f"no backbone matches pattern={cfg.pattern!r} family={cfg.family!r}. "
                          f"Families: {', '.join(families)}")
    for r in rows:
        r["config"] = select_with(r["name"])  # every entry is a model option (generated: model_configs.py)
    if cfg.format == "json":
        print(json.dumps(rows, indent=2))
        return rows
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"flashvid backbones ({len(rows)}): the clip each one takes", title_justify="left")
    for col in ("name", "family", "frames x rate", "crop", "mean / std", "layout", "pretrained weights", "select with"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mean = "/".join(f"{x:g}" for x in r["mean"])
        std = "/".join(f"{x:g}" for x in r["std"])
        frames = f"{r['frames']} segments" if r.get("clip_sampling") == "segments" else \
            f"{r['frames']} x {r['sampling_rate']:g}"
        if r.get("slowfast_alpha"):
            frames += f" (slow 1/{r['slowfast_alpha']})"
        weights = r["weights"] or "none"
        if "://" in weights:  # host and file name are enough on screen; format=json has the full URL
            weights = f"{weights.split('://')[1].split('/')[0]}/.../{weights.rsplit('/', 1)[1]}"
        table.add_row(r["name"], r["family"], frames, str(r["crop_size"]), f"{mean}\n{std}", r["layout"],
                      weights, r["config"])
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    print("frames x rate: frames per clip x stride between them at 30 fps; override with data.num_frames=... etc.")
    return rows
