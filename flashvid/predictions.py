"""Writing predictions where the user asked, in the format the extension names, as they come.

``output=`` picks the format by extension, checked before anything is decoded:

- ``.json``: one list, in input order, written at the end;
- ``.jsonl``: one object per line, appended and flushed as each file finishes (for large runs: a crash keeps what
  was done, and ``tail -f`` shows progress);
- ``.csv``: one row per file (``path,label,score,top_k,error``; a multi-label model's adds ``labels``, the classes
  at or above the threshold, before ``error``), or with timelines one row per window
  (``path,start,end,label,score,top_k,error``) plus ``<name>.segments.csv`` with the merged segments.

``top_k`` in CSV cells is ``label:score`` pairs joined by ``|``; :func:`load_predictions` reads any of the three
back into the dicts :meth:`VideoClassifier.predict` returns (minus what a format does not carry).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

    from .inference import PredictOptions  # typing.Self is 3.11+; flashvid supports 3.10

FORMATS: tuple[str, ...] = (".json", ".jsonl", ".csv")
VIDEO_COLUMNS = ("path", "label", "score", "top_k", "error")
MULTI_LABEL_COLUMNS = ("path", "label", "score", "top_k", "labels", "error")
WINDOW_COLUMNS = ("path", "start", "end", "label", "score", "top_k", "error")
SEGMENT_COLUMNS = ("path", "start", "end", "label", "score", "windows")


def output_format(path: str | os.PathLike) -> str:
    """The format ``path``'s extension names; a ``ValueError`` naming the choices for any other."""
    suffix = Path(str(path)).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"output={path}: unknown extension {suffix or '(none)'!r}; name the file .json, .jsonl "
                         "(one JSON object per line, written as results come) or .csv")
    return suffix


def segments_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}.segments.csv")


def _top_k_cell(top_k: Sequence[Mapping[str, Any]]) -> str:
    return "|".join(f"{t['label']}:{t['score']:.6g}" for t in top_k)


def _parse_top_k(cell: str) -> list[dict[str, Any]]:
    out = []
    for part in filter(None, cell.split("|")):
        label, _, score = part.rpartition(":")
        out.append({"label": label, "score": float(score)})
    return out


class PredictionWriter:
    """Writes results to ``path`` in its extension's format; ``write`` as each file finishes, ``close`` at the end
    (also as a context manager). JSON keeps input order given ``index``; JSONL and CSV keep arrival order."""

    def __init__(self, path: str | os.PathLike, timeline: bool | None = None):
        """``timeline``: whether the results are timelines (CSV: one row per window); None: the first result
        that is not an error decides."""
        self.format = output_format(path)
        self._timeline = timeline
        self._multi_label: bool | None = None  # CSV: a labels column; the first result that is not an error decides
        self._early_errors: list[Mapping[str, Any]] = []
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._held: list[tuple[int, Mapping[str, Any]]] = []
        self._file = None
        self._rows: Any = None
        self._segments: Any = None
        self._segments_file = None
        if self.format == ".jsonl":
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115  (open across writes, closed in close())

    def write(self, result: Mapping[str, Any], index: int | None = None) -> None:
        if self.format == ".json":
            self._held.append((len(self._held) if index is None else index, result))
        elif self.format == ".jsonl":
            assert self._file is not None
            self._file.write(json.dumps(result) + "\n")
            self._file.flush()
        else:
            self._write_csv(result)

    def _write_csv(self, r: Mapping[str, Any]) -> None:
        if self._timeline is None or self._multi_label is None:
            if r.get("error"):  # an error row looks the same either way: wait for a result that tells
                self._early_errors.append(r)
                return
            self._timeline = "windows" in r if self._timeline is None else self._timeline
            self._multi_label = not self._timeline and "labels" in r
        if self._rows is None:
            self._open_csv()
        if not self._timeline and not r.get("error"):
            labels = [_top_k_cell(r["labels"])] if self._multi_label else []
            self._rows.writerow([r["path"], r["label"], f"{r['score']:.6g}", _top_k_cell(r["top_k"]), *labels, ""])
        elif not self._timeline:
            self._rows.writerow([r["path"], "", "", "", *([""] if self._multi_label else []), r["error"]])
        elif r.get("error"):
            self._rows.writerow([r["path"], "", "", "", "", "", r["error"]])
        else:
            for w in r["windows"]:
                self._rows.writerow([r["path"], w["start"], w["end"], w["label"], f"{w['score']:.6g}",
                                     _top_k_cell(w["top_k"]), ""])
            if self._segments is None:
                self._segments_file = open(  # noqa: SIM115  (as above)
                    segments_path(self.path), "w", newline="", encoding="utf-8")
                self._segments = csv.writer(self._segments_file)
                self._segments.writerow(SEGMENT_COLUMNS)
            for s in r["segments"]:
                self._segments.writerow([r["path"], s["start"], s["end"], s["label"], f"{s['score']:.6g}",
                                         s["windows"]])
            self._segments_file.flush()
        self._file.flush()

    def _open_csv(self) -> None:
        """The header, then the errors that arrived before the kind of results was known."""
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115  (as above)
        self._rows = csv.writer(self._file)
        self._rows.writerow(WINDOW_COLUMNS if self._timeline else
                            MULTI_LABEL_COLUMNS if self._multi_label else VIDEO_COLUMNS)
        held, self._early_errors = self._early_errors, []
        for e in held:
            self._write_csv(e)

    def close(self) -> Path:
        if self.format == ".json":
            ordered = [r for _, r in sorted(self._held, key=lambda x: x[0])]
            self.path.write_text(json.dumps(ordered, indent=2))
        elif self.format == ".csv" and self._rows is None:  # only errors, or nothing: still a valid file
            self._timeline, self._multi_label = bool(self._timeline), bool(self._multi_label)
            self._open_csv()
        for f in (self._file, self._segments_file):
            if f is not None:
                f.close()
        self._file = self._segments_file = None
        return self.path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_predictions(results: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """All ``results`` to ``path``, in the format its extension names."""
    with PredictionWriter(path, timeline=any("windows" in r for r in results)) as w:
        for i, r in enumerate(results):
            w.write(r, i)
    return w.path


def load_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a predictions file of any of the three formats back (CSV timelines: one dict per video, with
    ``windows``, and ``segments`` when the ``.segments.csv`` beside it exists)."""
    fmt = output_format(path)
    text = Path(path).read_text(encoding="utf-8")
    if fmt == ".json":
        return json.loads(text)
    if fmt == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "start" not in rows[0]:
        return [{"path": r["path"], "label": r["label"] or None, "score": float(r["score"]) if r["score"] else None,
                 "top_k": _parse_top_k(r["top_k"]),
                 **({"labels": _parse_top_k(r["labels"])} if "labels" in r and not r["error"] else {}),
                 **({"error": r["error"]} if r["error"] else {})} for r in rows]
    videos: dict[str, dict[str, Any]] = {}
    for r in rows:
        v = videos.setdefault(r["path"], {"path": r["path"], "windows": []})
        if r["error"]:
            v["error"] = r["error"]
            continue
        v["windows"].append({"start": float(r["start"]), "end": float(r["end"]), "label": r["label"],
                             "score": float(r["score"]), "top_k": _parse_top_k(r["top_k"])})
    seg = segments_path(path)
    if seg.is_file():
        with open(seg, newline="", encoding="utf-8") as f:
            for s in csv.DictReader(f):
                videos[s["path"]].setdefault("segments", []).append(
                    {"start": float(s["start"]), "end": float(s["end"]), "label": s["label"],
                     "score": float(s["score"]), "windows": int(s["windows"])})
    return list(videos.values())


def parse_progress(value: Any) -> bool | None:
    """``progress=auto|true|false`` from the command line: ``auto`` (or null) means only on a terminal."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return None
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"progress={value!r}: use auto (a bar on a terminal only), true or false")


class PredictionsNotSaved(OSError):
    """Writing the predictions failed (a full disk...): every prediction was still made and is in ``results``
    (input order), for the caller to show or keep."""

    def __init__(self, path: Path, error: OSError, results: list[dict[str, Any]]):
        super().__init__(error.errno, f"cannot write {path}: {error.strerror or error}")
        self.path, self.results = path, results

    def __str__(self) -> str:
        return str(self.strerror)


def predict_to_output(model: Any, inputs: Any, output: str | os.PathLike, options: PredictOptions,
                      timeline_png: bool = False) -> tuple[list[dict[str, Any]], Path]:
    """``model``'s predictions on ``inputs`` (:class:`~flashvid.inference.Predictor` with ``options``) written to
    ``output`` as results come (format by extension, checked first), with timeline pictures in
    ``<output stem>_timelines/`` when asked; returns the results in input order and the path written.

    A write that fails (``OSError``: a full disk) stops the writing, not the predicting: every file is still
    classified, then :class:`PredictionsNotSaved` carries the results and the first error."""
    from .inference import Predictor  # torch: only once something is predicted

    # an unknown extension fails here, before any decoding
    writer = PredictionWriter(output, timeline=options.window is not None)
    pictures = Path(output).parent / f"{Path(output).stem}_timelines" if timeline_png else None
    if timeline_png and options.window is None:
        writer.close()
        raise ValueError("timeline_png=true draws timelines: give window=SECONDS (and stride=SECONDS)")
    done: list[tuple[int, dict[str, Any]]] = []
    failure: OSError | None = None
    try:
        for i, r in Predictor(model, options).iter_predict(inputs):
            done.append((i, r))
            if failure is not None:
                continue
            try:
                if pictures is not None and not r.get("error"):
                    from .timeline import timeline_png as draw
                    from .timeline import timeline_png_path

                    r["timeline_png"] = str(draw(r, timeline_png_path(pictures, r["path"], i)))
                writer.write(r, i)
            except OSError as e:
                failure = e
    finally:
        try:
            writer.close()
        except OSError as e:  # the JSON written at the end, or a buffer flushed on closing
            failure = failure or e
    results = [r for _, r in sorted(done, key=lambda x: x[0])]
    if failure is not None:
        raise PredictionsNotSaved(writer.path, failure, results)
    return results, writer.path


def parse_predict_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``flashvid predict``'s config as :func:`predict_to_output` arguments (``output``, ``timeline_png``,
    ``options``), checked before anything is loaded."""
    output_format(cfg["output"])
    window = cfg.get("window")
    stride = cfg.get("stride")
    if window is None and (stride is not None or cfg.get("timeline_png")):
        raise ValueError("stride= and timeline_png= need window=SECONDS (the length of each classified window)")
    from .inference import PredictOptions

    options = PredictOptions(
        top_k=int(cfg["top_k"]), batch_size=int(cfg["batch_size"]), num_workers=int(cfg["num_workers"]),
        num_clips=int(cfg["num_clips"]), num_crops=int(cfg["num_crops"]), decoder=str(cfg["decoder"]),
        device=cfg.get("device"), window=None if window is None else float(window),
        stride=None if stride is None else float(stride), threshold=float(cfg.get("threshold", 0.5)),
        clips_per_window=int(cfg.get("clips_per_window", 1)), progress=parse_progress(cfg.get("progress", "auto")),
        view_average=str(cfg.get("view_average", "prob")))
    return {"output": str(cfg["output"]), "timeline_png": bool(cfg.get("timeline_png", False)), "options": options}
