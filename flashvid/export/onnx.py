"""``format=onnx``: ``model.onnx`` from the dynamo exporter, checked against PyTorch through onnxruntime.

``torch.onnx.export(..., dynamo=True)`` traces the backbone with ``torch.export`` and translates the graph with
onnxscript; then onnxruntime runs it on a fresh batch (of another size when the batch is dynamic) and the largest
absolute logit difference from PyTorch is reported and must stay below ``atol``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .graph import GraphModule, Timer, dynamic_shapes, example_input, parity, why
from .safetensors import write_config

FILE = "model.onnx"


def export_onnx(model: Any, out: Path, num_frames: int | None = None, crop_size: int | None = None,
                batch_size: int = 2, dynamic_batch: bool = True, check: bool = True, atol: float = 1e-3,
                opset: int | None = None) -> dict[str, Any]:
    """Write ``out/model.onnx`` (input ``video``, output ``logits``) and ``flashvid_config.json``."""
    from .formats import ExportError

    try:
        import onnx  # noqa: F401  (the exporter imports them lazily, failing mid-export otherwise)
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"format=onnx needs onnx, onnxscript and onnxruntime ({e}): "
                          "pip install 'flashvid[export]'") from None
    module = GraphModule(model.backbone).eval()
    # a dynamic dimension cannot be traced at size 1 (torch.export specialises it): trace with 2 or more
    x = example_input(model, max(batch_size, 2) if dynamic_batch else batch_size, num_frames, crop_size)
    path = out / FILE
    kwargs: dict[str, Any] = {"opset_version": opset} if opset else {}
    # one self-contained file, unless the weights pass protobuf's 2 GB limit (then model.onnx.data beside it)
    kwargs["external_data"] = sum(p.numel() * p.element_size() for p in module.parameters()) > 1.8e9
    with Timer() as t:
        try:
            torch.onnx.export(module, (x,), str(path), dynamo=True, input_names=["video"], output_names=["logits"],
                              dynamic_shapes=dynamic_shapes(dynamic_batch), optimize=True, verbose=False,
                              **kwargs)
        except Exception as e:  # noqa: BLE001  (the exporter raises many types; all mean "cannot export")
            raise ExportError(f"{model.hparams.backbone!r} cannot be exported to ONNX ({why(e)}). Try "
                              "format=torch_export or safetensors, or FLASHVID_DEBUG=1 for the exporter's "
                              "trace") from e
    report: dict[str, Any] = {"format": "onnx", "directory": str(out), "file": FILE, "seconds": t.seconds,
                              "input": {"name": "video", "shape": ["batch" if dynamic_batch else x.shape[0],
                                                                   *x.shape[1:]], "dtype": "float32"},
                              "output": {"name": "logits", "shape": ["batch", model.num_classes]}}
    if check:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        probe = example_input(model, x.shape[0] + 1 if dynamic_batch else x.shape[0], num_frames, crop_size) * 0.5
        diff = parity(module, lambda a: session.run(["logits"], {"video": a})[0], probe)
        report.update(max_abs_diff=diff, atol=atol)
        print(f"flashvid export: onnxruntime vs PyTorch max abs logit difference {diff:.3g} (atol {atol:g})")
        if not diff < atol:
            raise ExportError(f"{path}: onnxruntime's logits differ from PyTorch's by up to {diff:.3g} (> atol "
                              f"{atol:g}); the graph is not faithful for {model.hparams.backbone!r}")
    write_config(model, out, exported_as="onnx", graph=report["input"])
    return report
