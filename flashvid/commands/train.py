"""``flashvid train``: fit a backbone, test the best checkpoint, write config.yaml and metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import ConfigError, build, check_backbone, clip_overrides, validate
from .runs import build_trainer, existing_checkpoint, floats, hydra_own_files, is_rank_zero, output_dir, write_json

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


def run_train(cfg: "DictConfig") -> dict[str, Any]:
    """Fit, then test the best checkpoint when there is test data; writes config.yaml and metrics.json."""
    from omegaconf import OmegaConf

    check_backbone(cfg.model.backbone)
    validate(cfg, ["data", "model", "trainer", "finetune", "callbacks", "logger"])
    out = output_dir()
    from contextlib import nullcontext

    from ..callbacks import ClassMismatchError
    from ..checkpoint import CheckpointError, remove_stale_temporaries
    from ..rundir import RunDirectoryError, claim_run_dir, locked_run_dir

    try:  # one training process per run directory (rank 0 holds the lock for all ranks)
        with locked_run_dir(out) if is_rank_zero() else nullcontext(out):
            if is_rank_zero():  # a new run never silently replaces a finished or killed one
                claim_run_dir(out, resume=continues_run(cfg), overwrite=bool(cfg.get("overwrite", False)),
                              ignore=hydra_own_files())
                remove_stale_temporaries(out / "checkpoints")
                OmegaConf.save(cfg, out / "config.yaml", resolve=True)
            return _train(cfg, out)
    except (CheckpointError, RunDirectoryError, ClassMismatchError) as e:
        raise ConfigError(str(e)) from None


def _train(cfg: "DictConfig", out: Path) -> dict[str, Any]:
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    dm = build(cfg.data, "data")
    if "train" not in dm.samples:
        raise ConfigError("no training videos: set the data source, e.g. data.train_folder=PATH (data=folders), "
                          "data.train_file=LIST (data=csv), or use data=demo")
    model = build(cfg.model, "model", labels=dm.labels, data=clip_overrides(cfg.data))
    has_val = "val" in dm.samples
    trainer = build_trainer(cfg, out, has_val, num_val_videos=len(dm.samples.get("val", [])))
    strategy = build(cfg.finetune, "finetune")
    ckpt_path = resume_checkpoint(cfg, out)
    if ckpt_path:  # before Lightning loads it: a readable checkpoint of the data's classes, else the fix in one line
        from ..callbacks import check_labels
        from ..checkpoint import checkpoint_labels, load_checkpoint, require_training_checkpoint

        require_training_checkpoint(load_checkpoint(ckpt_path, mmap=True), ckpt_path, resume=True)
        check_labels(checkpoint_labels(ckpt_path), dm.labels, f"the checkpoint {ckpt_path}", checkpoint=ckpt_path)
    log.info("flashvid train: %s on %d classes, %d train / %d val videos -> %s%s", cfg.model.backbone,
             len(dm.labels), len(dm.samples["train"]), len(dm.samples.get("val", [])), out,
             f" (resuming from {ckpt_path})" if ckpt_path else "")
    log.info("flashvid train: recipe: %s", recipe_summary(dm, model, strategy))
    trainer.finetune(model, datamodule=dm, strategy=strategy, ckpt_path=ckpt_path)
    if has_val and not any(str(k).startswith("val/") for k in trainer.callback_metrics):
        # no validation of the final weights happened (a resume of a run killed after its last checkpoint, with
        # nothing left to train; max_steps ending mid-epoch): validate them, so "final" always describes them
        trainer.validate(model, datamodule=dm, verbose=False)

    ckpt = trainer.checkpoint_callback
    best = getattr(ckpt, "best_model_path", "") or ""
    score = getattr(ckpt, "best_model_score", None)
    result: dict[str, Any] = {
        "run_dir": str(out), "backbone": str(cfg.model.backbone), "labels": list(dm.labels),
        "epochs": trainer.current_epoch, "global_step": trainer.global_step,
        "best_checkpoint": best or None,
        "last_checkpoint": str(out / "checkpoints" / "last.ckpt") if (out / "checkpoints" / "last.ckpt").is_file()
        else None,
        "best_val_acc": float(score) if score is not None and getattr(ckpt, "monitor", None) == "val/acc" else None,
        "best_by": getattr(ckpt, "monitor", None), "best_score": float(score) if score is not None else None,
        "final": floats(trainer.callback_metrics), "test": None,
    }
    if cfg.get("test_after_training", True) and "test" in dm.samples:
        tested = trainer.test(model, datamodule=dm, ckpt_path="best" if best else None, verbose=False)
        result["test"] = floats(tested[0]) if tested else None
    result["per_class_accuracy"] = getattr(model, "per_class_accuracy", {})
    result["failed_files"] = model.failure_report()
    if trainer.is_global_zero:
        from ..reports import training_curves

        curves = training_curves(trainer, out)
        result["curves"] = str(curves) if curves else None
        write_json(out / "metrics.json", result)
        _print_train_summary(result, out)
    return result


def continues_run(cfg: "DictConfig") -> bool:
    """``resume=true`` or ``ckpt_path=last``: the run continues the one in its run directory."""
    return bool(cfg.get("resume", False)) or cfg.get("ckpt_path") == "last"


def recipe_summary(dm: Any, model: Any, strategy: Any) -> str:
    """Which recipe parts this run has on, read from the built datamodule, model and finetune strategy (not the
    config), in one line: what a run did is then in its log."""
    a = dm.augmentation
    hp = model.hparams
    parts = [f"crop scale {a.scale[0]:g}-{a.scale[1]:g}, hflip {a.hflip:g}"
             + (f", color jitter {a.color_jitter:g}" if a.color_jitter else "")
             + (f", rate jitter {a.rate_jitter:g}" if a.rate_jitter != 1 else "")]
    mix = [f"mixup {a.mixup_alpha:g}"] * bool(a.mixup_alpha) + [f"CutMix {a.cutmix_alpha:g}"] * bool(a.cutmix_alpha)
    parts.append(" + ".join(mix) if mix else "no mixup/CutMix")
    parts.append(f"RandAugment {a.auto_augment}" if a.auto_augment else "no RandAugment")
    parts.append(f"EMA {hp.ema_decay:g}" if hp.get("ema_decay") else "no EMA")
    n = int(dm.clips_per_video)
    parts.append(f"{n} clip{'s' if n != 1 else ''} per video")
    weights = hp.get("class_weights")
    parts.append("class weights " + ("auto" if weights == "auto" else "given") if weights is not None
                 else "no class weights")
    parts.append(f"label smoothing {hp.label_smoothing:g}" if hp.get("label_smoothing") else "no label smoothing")
    parts.append(f"test views {dm.num_clips} clip(s) x {dm.num_crops} crop(s)")
    parts.append(f"finetune {strategy if isinstance(strategy, str) else type(strategy).__name__}")
    return "; ".join(parts)


def resume_checkpoint(cfg: "DictConfig", out: Path) -> str | None:
    """``resume=true`` or ``ckpt_path=last``: the run directory's last checkpoint; any other ``ckpt_path`` as is."""
    path = cfg.get("ckpt_path")
    if not continues_run(cfg):
        return str(existing_checkpoint(path)) if path else None
    from ..checkpoint import find_resume_checkpoint

    found = find_resume_checkpoint(out)
    if found is None:
        raise ConfigError(f"resume=true but {out} holds no checkpoint: pass the interrupted run's directory, "
                          f"e.g. hydra.run.dir=runs/train/NAME resume=true (or start over in {out} with "
                          "overwrite=true)")
    return str(found)


def _print_train_summary(result: Mapping[str, Any], out: Path) -> None:
    from rich.console import Console

    con = Console(stderr=False, soft_wrap=True)
    con.print(f"[bold]flashvid train[/bold]: {result['epochs']} epochs, run directory {out}")
    if result.get("best_by") and result.get("best_score") is not None:
        con.print(f"  best {result['best_by']} {result['best_score']:.4f}: {result['best_checkpoint']}")
    if result["test"] and "test/mAP" in result["test"]:  # multi-label
        t = result["test"]
        con.print(f"  test (best checkpoint): mAP {t['test/mAP']:.4f}  F1 macro {t.get('test/f1', float('nan')):.4f}  "
                  f"F1 micro {t.get('test/f1_micro', float('nan')):.4f}  "
                  f"subset accuracy {t.get('test/subset_acc', float('nan')):.4f}")
    elif result["test"]:
        t = result["test"]
        top5 = f"top-5 {t['test/acc5']:.4f}  " if "test/acc5" in t else ""  # only over 5 classes
        con.print(f"  test (best checkpoint): top-1 {t.get('test/acc', float('nan')):.4f}  {top5}"
                  f"mean class {t.get('test/mean_class_acc', float('nan')):.4f}")
    con.print(f"  metrics: {out / 'metrics.json'}")
    if result.get("curves"):
        con.print(f"  curves: {result['curves']}")
