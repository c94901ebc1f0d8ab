"""``flashvid pretrain``: self-supervised VideoMAE pretraining (:mod:`flashvid.pretraining`) on unlabelled videos,
in a run directory like ``flashvid train``'s."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, build, clip_overrides, validate
from .runs import build_trainer, floats, hydra_own_files, is_rank_zero, output_dir, write_json
from .train import resume_checkpoint

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ..data import VideoClassificationData

log = logging.getLogger(__name__)


def pretraining_data(data_cfg: "DictConfig", videos: Any = None) -> "VideoClassificationData":
    """The datamodule ``flashvid pretrain`` trains on: its training split, labels dropped.

    ``videos=...`` (files/folders) or the folder sources' ``data.train_folder`` are searched recursively, so a
    plain folder of videos works as well as class folders; list-file and UCF101 sources give their train split.
    """
    import inspect

    from omegaconf import OmegaConf

    from ..data import VideoClassificationData
    from ..source_registry import configured_source, get_source, read_source

    node = OmegaConf.to_container(data_cfg, resolve=True)
    assert isinstance(node, dict)
    if videos is None and node.get("train_folder") is not None:
        # a source that writes its videos on first use (the demo) writes them when read
        if node.get("source") and get_source(str(node["source"])).generates:
            name, arguments = configured_source(node)
            read_source(name, **arguments)
        videos = node["train_folder"]
    if videos is not None:
        takes = set(inspect.signature(VideoClassificationData.__init__).parameters) - {
            "self", "train", "val", "test", "predict", "labels"}
        kwargs = {k: v for k, v in node.items() if k in takes}
        paths = [str(v) for v in videos] if isinstance(videos, (list, tuple)) else str(videos)
        return build({"_target_": "flashvid.pretraining.unlabelled_data", "videos": paths, **kwargs}, "data")
    dm = build(data_cfg, "data")
    if "train" not in dm.samples:
        raise ConfigError("no videos to pretrain on: videos=FOLDER (any layout), data.train_folder=PATH, "
                          "or data=csv data.train_file=LIST")
    dm.samples = {"train": [dataclasses.replace(s, label=-1) for s in dm.samples["train"]]}
    dm.labels = []
    return dm


# ---------------------------------------------------------------------------------------------------- command
def run_pretrain(cfg: "DictConfig") -> dict[str, Any]:
    """``flashvid pretrain``: fit the masked autoencoder, then write ``RUN/encoder`` and ``RUN/metrics.json``."""
    from contextlib import nullcontext

    from omegaconf import OmegaConf

    from ..rundir import claim_run_dir, locked_run_dir

    validate(cfg, ["data", "model", "trainer", "callbacks", "logger"])
    out = output_dir()
    # one process per run directory, and never a new run over a finished or killed one (as flashvid train)
    with locked_run_dir(out) if is_rank_zero() else nullcontext(out):
        if is_rank_zero():
            claim_run_dir(out, resume=bool(cfg.get("resume", False)) or cfg.get("ckpt_path") == "last",
                          overwrite=bool(cfg.get("overwrite", False)), ignore=hydra_own_files())
            OmegaConf.save(cfg, out / "config.yaml", resolve=True)
        return _pretrain(cfg, out)


def _pretrain(cfg: "DictConfig", out: Path) -> dict[str, Any]:
    import lightning as L

    from ..pretraining import ENCODER_DIR

    L.seed_everything(cfg.seed, workers=True)
    dm = pretraining_data(cfg.data, cfg.get("videos"))
    model = build(cfg.model, "model", data=clip_overrides(cfg.data))
    trainer = build_trainer(cfg, out, has_val=False)
    ckpt_path = resume_checkpoint(cfg, out)
    log.info("flashvid pretrain: %s, mask ratio %g, %d videos -> %s%s", cfg.model.backbone, model.hparams.mask_ratio,
             len(dm.samples["train"]), out, f" (resuming from {ckpt_path})" if ckpt_path else "")
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "run_dir": str(out), "backbone": str(cfg.model.backbone), "videos": len(dm.samples["train"]),
        "epochs": trainer.current_epoch, "global_step": trainer.global_step, "fit_seconds": seconds,
        "effective_batch_size": model.effective_batch_size(), "final": floats(trainer.callback_metrics),
        "encoder": str(out / ENCODER_DIR), "last_checkpoint": str(out / "checkpoints" / "last.ckpt"),
        "failed_files": model.failure_report(),
    }
    if trainer.is_global_zero:
        model.save_encoder(out / ENCODER_DIR, extra={"epochs": trainer.current_epoch,
                                                     "global_step": trainer.global_step})
        write_json(out / "metrics.json", result)
        print(f"flashvid pretrain: {trainer.current_epoch} epochs, final train/loss "
              f"{result['final'].get('train/loss', float('nan')):.4f}, run directory {out}\n"
              f"  encoder: {out / ENCODER_DIR}\n"
              f"  fine-tune: flashvid train model={cfg.model.backbone} model.pretrained={out / ENCODER_DIR} "
              "data.train_folder=...")
    return result
