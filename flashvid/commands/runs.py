"""What the train, test and predict commands share: the run directory, checkpoints, callbacks, label order."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TextIO

from .config import ConfigError, build

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ..data import VideoClassificationData

log = logging.getLogger(__name__)


def align_labels(dm: "VideoClassificationData", labels: Sequence[str]) -> None:
    """Index the data's classes like the checkpoint's (a test folder may hold fewer classes, in another order)."""
    labels = list(labels)
    if dm.labels == labels:
        return
    unknown = sorted(set(dm.labels) - set(labels))
    if unknown:
        raise ConfigError(f"the data has classes the checkpoint was not trained on: {unknown}. "
                          f"The checkpoint's classes: {labels}")
    remap = {i: labels.index(name) for i, name in enumerate(dm.labels)}
    for split, samples in dm.samples.items():
        dm.samples[split] = [dataclasses.replace(s, label=tuple(remap[i] for i in s.label)) if isinstance(
            s.label, tuple) else dataclasses.replace(s, label=remap[s.label]) if s.label >= 0 else s for s in samples]
    dm.labels = labels


def output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def hydra_own_files() -> set[str]:
    """The files Hydra writes in the run directory for the current invocation: its log (``<job name>.log``)."""
    from hydra.core.hydra_config import HydraConfig

    return {f"{HydraConfig.get().job.name}.log"}


def is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in metrics.items()}


def build_trainer(cfg: "DictConfig", out: Path, has_val: bool, num_val_videos: int | None = None) -> Any:
    """The Trainer of a training run (train, pretrain): the config's loggers and callbacks (:func:`build_callbacks`),
    then flashvid's own: RUN/checkpoints/last.ckpt every ``checkpoint_every_n_steps`` (atomically), failures.json,
    Ctrl-C/SIGTERM checkpoints and exact resumes; atomic checkpoint writes except under DeepSpeed (its own)."""
    from ..callbacks import robust_callbacks
    from ..checkpoint import checkpoint_plugins

    loggers = [build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()
               if node is not None]
    callbacks = build_callbacks(cfg, has_val, bool(loggers), num_val_videos=num_val_videos)
    callbacks += robust_callbacks(out, checkpoint_every_n_steps=cfg.get("checkpoint_every_n_steps"))
    deepspeed = "deepspeed" in str(cfg.trainer.get("strategy", "")).lower()
    return build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                 **({} if deepspeed else {"plugins": checkpoint_plugins()}))


def build_callbacks(cfg: "DictConfig", has_val: bool, has_logger: bool, only: str | None = None,
               num_val_videos: int | None = None) -> list[Any]:
    from ..validation_policy import MIN_VAL_VIDEOS, callback_overrides

    out = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        target = str(node.get("_target_", ""))
        if only is not None and only not in target:
            continue
        kwargs: dict[str, Any] = {}
        if not has_val and str(node.get("monitor", "") or "").startswith("val/"):
            if "EarlyStopping" in target:
                log.warning("flashvid: no validation data, so no early stopping (set data.val_folder or val_split)")
                continue
            kwargs["monitor"] = None  # keep the latest checkpoint instead of the best
        elif has_val and num_val_videos is not None:
            over = callback_overrides(target, node, num_val_videos, cfg.trainer.get("max_epochs"),
                                      cfg.get("min_val_videos", MIN_VAL_VIDEOS))
            if over is None:
                continue
            kwargs.update(over)
        if "LearningRateMonitor" in target and not has_logger:
            continue
        out.append(build(node, f"callbacks.{name}", **kwargs))
    if out:
        from lightning.pytorch.callbacks import RichProgressBar

        if any(isinstance(cb, RichProgressBar) for cb in out):
            route_console_logs()
    return out


class _CurrentStream:
    """``sys.stdout`` / ``sys.stderr`` as they are at each write. While a rich live display (Lightning's
    RichProgressBar) runs on a terminal, rich swaps them for proxies that print each line above the bars; a log
    handler holding the original stream would write into the middle of the bars instead. ``replaced``: the stream
    it stands in for, given back when the command ends (:mod:`flashvid.commands.logging_state`)."""

    def __init__(self, name: str, replaced: TextIO):
        self.name = name
        self.replaced = replaced

    def write(self, text: str) -> int:
        return self._stream().write(text)

    def flush(self) -> None:
        self._stream().flush()

    def _stream(self) -> TextIO:
        return getattr(sys, self.name) or getattr(sys, f"__{self.name}__")


def route_console_logs() -> None:
    """Point the console log handlers (Hydra's on the root logger, Lightning's on ``lightning``) at the current
    ``sys.stdout`` / ``sys.stderr``, so that a log record printed while a rich progress bar is live goes through
    rich's console (one line above the bars) instead of splitting a bar."""
    for logger in (logging.getLogger(), logging.getLogger("lightning"), logging.getLogger("lightning.pytorch")):
        for h in logger.handlers:
            if type(h) is not logging.StreamHandler:  # a FileHandler (the run's log file) keeps its file
                continue
            for name in ("stdout", "stderr"):
                if h.stream in (getattr(sys, name), getattr(sys, f"__{name}__")):
                    h.setStream(_CurrentStream(name, h.stream))  # type: ignore[arg-type]


def existing_checkpoint(path: Any) -> str:
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise ConfigError(f"ckpt_path '{path}' does not exist (train writes RUN/checkpoints/best.ckpt and last.ckpt)")
    return str(p)


def model_target(cfg: "DictConfig") -> str | None:
    """``model._target_``: the class to rebuild a checkpoint's model as (a VideoClassifier subclass)."""
    node = cfg.get("model")
    return str(node.get("_target_")) if node is not None and node.get("_target_") else None


def load_classifier(path: str, target: str | None = None) -> Any:
    """:func:`flashvid.loading.load_classifier` on the CPU (``weights_only=True``: a checkpoint whose pickle
    carries code is refused, never run), with ``target`` (``model._target_=``) the class to rebuild it as; its
    failures as one-line :class:`ConfigError`s."""
    from ..checkpoint import CheckpointError
    from ..loading import load_classifier as load

    cls = None
    if target:
        from hydra.utils import get_object

        try:
            cls = get_object(str(target))
        except Exception as e:  # noqa: BLE001  (ImportError, AttributeError...: a bad _target_)
            raise ConfigError(f"model._target_={target}: cannot import it ({e}); put its module on "
                              "PYTHONPATH") from None
    try:
        return load(path, cls=cls)
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
