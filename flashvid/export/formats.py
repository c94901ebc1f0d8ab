"""The export formats: a small registry, so that a new ``format=`` is its own module plus one line here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ExportError(ValueError):
    """The model cannot be exported in the asked format; the message says why and what to use instead."""


@dataclass(frozen=True)
class ExportFormat:
    """One ``format=``: its exporter ``(model, out_dir, **options) -> report`` as ``"module:function"`` (imported
    when used: the ONNX exporter alone loads onnxscript), and which options the command line gives it."""

    name: str
    exporter: str
    graph_options: bool = False  # graph.num_frames/crop_size/batch_size/dynamic_batch/check/atol (a traced graph)
    model_card: bool = False  # card=: the training run's facts (metrics.json, config.yaml) for a model card

    def run(self, model: Any, out: Path, **options: Any) -> dict[str, Any]:
        module, _, function = self.exporter.partition(":")
        return getattr(importlib.import_module(module), function)(model, out, **options)


FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add a ``format=`` (its module and this one line are all a new format takes)."""
    FORMATS[fmt.name] = fmt
    return fmt


register_format(ExportFormat("safetensors", f"{__package__}.safetensors:export_safetensors"))
register_format(ExportFormat("hf", f"{__package__}.hf:export_hf", model_card=True))
register_format(ExportFormat("onnx", f"{__package__}.onnx:export_onnx", graph_options=True))
register_format(ExportFormat("torch_export", f"{__package__}.torch_export:export_program", graph_options=True))
