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
    if options["options"].window is not None:
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


PIPED_WIDTH = 120  # the table's width when stdout is not a terminal (and COLUMNS is not set)
TABLE_OVERHEAD = 13  # 4 columns: a border before each and after the last, one space of padding each side
MIN_VIDEO_WIDTH = 30  # on a narrow terminal the video column keeps this much, runners-up the rest
MIN_RUNNERS_WIDTH = 25  # "clockwise 0.30, left 0.10": runners-up shrinks below this only to keep MIN_VIDEO_WIDTH


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters: its start, "…", and the whole file name with its extension (the
    file name's end when even that is too long), so a shortened path still names the file."""
    if len(path) <= width:
        return path
    head, sep, name = path.rpartition(os.sep)
    tail = sep + name
    if width - len(tail) < 2:
        return "…" + path[len(path) - width + 1:]
    return path[:width - len(tail) - 1] + "…" + tail


def _print_predictions(results: Sequence[Mapping[str, Any]], path: Path | None) -> None:
    """The results table, then the file written (``path``; None when writing it failed). The table fits the
    terminal (``PIPED_WIDTH`` columns when stdout is not one): rows never fold; long paths lose their middle."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # paths shown relative to the folder all inputs share (the JSON keeps them as given)
    parents = [os.path.dirname(os.path.abspath(r["path"])) for r in results]
    common = os.path.commonpath(parents) if parents else ""
    shown = [os.path.relpath(os.path.abspath(r["path"]), common) if common else str(r["path"]) for r in results]
    others = [str(r["error"])[:80] if r.get("error") else
              ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top_k"][1:3]) for r in results]
    # rich's own COLUMNS / terminal size on a terminal; a fixed width in a pipe unless COLUMNS asks for another
    con = Console(soft_wrap=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
                  else PIPED_WIDTH)
    prediction = max([len("prediction")] + [len(str(r["label"])) for r in results if not r.get("error")])
    space = con.width - TABLE_OVERHEAD - prediction - len("score")
    video = max([len("video")] + [len(s) for s in shown])
    runners = max([len("runners-up")] + [len(o) for o in others])
    if video + runners > space:  # too wide: the paths keep most of the room, runners-up what is left
        keep = min(runners, MIN_RUNNERS_WIDTH)
        video = min(video, max(space - keep, min(video, MIN_VIDEO_WIDTH), len("video")))
        runners = max(space - video, len("runners-up"))
        video = max(min(video, space - runners), len("video"))
    header = f"flashvid predict: {len(results)} video(s) in "
    table = Table()
    table.add_column("video", no_wrap=True, max_width=video)
    table.add_column("prediction", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("runners-up", no_wrap=True, overflow="ellipsis", max_width=runners)
    for r, name, other in zip(results, shown, others):
        # Text, not markup: a file name such as clip[1].mp4 is shown as it is
        if r.get("error"):
            table.add_row(Text(shorten_path(name, video)), Text("unreadable", style="red"), "", Text(other))
        else:
            table.add_row(Text(shorten_path(name, video)), Text(str(r["label"])), f"{r['score']:.3f}", Text(other))
    con.print(Text(header + shorten_path(common, max(con.width - len(header), 1)), style="italic"))
    con.print(table)
    if path is not None:
        con.print(f"wrote {path}", soft_wrap=True)
