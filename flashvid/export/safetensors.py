"""``format=safetensors``: ``model.safetensors`` + ``flashvid_config.json``, read back by :func:`load_exported`.

safetensors holds tensors only, so loading an exported model can never run code; the JSON holds what rebuilding
needs (backbone name and kwargs, class names, clip settings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

WEIGHTS = "model.safetensors"
CONFIG = "flashvid_config.json"
FORMAT_VERSION = 1


def export_safetensors(model: Any, out: Path, **options: Any) -> dict[str, Any]:
    """``format=safetensors``: :func:`export_model`, which takes no options."""
    if options:
        from .formats import ExportError

        raise ExportError(f"format=safetensors takes no options, got {sorted(options)}")
    export_model(model, out)
    return {"format": "safetensors", "directory": str(out), "files": [WEIGHTS, CONFIG]}


def export_model(model: Any, directory: str | os.PathLike) -> Path:
    """Write ``model`` (a :class:`~flashvid.VideoClassifier`) to ``directory``; returns the directory."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = out / f".{WEIGHTS}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "flashvid_config": CONFIG})
    os.replace(tmp, out / WEIGHTS)
    write_config(model, out)
    return out


def model_config(model: Any) -> dict[str, Any]:
    """What rebuilding or feeding ``model`` needs: backbone, class names, clip settings, multi-label or not."""
    from .. import __version__
    from ..checkpoint import class_path, to_safe

    h = model.hparams
    return {
        "format_version": FORMAT_VERSION,
        "flashvid_version": __version__,
        "backbone": h.backbone,
        "backbone_kwargs": to_safe(dict(h.get("backbone_kwargs") or {})),
        "architecture": to_safe(model.backbone.architecture()),
        "class": class_path(type(model)),
        "labels": list(model.labels),
        "num_classes": model.num_classes,
        "multi_label": bool(getattr(model, "multi_label", False)),
        "threshold": float(getattr(model, "threshold", 0.5)),
        "data": model.data_config.to_dict(),
    }


def write_config(model: Any, out: Path, **extra: Any) -> Path:
    """``flashvid_config.json`` beside the weights (every format writes one: labels and input settings)."""
    path = out / CONFIG
    path.write_text(json.dumps({**model_config(model), **extra}, indent=2, ensure_ascii=False) + "\n")
    return path


def load_exported(directory: str | os.PathLike, map_location: str | torch.device = "cpu",
                  cls: type | None = None) -> Any:
    """Rebuild the exported :class:`~flashvid.VideoClassifier` from ``directory`` (tensors only: no pickle):
    a ``format=safetensors`` export, or a ``format=hf`` one (its weights are the transformers model's).

    ``cls``: the class it was exported from when that is a subclass (``flashvid_config.json`` records which).
    """
    from safetensors.torch import load_file

    from ..checkpoint import check_class
    from ..classifier import VideoClassifier

    d = Path(directory)
    kind = json.loads((d / CONFIG).read_text()).get("exported_as") if (d / CONFIG).is_file() else None
    if kind in ("onnx", "torch_export"):
        how = "model.onnx with onnxruntime" if kind == "onnx" else "model.pt2 with torch.export.load"
        raise FileNotFoundError(f"{str(d)!r} is a format={kind} export, a graph for other runtimes: load {how}; "
                                "load_exported reads format=safetensors and format=hf exports")
    if not (d / CONFIG).is_file() or not (d / WEIGHTS).is_file():
        raise FileNotFoundError(f"{str(d)!r} is not a flashvid export: expected {WEIGHTS} and {CONFIG} in it "
                                "(written by flashvid.export.export_model)")
    config = json.loads((d / CONFIG).read_text())
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{d} was exported by a newer flashvid ({config.get('flashvid_version')}): upgrade flashvid")
    cls = VideoClassifier if cls is None else cls
    check_class(config.get("class"), cls, f"the export {str(d)!r}")
    common = dict(backbone=config["backbone"], labels=config["labels"], data=config["data"],
                  multi_label=bool(config.get("multi_label", False)), threshold=float(config.get("threshold", 0.5)))
    if kind == "hf":
        # transformers' own files (its weight names and config.json): its from_pretrained reads them, classifier
        # included, through the backbone's pretrained= path
        try:
            return cls(**common, pretrained=str(d)).to(map_location).eval()
        except (OSError, ValueError) as e:
            raise ValueError(f"{str(d)!r} is a transformers export (format=hf) that does not load as "
                             f"{config['backbone']!r} ({str(e).splitlines()[0][:200]}): load it with "
                             f"transformers.pipeline('video-classification', model=DIR) or "
                             "AutoModelForVideoClassification.from_pretrained(DIR)") from e
    model = cls(**common, pretrained=False, backbone_kwargs=config.get("backbone_kwargs") or None,
                architecture=config.get("architecture"))
    state = load_file(str(d / WEIGHTS), device=str(map_location))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{d / WEIGHTS} does not fit backbone {config['backbone']!r}: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return model.eval()
