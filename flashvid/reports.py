"""What a test run and a training run leave behind for error analysis: per-video predictions, the confusion matrix,
per-class precision / recall / F1, the most confused pairs, a contact sheet of misclassified videos, and training
curves.

:class:`TestReport` is a Lightning callback: it collects each test video's view-averaged probabilities once (what
``VideoClassifier.test_step`` returns), and at the end of the test writes into its folder

- ``predictions.csv``: ``path,true,predicted,score,correct,top_k`` per video (``top_k``: ``label:score|...``);
- ``confusion_matrix.csv`` (rows: true class, columns: predicted; counts) and ``confusion_matrix.png``
  (each row normalised by its class's videos, with class names);
- ``per_class.json``: precision, recall, F1 and support per class, and the most confused pairs;
- ``misclassified.png``: frames of a few misclassified videos with their true and predicted labels.

A multi-label model's report (:func:`write_multilabel_test_report`) has ``predictions.csv`` with the true and
predicted label sets and every class's probability, ``confusion_matrix.csv`` with each class's TP/FP/FN/TN,
``per_class.json`` with each class's AP, precision, recall, F1 and support, and the contact sheet.

Metrics come from torchmetrics, pictures from matplotlib (Agg canvas, imported only when drawing).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)

MAX_CONFUSION_PNG_CLASSES = 60  # beyond this, cells are unreadable: the CSV has them all


class TestReport(L.Callback):
    """Collects per-video test predictions and writes the report files into ``out_dir`` when the test ends.

    ``summary`` then holds what was written (file paths, per-class table, confused pairs) for printing.
    """

    def __init__(self, out_dir: str | os.PathLike, labels: Sequence[str] | None = None, top_k: int = 5,
                 contact_sheet: int = 6, decoder: str = "auto"):
        self.out_dir = Path(out_dir)
        self.labels = list(labels) if labels is not None else None
        self.top_k, self.contact_sheet, self.decoder = top_k, contact_sheet, decoder
        self.records: dict[str, tuple[torch.Tensor, int | torch.Tensor]] = {}
        self.summary: dict[str, Any] | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.records = {}

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, Mapping) or "probs" not in outputs:
            return
        probs = outputs["probs"].float().cpu()
        labels = outputs["label"].cpu()
        for path, p, y in zip(outputs["path"], probs, labels):
            # keyed by path: a distributed sampler's padding repeats videos, and no video may count twice;
            # the label: a class index, or a multi-label model's multi-hot row
            self.records[str(path)] = (p, y if y.dim() else int(y))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        records = self.records
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, records)
            records = {k: v for part in gathered for k, v in part.items()}
        if trainer.is_global_zero:
            labels = self.labels or list(pl_module.labels)
            if getattr(pl_module, "multi_label", False):
                self.summary = write_multilabel_test_report(records, labels, self.out_dir,
                                                            float(getattr(pl_module, "threshold", 0.5)),
                                                            self.contact_sheet, self.decoder)
            else:
                self.summary = write_test_report(records, labels, self.out_dir, self.top_k, self.contact_sheet,
                                                 self.decoder)


def write_test_report(records: Mapping[str, tuple[torch.Tensor, int]], labels: Sequence[str],
                      out_dir: str | os.PathLike, top_k: int = 5, contact_sheet: int = 6,
                      decoder: str = "auto") -> dict[str, Any]:
    """Write the report files for ``{path: (probabilities, true class index)}`` and return their summary."""
    from torchmetrics.classification import (
        MulticlassConfusionMatrix,
        MulticlassF1Score,
        MulticlassPrecision,
        MulticlassRecall,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(records)
    k = len(labels)
    if not paths:
        return {"num_videos": 0, "files": {}, "per_class": [], "confused_pairs": []}
    probs = torch.stack([records[p][0] for p in paths])
    target = torch.tensor([records[p][1] for p in paths])
    pred = probs.argmax(-1)
    cm = MulticlassConfusionMatrix(k)(probs, target)
    # average=None: one value per class; classes with no test videos get support 0 (and are left out of means)
    precision = MulticlassPrecision(k, average=None)(probs, target)
    recall = MulticlassRecall(k, average=None)(probs, target)
    f1 = MulticlassF1Score(k, average=None)(probs, target)
    support = cm.sum(1)
    per_class = [{"label": labels[c], "precision": float(precision[c]), "recall": float(recall[c]),
                  "f1": float(f1[c]), "support": int(support[c]), "predicted": int(cm[:, c].sum())}
                 for c in range(k)]
    off = cm.clone()
    off.fill_diagonal_(0)
    pairs = [{"true": labels[i], "predicted": labels[j], "count": int(off[i, j]),
              "share_of_true": float(off[i, j] / support[i]) if support[i] else 0.0}
             for i, j in zip(*torch.nonzero(off, as_tuple=True))]
    pairs.sort(key=lambda d: (-d["count"], -d["share_of_true"], d["true"], d["predicted"]))
    pairs = pairs[:10]

    files: dict[str, str] = {}
    top = min(top_k, k)
    scores, ids = probs.topk(top, dim=-1)
    with open(out / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "true", "predicted", "score", "correct", "top_k"])
        for n, p in enumerate(paths):
            cell = "|".join(f"{labels[c]}:{s:.6g}" for s, c in zip(scores[n].tolist(), ids[n].tolist()))
            w.writerow([p, labels[int(target[n])], labels[int(pred[n])], f"{float(scores[n, 0]):.6g}",
                        int(pred[n] == target[n]), cell])
    files["predictions"] = str(out / "predictions.csv")
    with open(out / "confusion_matrix.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *labels])
        for i in range(k):
            w.writerow([labels[i], *cm[i].tolist()])
    files["confusion_matrix_csv"] = str(out / "confusion_matrix.csv")
    present = [c for c in range(k) if support[c] > 0]
    summary: dict[str, Any] = {
        "num_videos": len(paths), "num_classes": k,
        "top1": float((pred == target).float().mean()),
        "mean_class_accuracy": float(recall[present].mean()) if present else None,
        "per_class": per_class, "confused_pairs": pairs,
    }
    (out / "per_class.json").write_text(json.dumps(summary, indent=2))
    files["per_class"] = str(out / "per_class.json")
    try:
        if k <= MAX_CONFUSION_PNG_CLASSES:
            files["confusion_matrix_png"] = str(confusion_matrix_png(cm, labels, out / "confusion_matrix.png"))
        else:
            log.info("flashvid test: %d classes, too many for a readable confusion matrix picture; see the CSV", k)
        wrong = [n for n in range(len(paths)) if pred[n] != target[n]]
        wrong.sort(key=lambda n: -float(scores[n, 0]))  # the most confident mistakes first
        if wrong and contact_sheet > 0:
            chosen = [(paths[n], labels[int(target[n])], labels[int(pred[n])], float(scores[n, 0]))
                      for n in wrong[:contact_sheet]]
            files["misclassified_png"] = str(misclassified_sheet(chosen, out / "misclassified.png", decoder=decoder))
    except ImportError as e:  # matplotlib is a dependency; a broken install loses only the pictures
        log.warning("flashvid test: no pictures (%s); the CSV and JSON files are complete", e)
    summary["files"] = files
    return summary


def write_multilabel_test_report(records: Mapping[str, tuple[torch.Tensor, Any]], labels: Sequence[str],
                                 out_dir: str | os.PathLike, threshold: float = 0.5, contact_sheet: int = 6,
                                 decoder: str = "auto") -> dict[str, Any]:
    """The report files of a multi-label model for ``{path: (per-class probabilities, multi-hot targets)}``: a
    video's predicted set is every class at or above ``threshold`` (as ``predict`` lists them)."""
    from torchmetrics.classification import (
        MultilabelAveragePrecision,
        MultilabelConfusionMatrix,
        MultilabelF1Score,
        MultilabelPrecision,
        MultilabelRecall,
    )

    from .data.sources import LABEL_SEPARATOR

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(records)
    k = len(labels)
    if not paths:
        return {"num_videos": 0, "multi_label": True, "files": {}, "per_class": []}
    probs = torch.stack([records[p][0] for p in paths])
    target = torch.stack([torch.as_tensor(records[p][1]) for p in paths]).long()
    pred = (probs >= threshold).long()
    kw: dict[str, Any] = {"threshold": threshold, "average": None}
    cm = MultilabelConfusionMatrix(k, threshold=threshold)(probs, target)  # (k, 2, 2): [[tn, fp], [fn, tp]]
    precision = MultilabelPrecision(k, **kw)(probs, target)
    recall = MultilabelRecall(k, **kw)(probs, target)
    f1 = MultilabelF1Score(k, **kw)(probs, target)
    support = target.sum(0)
    # AP only for classes with a positive video: torchmetrics scores the others 0, with a warning
    present = [c for c in range(k) if support[c] > 0]
    ap = torch.full((k,), float("nan"))
    if present:
        ap[present] = MultilabelAveragePrecision(len(present), average=None)(probs[:, present],
                                                                              target[:, present]).float()
    per_class = [{"label": labels[c], "ap": None if c not in present else float(ap[c]),
                  "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                  "support": int(support[c]), "predicted": int(pred[:, c].sum()), "tp": int(cm[c, 1, 1]),
                  "fp": int(cm[c, 0, 1]), "fn": int(cm[c, 1, 0]), "tn": int(cm[c, 0, 0])} for c in range(k)]

    def names(row: torch.Tensor) -> str:
        return LABEL_SEPARATOR.join(labels[c] for c in row.nonzero().flatten().tolist())

    files: dict[str, str] = {}
    exact = (pred == target).all(1)
    with open(out / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "true", "predicted", "correct", *(f"prob:{name}" for name in labels)])
        for n, p in enumerate(paths):
            w.writerow([p, names(target[n]), names(pred[n]), int(exact[n]), *(f"{x:.6g}" for x in probs[n].tolist())])
    files["predictions"] = str(out / "predictions.csv")
    with open(out / "confusion_matrix.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["class", "tp", "fp", "fn", "tn"])
        for c in per_class:
            w.writerow([c["label"], c["tp"], c["fp"], c["fn"], c["tn"]])
    files["confusion_matrix_csv"] = str(out / "confusion_matrix.csv")
    summary: dict[str, Any] = {
        "num_videos": len(paths), "num_classes": k, "multi_label": True, "threshold": threshold,
        "subset_accuracy": float(exact.float().mean()),
        "mean_ap_of_present_classes": float(ap[present].mean()) if present else None,
        "per_class": per_class,
    }
    (out / "per_class.json").write_text(json.dumps(summary, indent=2))
    files["per_class"] = str(out / "per_class.json")
    wrong = [n for n in range(len(paths)) if not exact[n]]
    wrong.sort(key=lambda n: -float((probs[n] - target[n]).abs().max()))  # the most confident mistakes first
    if wrong and contact_sheet > 0:
        try:
            chosen = [(paths[n], names(target[n]) or "-", names(pred[n]) or "-", float(probs[n].max()))
                      for n in wrong[:contact_sheet]]
            files["misclassified_png"] = str(misclassified_sheet(chosen, out / "misclassified.png", decoder=decoder))
        except ImportError as e:
            log.warning("flashvid test: no pictures (%s); the CSV and JSON files are complete", e)
    summary["files"] = files
    return summary


def confusion_matrix_png(cm: torch.Tensor, labels: Sequence[str], path: str | os.PathLike) -> Path:
    """Rows normalised by the true class's videos (a class with none stays empty); counts in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(labels)
    rows = cm.sum(1, keepdim=True).clamp(min=1)
    norm = (cm / rows).numpy()
    side = max(3.5, 0.45 * k + 2.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class's videos")
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8 if k > 12 else 9)
    ax.set_yticks(range(k), labels, fontsize=8 if k > 12 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"confusion matrix: {int(cm.sum())} videos, top-1 {float(cm.trace() / cm.sum().clamp(min=1)):.3f}",
                 fontsize=10)
    path = Path(path)
    fig.savefig(path)
    return path


def misclassified_sheet(videos: Sequence[tuple[str, str, str, float]], path: str | os.PathLike, frames: int = 4,
                        decoder: str = "auto") -> Path:
    """A contact sheet: one row per ``(path, true, predicted, score)``, ``frames`` frames spread over the video."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .data.decoding import VideoDecodeError, open_video

    fig = Figure(figsize=(1.9 * frames, 1.9 * len(videos)), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    rows = fig.subfigures(len(videos), 1, squeeze=False)[:, 0]  # one row per video, its labels above it
    for sub, (video, true, predicted, score) in zip(rows, videos, strict=True):
        try:
            reader = open_video(video, decoder)
            try:
                n = reader.info.num_frames
                picks = [round((n - 1) * (i + 0.5) / frames) for i in range(frames)]
                images = reader.frames_at(picks).permute(0, 2, 3, 1).numpy()
            finally:
                reader.close()
        except VideoDecodeError:
            images = None
        sub.suptitle(f"{Path(video).name}: true {true}, predicted {predicted} ({score:.2f})", fontsize=9,
                     x=0.01, ha="left")
        for col, ax in enumerate(sub.subplots(1, frames, squeeze=False)[0]):
            ax.set_xticks([])
            ax.set_yticks([])
            if images is not None:
                ax.imshow(images[col])
    path = Path(path)
    fig.savefig(path)
    return path


def print_test_details(summary: Mapping[str, Any]) -> None:
    """The per-class table, the most confused pairs and the files written, on stdout."""
    from rich.console import Console
    from rich.table import Table

    con = Console(soft_wrap=True)
    table = Table(title="per class", title_justify="left")
    multi = bool(summary.get("multi_label"))
    for col in ("class", *(("AP",) if multi else ()), "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c in summary["per_class"]:
        if c["support"] or c["predicted"]:
            ap = ("-" if c["ap"] is None else f"{c['ap']:.3f}",) if multi else ()
            table.add_row(c["label"], *ap, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
                          str(c["support"]))
    con.print(table)
    if summary.get("confused_pairs"):
        con.print("most confused (true -> predicted): " + ", ".join(
            f"{p['true']} -> {p['predicted']} ({p['count']})" for p in summary["confused_pairs"][:5]))
    for path in summary["files"].values():
        con.print(f"wrote {path}")


# ---------------------------------------------------------------------------------------------------- training
def training_curves(trainer: L.Trainer, out_dir: str | os.PathLike) -> Path | None:
    """``out_dir/curves.png`` from the CSV logger's ``metrics.csv`` (loss, accuracy, learning rate against the
    step); None, with a log line saying why, when the run has no CSV logger or nothing was logged."""
    from lightning.pytorch.loggers import CSVLogger

    csv_loggers = [lg for lg in trainer.loggers if isinstance(lg, CSVLogger)]
    if not csv_loggers:
        log.info("flashvid train: no training curves: they are drawn from the CSV logger's metrics.csv, and this "
                 "run has none (logger=default or logger=csv keeps one)")
        return None
    logger = csv_loggers[0]
    logger.save()
    metrics = Path(logger.log_dir) / "metrics.csv"
    if not metrics.is_file():
        log.info("flashvid train: no training curves: %s was not written", metrics)
        return None
    return plot_training_curves(metrics, Path(out_dir) / "curves.png")


def plot_training_curves(metrics_csv: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Loss, accuracy and learning-rate panels from a Lightning ``metrics.csv`` (columns such as ``train/loss``,
    ``val/loss``, ``val/acc``, ``lr-AdamW``), against the training step."""
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in rows:
        step = r.get("step")
        if not step:
            continue
        for key, value in r.items():
            if key in ("step", "epoch") or value in ("", None):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(float(step))
            ys.append(float(value))
    panels = {
        "loss": sorted(k for k in series if k.endswith("loss")),
        "accuracy": sorted(k for k in series if "acc" in k),
        "learning rate": sorted(k for k in series if k.startswith("lr")),
    }
    panels = {name: keys for name, keys in panels.items() if keys}
    if not panels:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, keys) in zip(axes, panels.items()):
        for n, key in enumerate(keys):  # line styles cycle so equal series (acc = mean_class_acc) stay visible
            xs, ys = series[key]
            ax.plot(xs, ys, marker="." if len(xs) < 50 else None, ls=("-", "--", ":", "-.")[n % 4], label=key)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        if name == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
