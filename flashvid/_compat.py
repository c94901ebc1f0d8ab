"""Compatibility shims applied once, at ``import flashvid``.

pytorchvideo 0.1.5 (its last release) imports ``torchvision.transforms.functional_tensor``, a module torchvision
renamed to ``_functional_tensor`` in 0.17. Aliasing it here, before anything imports pytorchvideo, keeps
pytorchvideo's models and transforms importable on current torchvision.
"""

from __future__ import annotations

import sys


def alias_torchvision_functional_tensor() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision: nothing to do)
    except ImportError:
        import torchvision.transforms._functional_tensor as functional_tensor

        sys.modules[name] = functional_tensor


alias_torchvision_functional_tensor()
