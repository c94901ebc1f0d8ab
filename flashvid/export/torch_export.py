"""``format=torch_export``: a ``torch.export`` program (``model.pt2``), loadable with ``torch.export.load``
(no Python class of flashvid needed), checked against the eager model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .graph import GraphModule, Timer, dynamic_shapes, example_input, parity, why
from .safetensors import write_config

FILE = "model.pt2"


def export_program(model: Any, out: Path, num_frames: int | None = None, crop_size: int | None = None,
                   batch_size: int = 2, dynamic_batch: bool = True, check: bool = True, atol: float = 1e-4,
                   opset: int | None = None) -> dict[str, Any]:
    """Write ``out/model.pt2`` and ``flashvid_config.json``; ``opset`` is accepted for symmetry and unused."""
    from .formats import ExportError

    module = GraphModule(model.backbone).eval()
    x = example_input(model, max(batch_size, 2) if dynamic_batch else batch_size, num_frames, crop_size)
    path = out / FILE
    with Timer() as t:
        try:
            program = torch.export.export(module, (x,), dynamic_shapes=dynamic_shapes(dynamic_batch))
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"{model.hparams.backbone!r} cannot be captured by torch.export ({why(e)}). Try "
                              "format=safetensors, or FLASHVID_DEBUG=1 for the full trace") from e
        torch.export.save(program, str(path))
    report: dict[str, Any] = {"format": "torch_export", "directory": str(out), "file": FILE, "seconds": t.seconds,
                              "input": {"shape": ["batch" if dynamic_batch else x.shape[0], *x.shape[1:]],
                                        "dtype": "float32"}}
    if check:
        loaded = torch.export.load(str(path)).module()
        probe = example_input(model, x.shape[0] + 1 if dynamic_batch else x.shape[0], num_frames, crop_size) * 0.5
        diff = parity(module, lambda a: loaded(torch.from_numpy(a)).detach().numpy(), probe)
        report.update(max_abs_diff=diff, atol=atol)
        print(f"flashvid export: torch.export program vs eager max abs logit difference {diff:.3g}")
        if not diff < atol:
            raise ExportError(f"{path}: the exported program's logits differ from eager by up to {diff:.3g}")
    write_config(model, out, exported_as="torch_export", graph=report["input"])
    return report
