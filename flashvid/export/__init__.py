"""Export a trained :class:`~flashvid.VideoClassifier` for other tools: ``flashvid export format=...``.

One module per format:

- ``safetensors`` (:mod:`.safetensors`): flashvid's own, tensors + JSON, read back by :func:`load_exported`.
- ``hf`` (:mod:`.hf`): a transformers directory (config with id2label, weights, image/video processor configs,
  model card) that ``transformers.pipeline("video-classification", model=DIR)`` loads without flashvid.
- ``onnx`` (:mod:`.onnx`): ``torch.onnx.export(dynamo=True)``, checked against PyTorch through onnxruntime.
- ``torch_export`` (:mod:`.torch_export`): a ``torch.export`` program (``model.pt2``), checked the same way.

Every format writes ``flashvid_config.json`` too: class names and the input the model takes (frames, size,
mean/std), which a serving stack needs to feed the graph.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .formats import FORMATS, ExportError, ExportFormat, register_format
from .safetensors import CONFIG, FORMAT_VERSION, WEIGHTS, export_model, load_exported, model_config, write_config

__all__ = ["CONFIG", "FORMAT_VERSION", "FORMATS", "WEIGHTS", "ExportError", "ExportFormat", "export", "export_model",
           "load_exported", "model_config", "register_format", "run_facts", "write_config"]

log = logging.getLogger(__name__)




def export(model: Any, directory: str | os.PathLike, format: str = "safetensors", overwrite: bool = False,
           **options: Any) -> dict[str, Any]:
    """Write ``model`` to ``directory`` in ``format``; returns what was written (paths, parity checks, seconds).

    ``directory`` must be new or empty: the files of two exports side by side would load as one model (one's
    weights, the other's class names). ``overwrite=True`` replaces a non-empty one as a whole. Either way the
    files are written into a hidden sibling folder first and moved into place when complete, so a failed export
    leaves no partial directory (and the previous one intact).

    ``options`` go to the format's exporter: ``card`` (a mapping of run facts for the model card, ``hf``);
    ``num_frames``/``crop_size``/``batch_size``/``dynamic_batch``/``check``/``atol`` (``onnx``, ``torch_export``).
    """
    out = Path(directory)
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    check_export_directory(out, overwrite)
    staging = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        report = FORMATS[format].run(model.eval(), staging, **options)
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report["directory"] = str(out)
    return report


def check_export_directory(out: Path, overwrite: bool = False) -> None:
    """Refuse, saying what to do, an ``out=`` that is a file, or a non-empty folder unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"out={out} is a file, not a folder: choose a new folder for the export")
    if out.is_dir() and not overwrite:
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            raise ExportError(
                f"out={out} is not empty ({', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}): "
                "another export's files beside this one's would load as one model. Choose a new folder, or "
                "overwrite=true to replace it as a whole")


def _swap_in(staging: Path, out: Path) -> None:
    """Move the complete export ``staging`` to ``out``, replacing what was there as a whole."""
    old = out.parent / f".{out.name}.{os.getpid()}.old"
    if out.is_dir():
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        if old.is_dir():
            os.replace(old, out)  # the previous export stays
        raise
    shutil.rmtree(old, ignore_errors=True)


def run_facts(ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """What the training run of ``RUN/checkpoints/X.ckpt`` recorded (``metrics.json``, ``config.yaml``), for the
    model card: data sources, epochs, best validation score and test metrics. Empty when the run left none."""
    run = Path(ckpt_path).resolve().parent.parent
    facts: dict[str, Any] = {}
    metrics = run / "metrics.json"
    if metrics.is_file():
        try:
            m = json.loads(metrics.read_text())
        except ValueError:
            m = {}
        facts.update({k: m[k] for k in ("epochs", "global_step", "best_val_acc", "test") if m.get(k) is not None})
    config = run / "config.yaml"
    if config.is_file():
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(config)).get("data") or {}  # type: ignore[union-attr]
        sources = {k: v for k, v in data.items() if k.endswith(("_folder", "_file")) or k in ("root",)}
        facts["data"] = {k: v for k, v in sources.items() if v is not None}
    return facts
