"""``flashvid predict``: classify files and folders with a checkpoint; a table and a JSON file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .config import ConfigError
from .runs import existing_checkpoint, load_classifier

if TYPE_CHECKING:
    from omegaconf import DictConfig

PREDICT_FAILED = 3  # predictions were written, but some files could not be decoded


def run_predict(cfg: "DictConfig") -> int:
    """Classify files and folders with a checkpoint; prints a table and writes ``output`` (JSON)."""
    ckpt = existing_checkpoint(cfg.ckpt_path)
    from omegaconf import OmegaConf

    from ..classifier import save_predictions

    raw = OmegaConf.to_container(cfg.inputs, resolve=True) if OmegaConf.is_config(cfg.inputs) else cfg.inputs
    inputs = [str(x) for x in (raw if isinstance(raw, list) else [raw])]
    if not inputs:
        raise ConfigError("inputs is empty: inputs=[clip.mp4,folder/]")
    model = load_classifier(ckpt)
    try:
        results = model.predict(inputs, top_k=cfg.top_k, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                num_clips=cfg.num_clips, num_crops=cfg.num_crops, decoder=cfg.decoder,
                                device=cfg.device)
    except ValueError as e:  # e.g. a folder without videos
        raise ConfigError(str(e)) from None
    path = save_predictions(results, cfg.output)
    _print_predictions(results, path)
    failed = sum(r.get("error") is not None for r in results)
    if failed:
        print(f"flashvid predict: {failed} of {len(results)} files could not be decoded (their 'error' above)",
              file=sys.stderr)
        return PREDICT_FAILED
    return 0


def _print_predictions(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    # paths shown relative to the folder all inputs share (the JSON keeps them as given)
    parents = [os.path.dirname(os.path.abspath(r["path"])) for r in results]
    common = os.path.commonpath(parents) if parents else ""
    table = Table(title=f"flashvid predict: {len(results)} video(s) in {common}", title_justify="left")
    for col, kw in (("video", {"overflow": "fold"}), ("prediction", {}), ("score", {"justify": "right"}),
                    ("runners-up", {})):
        table.add_column(col, **kw)
    for r in results:
        shown = os.path.relpath(os.path.abspath(r["path"]), common) if common else r["path"]
        if r.get("error"):
            table.add_row(shown, "[red]unreadable[/]", "", str(r["error"])[:80])
            continue
        others = ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top_k"][1:3])
        table.add_row(shown, str(r["label"]), f"{r['score']:.3f}", others)
    longest = max((len(os.path.relpath(os.path.abspath(r["path"]), common)) for r in results), default=0)
    con = Console(soft_wrap=False, width=None if sys.stdout.isatty() else max(120, longest + 75))
    con.print(table)
    con.print(f"wrote {path}")
