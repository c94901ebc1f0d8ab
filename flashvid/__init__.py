"""flashvid: fine-tune and run video classifiers from a folder of labelled videos."""

from . import _compat  # noqa: F401  (must run before anything imports pytorchvideo)
from .classifier import VideoClassifier
from .data import VideoClassificationData, make_demo_dataset
from .finetuning import STRATEGIES
from .models import create_backbone, list_backbones
from .trainer import Trainer

__version__ = "0.1.0"
__all__ = ["STRATEGIES", "Trainer", "VideoClassificationData", "VideoClassifier", "create_backbone",
           "list_backbones", "make_demo_dataset", "__version__"]
