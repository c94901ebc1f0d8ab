"""``flashvid test``: video-level top-1 / top-5 (with over 5 classes) / mean-class accuracy of a checkpoint
(multi-view); a multi-label checkpoint's mAP, F1 (macro and micro) and subset accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import ConfigError, build, validate
from .runs import (
    align_labels,
    build_callbacks,
    existing_checkpoint,
    floats,
    load_classifier,
    model_target,
    output_dir,
    write_json,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run_test(cfg: "DictConfig") -> dict[str, Any]:
    """Video-level accuracy of a checkpoint; views per video: data.num_clips x data.num_crops."""
    ckpt = existing_checkpoint(cfg.ckpt_path)
    validate(cfg, ["data", "trainer", "callbacks"])
    model = load_classifier(ckpt, model_target(cfg))
    dm = build(cfg.data, "data")
    if "test" not in dm.samples:
        raise ConfigError("no test videos: set data.test_folder=PATH (data=folders) or data.test_file=LIST "
                          "(data=csv), or use data=demo / data=ucf101")
    align_labels(dm, model.labels)
    out = output_dir()
    from ..reports import TestReport, print_test_details

    details = TestReport(out, model.labels, decoder=dm.decoder)
    trainer = build(cfg.trainer, "trainer", callbacks=build_callbacks(cfg, True, False, only="ProgressBar") + [details],
                    logger=False)
    metrics = trainer.test(model, datamodule=dm, verbose=False)
    m = floats(metrics[0]) if metrics else {}
    report = {
        "checkpoint": ckpt, "num_videos": len(dm.samples["test"]), "num_classes": model.num_classes,
        "views_per_video": {"num_clips": int(dm.num_clips), "num_crops": int(dm.num_crops)},
        "top1": m.get("test/acc"), **({"top5": m["test/acc5"]} if "test/acc5" in m else {}),
        "mean_class_accuracy": m.get("test/mean_class_acc"),
        "loss": m.get("test/loss"), "metrics": m, "per_class_accuracy": model.per_class_accuracy.get("test", {}),
        "failed_files": model.failure_report(), "report": details.summary,
    }
    if model.multi_label:
        report.update({"multi_label": True, "threshold": model.threshold, "mAP": m.get("test/mAP"),
                       "f1_macro": m.get("test/f1"), "f1_micro": m.get("test/f1_micro"),
                       "subset_accuracy": m.get("test/subset_acc")})
    if trainer.is_global_zero:
        write_json(out / "test_metrics.json", report)
        _print_test_report(report, out)
        if details.summary:
            print_test_details(details.summary)
    return report


def _metric_rows(r: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """The metrics the model computed, named for people: accuracies, or a multi-label model's mAP and F1."""
    if r.get("multi_label"):
        return [("mAP (macro average precision)", r["mAP"]),
                (f"F1 macro (threshold {r['threshold']:g})", r["f1_macro"]), ("F1 micro", r["f1_micro"]),
                ("subset accuracy (every class right)", r["subset_accuracy"]),
                ("loss", r["loss"])]
    top5 = [("top-5 accuracy", r["top5"])] if "top5" in r else []  # computed only with more than 5 classes
    return [("top-1 accuracy", r["top1"]), *top5, ("mean class accuracy", r["mean_class_accuracy"]),
            ("loss", r["loss"])]


def _print_test_report(r: Mapping[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    v = r["views_per_video"]
    table = Table(title=f"flashvid test: {r['num_videos']} videos, {v['num_clips']} clip(s) x {v['num_crops']} "
                        f"crop(s) per video", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in _metric_rows(r):
        table.add_row(name, "n/a" if value is None else f"{value:.4f}")
    con = Console(soft_wrap=True)
    con.print(table)
    if r["failed_files"]["num_failed"]:
        con.print(f"[yellow]{r['failed_files']['num_failed']} video(s) could not be decoded and were skipped[/]")
    con.print(f"wrote {out / 'test_metrics.json'}")
