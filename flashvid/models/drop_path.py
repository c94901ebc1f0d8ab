"""Drop path (stochastic depth) for the backbones that have it, as one setting: ``model.drop_path_rate``.

Each library names it differently. transformers' VideoMAE lacks it (its config has no ``drop_path_rate``,
though the VideoMAE fine-tuning recipe uses 0.1), and TimeSformer's config types it as an int, so 0.1 is
refused: for these, torchvision's ``StochasticDepth(p, "row")`` (drop path per sample) is put on both residual
branches of every layer after the model is built, at rates rising linearly from 0 to ``drop_path_rate`` over the
depth, as in the VideoMAE code (``dpr = linspace(0, drop_path_rate, depth)``). It is the identity in eval mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from .registry import BackboneSpec

# (family, name prefix) -> the builder argument that sets the rate. torchvision's builders fix it themselves
# (swin3d_t passes stochastic_depth_prob=0.1 and refuses another), so there the built model's StochasticDepth
# modules are set instead: set_stochastic_depth.
_ARGUMENTS: dict[tuple[str, str], str | None] = {
    ("transformers", ""): "drop_path_rate",        # taken by transformers_models._build_hf: insert_drop_path
    ("pytorchvideo", "mvit_"): "droppath_rate_block",
    ("torchvision", "mvit_"): None,
    ("torchvision", "swin3d_"): None,
}


def has_drop_path(spec: BackboneSpec) -> bool:
    return any(spec.family == f and spec.name.startswith(p) and not spec.name.startswith(("vivit", "videoprism"))
               for f, p in _ARGUMENTS)


def drop_path_kwargs(spec: BackboneSpec, rate: float) -> dict[str, Any]:
    """Builder kwargs for ``rate``; an error naming the backbones that have drop path when ``spec``'s has not."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {rate}")
    if not rate:
        return {}
    if not has_drop_path(spec):
        raise ValueError(f"backbone {spec.name!r} has no drop path (stochastic depth); remove model.drop_path_rate. "
                         "It exists for VideoMAE, TimeSformer, MViT (PyTorchVideo and torchvision) and "
                         "Swin3D")
    arg = next(a for (f, p), a in _ARGUMENTS.items() if spec.family == f and spec.name.startswith(p))
    return {arg: float(rate)} if arg else {}


def set_stochastic_depth(model: nn.Module, rate: float) -> int:
    """torchvision: set the built model's ``StochasticDepth`` modules to rates rising linearly to ``rate`` (the
    rule its builders use); returns how many there are."""
    from torchvision.ops import StochasticDepth

    layers = [m for m in model.modules() if isinstance(m, StochasticDepth)]
    for i, m in enumerate(layers):
        m.p = rate * i / max(len(layers) - 1, 1)
    return len(layers)


def insert_drop_path(layers: Any, rate: float) -> int:
    """Add drop path to both residual branches of each transformer layer: TimeSformer's own ``layer.drop_path``
    is replaced; VideoMAE gets it after the branches' dropout (``layer.attention.output.dropout`` and
    ``layer.output.dropout``). Returns the number of layers."""
    from torchvision.ops import StochasticDepth

    layers = list(layers)
    n = len(layers)
    for i, layer in enumerate(layers):
        p = rate * i / max(n - 1, 1)
        if hasattr(layer, "drop_path"):
            layer.drop_path = StochasticDepth(p, "row") if p > 0 else nn.Identity()
            continue
        branches = (getattr(layer.attention, "output", None), getattr(layer, "output", None))
        for branch in branches:
            if not isinstance(getattr(branch, "dropout", None), nn.Dropout):
                raise ValueError(f"cannot add drop path to {type(layer).__name__}: no residual-branch dropout")
            if p > 0:
                branch.dropout = nn.Sequential(branch.dropout, StochasticDepth(p, "row"))
    return n
