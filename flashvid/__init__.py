"""flashvid: fine-tune and run video classifiers from a folder of labelled videos.

The public names load on first use (PEP 562): ``import flashvid`` stays instant, so ``flashvid --help`` does not
wait seconds for torch and Lightning; ``from flashvid import VideoClassifier`` imports what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _compat  # noqa: F401  (an import hook: pytorchvideo finds a module current torchvision renamed)

if TYPE_CHECKING:
    from .classifier import VideoClassifier
    from .data import VideoClassificationData, make_demo_dataset
    from .finetuning import STRATEGIES
    from .models import create_backbone, list_backbones
    from .trainer import Trainer

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "STRATEGIES": ".finetuning",
    "Trainer": ".trainer",
    "VideoClassificationData": ".data",
    "VideoClassifier": ".classifier",
    "create_backbone": ".models",
    "list_backbones": ".models",
    "make_demo_dataset": ".data",
}
__all__ = ["STRATEGIES", "Trainer", "VideoClassificationData", "VideoClassifier", "create_backbone",
           "list_backbones", "make_demo_dataset", "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'flashvid' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
