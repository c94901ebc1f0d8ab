"""``flashvid export``: a checkpoint in another format (:mod:`flashvid.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import ConfigError
from .runs import existing_checkpoint, load_classifier, model_target, write_json

if TYPE_CHECKING:
    from omegaconf import DictConfig


def run_export(cfg: "DictConfig") -> dict[str, Any]:
    """``flashvid export ckpt_path=... format=hf|onnx|torch_export|safetensors out=DIR``."""
    from omegaconf import OmegaConf

    from ..export import FORMATS, ExportError, check_export_directory, export, run_facts

    ckpt = existing_checkpoint(cfg.ckpt_path)
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not an export format: choose one of {', '.join(FORMATS)}")
    model = load_classifier(ckpt, model_target(cfg))
    options: dict[str, Any] = {}
    if FORMATS[fmt].model_card:
        options["card"] = run_facts(ckpt)
    if FORMATS[fmt].graph_options:
        raw: Mapping[str, Any] = OmegaConf.to_container(cfg.get("graph") or {}, resolve=True)  # type: ignore[assignment]
        options.update({k: v for k, v in raw.items() if v is not None})
    try:
        check_export_directory(Path(cfg.out), bool(cfg.get("overwrite", False)))  # before loading the model
        report = export(model, cfg.out, fmt, overwrite=bool(cfg.get("overwrite", False)), **options)
    except ExportError as e:
        raise ConfigError(str(e)) from None
    report["checkpoint"] = ckpt
    write_json(Path(cfg.out) / "export_report.json", report)
    print(f"flashvid export: {fmt} -> {cfg.out}")
    for key in ("max_abs_diff", "seconds"):
        if key in report:
            print(f"  {key}: {report[key]:.3g}")
    return report
