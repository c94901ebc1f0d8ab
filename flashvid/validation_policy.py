"""Early stopping and best-checkpoint choice that suit the size of the validation set.

On a handful of validation videos, top-1 accuracy moves in steps of 20% (5 videos) and ties for long stretches:
early stopping ended a 60-epoch run at epoch 16, and "best by val/acc" kept the first epoch that reached a lucky
step. So, under ``min_val_videos`` validation videos:

- early stopping is off (said in the log);
- the best checkpoint is chosen by the lowest ``val/loss``, which moves with every video's confidence instead of
  in 1/n steps (with ``model.ema_decay`` set, of the EMA weights, which are what is validated).

With more videos, early stopping's patience is at least a quarter of ``max_epochs``, so a long schedule is not
cut short by a few flat epochs (a fixed 10 fits a 12-epoch run, not a 200-epoch one).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

log = logging.getLogger(__name__)

MIN_VAL_VIDEOS = 30


def callback_overrides(target: str, node: Mapping[str, Any], num_val_videos: int, max_epochs: int | None,
                       min_val_videos: int = MIN_VAL_VIDEOS) -> dict[str, Any] | None:
    """Keyword overrides for the callback ``target`` built from ``node``; ``None`` leaves the callback out."""
    monitor = str(node.get("monitor", "") or "")
    small = num_val_videos < min_val_videos
    if "EarlyStopping" in target and monitor.startswith("val/"):
        if small:
            log.warning("flashvid: early stopping off: %d validation videos is fewer than min_val_videos=%d, too few "
                        "for %s to say when to stop (add validation videos, or lower min_val_videos)",
                        num_val_videos, min_val_videos, monitor)
            return None
        patience = int(node.get("patience", 3))
        if max_epochs and max_epochs > 0 and patience < math.ceil(max_epochs / 4):
            scaled = math.ceil(max_epochs / 4)
            log.info("flashvid: early stopping patience %d -> %d (a quarter of max_epochs=%d)", patience, scaled,
                     max_epochs)
            return {"patience": scaled}
        return {}
    if "ModelCheckpoint" in target and monitor == "val/acc" and small:
        log.warning("flashvid: best checkpoint by lowest val/loss, not val/acc: %d validation videos is fewer than "
                    "min_val_videos=%d, and accuracy on so few moves in steps of %.0f%%", num_val_videos,
                    min_val_videos, 100 / max(num_val_videos, 1))
        return {"monitor": "val/loss", "mode": "min"}
    return {}
