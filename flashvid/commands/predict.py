"""``flashvid predict``: classify files and folders with a checkpoint; a table and a JSON file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .config import ConfigError
from .runs import existing_checkpoint, load_classifier, model_target

if TYPE_CHECKING:
    from omegaconf import DictConfig

PREDICT_FAILED = 3  # predictions were written, but some files could not be decoded


def run_predict(cfg: "DictConfig") -> int:
    """Classify files and folders with a checkpoint; prints a table and writes ``output`` (JSON)."""
    ckpt = existing_checkpoint(cfg.ckpt_path)
    from omegaconf import OmegaConf

    from ..predictions import PredictionsNotSaved, parse_predict_options, predict_to_output

    raw = OmegaConf.to_container(cfg.inputs, resolve=True) if OmegaConf.is_config(cfg.inputs) else cfg.inputs
    inputs = [str(x) for x in (raw if isinstance(raw, list) else [raw])]
    if not inputs:
        raise ConfigError("inputs is empty: inputs=[clip.mp4,folder/]")
    _check_writable(Path(str(cfg.output)))  # before any decoding: results are never computed only to be lost
    not_saved: PredictionsNotSaved | None = None
    try:
        options = parse_predict_options(cfg)  # output format, window/stride, progress: checked before loading
        model = load_classifier(ckpt, model_target(cfg))
        try:
            results, path = predict_to_output(model, inputs, **options)
        except PredictionsNotSaved as e:  # a full disk: the results are shown below, then the error
            not_saved, results, path = e, e.results, e.path
    except ValueError as e:  # e.g. a folder without videos, output=preds.txt
        raise ConfigError(str(e)) from None
    _print_predictions(results, None if not_saved else path)
    if options["window"] is not None:
        from ..timeline import print_segments

        print_segments(results)
    if not_saved is not None:
        raise ConfigError(f"{not_saved}: free some space or choose another output=PATH (the results are printed "
                          "above)")
    failed = sum(r.get("error") is not None for r in results)
    if failed:
        print(f"flashvid predict: {failed} of {len(results)} files could not be decoded (their 'error' above)",
              file=sys.stderr)
        return PREDICT_FAILED
    return 0


def _check_writable(path: Path) -> None:
    """Fail now, naming the fix, when ``path`` (a file to write at the end) cannot be created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = os.access(path.parent, os.W_OK) and not path.is_dir() and (not path.exists() or os.access(path, os.W_OK))
    except OSError as e:
        raise ConfigError(f"cannot write {path} ({e.strerror}): choose another output=PATH") from None
    if not ok:
        raise ConfigError(f"cannot write {path} (not writable{', a directory' if path.is_dir() else ''}): "
                          "choose another output=PATH")


def _print_predictions(results: Sequence[Mapping[str, Any]], path: Path | None) -> None:
    """The results table, then the file written (``path``; None when writing it failed)."""
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
    if path is not None:
        con.print(f"wrote {path}")
