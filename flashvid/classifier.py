"""``VideoClassifier``: any registered backbone as a LightningModule, with ``predict`` on video files.

Extension points for subclasses (each covered by a test):

- ``configure_head(backbone)``: swap the classifier layer. It receives the built backbone; assign
  ``backbone.head = new_layer`` (or call ``backbone.replace_head``), which replaces the layer inside the wrapped
  model too. The new layer takes the old head's input (for a ``Linear`` head, ``backbone.head.in_features``
  pooled features) and returns ``num_classes`` logits.
- ``compute_loss(logits, labels)``: add or change the training loss (mixup, focal, distillation...).
- ``build_metrics(num_classes)``: return a ``MetricCollection`` of extra metrics over (probabilities, integer
  labels), logged as ``val/<name>`` and ``test/<name>``.
- ``configure_optimizers``: as in any LightningModule; :meth:`parameter_groups` gives weight-decay and
  layer-decay aware groups to reuse.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from . import _compat  # noqa: F401
from .data.datamodule import DataConfig
from .data.dataset import VideoClipDataset, collate_clips
from .data.sources import collect_paths
from .data.transforms import BatchAugmentation
from .models import VideoBackbone, create_backbone

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "linear", "constant")


class TooManyFailedFiles(RuntimeError):
    """More than ``max_failed_fraction`` of the files seen could not be decoded."""


class VideoClassifier(L.LightningModule):
    """Video classification with a registered backbone (``available_backbones()``).

    Args:
        backbone: registry name (``x3d_xs``, ``videomae_base``...) or a transformers checkpoint directory/hub id.
        num_classes: number of classes; taken from ``labels`` when given.
        labels: class names, kept in checkpoints (and in a transformers backbone's id2label).
        pretrained: ``True`` for the backbone's published weights, a path or hub id for a local copy.
        data: overrides of the backbone's clip settings (``num_frames``, ``sampling_rate``, ``crop_size``, ...).
        learning_rate, optimizer, weight_decay, scheduler, warmup_ratio: AdamW with warmup + cosine by default.
        label_smoothing: cross-entropy label smoothing.
        layer_decay: layer-wise LR decay factor (``None`` for none; the ``layer_decay`` strategy sets it too).
        compile: ``torch.compile`` the backbone: ``True``, ``False``, or ``"auto"`` (the default: on when training
            a transformers backbone on a CUDA GPU, where it measured 253 -> 316 clips/s for VideoMAE-base; off for
            conv nets such as X3D, where it did not pay).
        activation_checkpointing: recompute activations in the backward pass (VideoMAE-large, batch 8, H100:
            17.0 -> 5.6 GB, 0.57x the speed).
        channels_last: channels-last-3d memory format for conv backbones on GPU.
        max_failed_fraction: fail the run when more than this share of files cannot be decoded.
    """

    def __init__(
        self,
        backbone: str = "x3d_xs",
        num_classes: int | None = None,
        labels: Sequence[str] | None = None,
        pretrained: bool | str = False,
        backbone_kwargs: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        learning_rate: float = 1e-3,
        optimizer: str = "adamw",
        weight_decay: float = 0.05,
        scheduler: str = "cosine",
        warmup_ratio: float = 0.1,
        min_lr_ratio: float = 0.01,
        label_smoothing: float = 0.0,
        layer_decay: float | None = None,
        compile: bool | str = "auto",
        activation_checkpointing: bool = False,
        channels_last: bool = False,
        max_failed_fraction: float = 0.05,
    ):
        super().__init__()
        if labels is not None:
            labels = [str(x) for x in labels]
            if num_classes is not None and num_classes != len(labels):
                raise ValueError(f"num_classes={num_classes} but {len(labels)} labels were given")
            num_classes = len(labels)
        if num_classes is None:
            raise ValueError("give num_classes or labels (e.g. labels=datamodule.labels)")
        labels = labels or [str(i) for i in range(num_classes)]
        backbone_kwargs = dict(backbone_kwargs) if backbone_kwargs is not None else None
        data = dict(data) if data is not None else None
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
        # one call, after labels/num_classes are resolved: a second call would replace the first's hparams, and a
        # checkpoint without labels cannot be loaded. Plain dicts and lists only, so torch.load(weights_only=True)
        # reads the checkpoint.
        self.save_hyperparameters()
        self.labels: list[str] = labels
        self.num_classes = num_classes
        self.backbone: VideoBackbone = create_backbone(backbone, num_classes, pretrained, **dict(backbone_kwargs or {}))
        self.configure_head(self.backbone)
        self.data_config = DataConfig.from_dict({**self.backbone.spec.data.to_dict(), **dict(data or {})})
        self._set_hf_labels()
        self.layer_decay = layer_decay
        self.failed_files: dict[str, str] = {}
        self._seen: set[str] = set()
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        self._normalize: BatchAugmentation | None = None
        if activation_checkpointing:
            self._enable_activation_checkpointing()
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be true, false or 'auto', got {compile!r}")
        self._compiled = False
        if compile is True:
            self._compile()

    # ------------------------------------------------------------------ construction hooks
    @staticmethod
    def available_backbones(pattern: str = "*") -> list[str]:
        from .models import list_backbones

        return list_backbones(pattern)

    def configure_head(self, backbone: VideoBackbone) -> None:
        """Override to replace ``backbone.head``; the default keeps the registry's fresh linear head."""

    def build_metrics(self, num_classes: int) -> MetricCollection | None:
        """Override to add metrics (a ``MetricCollection`` over probabilities and integer labels)."""
        return None

    def _metrics(self, prefix: str) -> MetricCollection:
        k = self.num_classes
        metrics: dict[str, Any] = {
            "acc": MulticlassAccuracy(k, top_k=1, average="micro"),
            "acc5": MulticlassAccuracy(k, top_k=min(5, k), average="micro"),
            "mean_class_acc": MulticlassAccuracy(k, top_k=1, average="macro"),
        }
        extra = self.build_metrics(k)
        if extra is not None:
            metrics.update(dict(extra.items()))
        return MetricCollection(metrics, prefix=f"{prefix}/")

    def _set_hf_labels(self) -> None:
        config = getattr(self.backbone.model, "config", None)
        if config is not None and hasattr(config, "id2label"):
            config.id2label = dict(enumerate(self.labels))
            config.label2id = {n: i for i, n in enumerate(self.labels)}

    def _enable_activation_checkpointing(self) -> None:
        model = self.backbone.model
        if hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            return
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        stages = {id(s) for s in self.backbone.stages[:-1]}
        apply_activation_checkpointing(model, check_fn=lambda m: id(m) in stages)

    # ------------------------------------------------------------------ forward and loss
    def normalize(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 clips (no datamodule on the way) to normalised floats with the backbone's mean/std."""
        if video.dtype != torch.uint8:
            return video
        if self._normalize is None:
            cfg = self.data_config
            self._normalize = BatchAugmentation(cfg.mean, cfg.std, cfg.crop_size, train=False)
        return self._normalize.to(video.device)(video)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Logits for ``(B, T, C, H, W)`` clips, or view-averaged probabilities' logits for ``(B, V, T, C, H, W)``."""
        video = self.normalize(video)
        if self.hparams.channels_last and video.is_cuda and self.backbone.spec.layout == "BCTHW":
            video = video.transpose(1, 2).contiguous(memory_format=torch.channels_last_3d).transpose(1, 2)
        if video.dim() == 6:
            b, v = video.shape[:2]
            logits = self._backbone_forward(video.flatten(0, 1)).float()
            return logits.view(b, v, -1).softmax(-1).mean(1).log()
        return self._backbone_forward(video)

    def _backbone_forward(self, video: torch.Tensor) -> torch.Tensor:
        """The backbone on ``(B, T, C, H, W)``; a shape it cannot take becomes an error that names the settings."""
        try:
            return self.backbone(video)
        except (RuntimeError, ValueError) as e:
            if isinstance(e, torch.OutOfMemoryError) or video.dim() != 5:
                raise
            t, _, h, w = video.shape[1:]
            cfg, spec = self.data_config, self.backbone.spec.data
            hf = getattr(self.backbone.model, "config", None)  # a transformers model knows its own input size
            frames, size = getattr(hf, "num_frames", spec.num_frames), getattr(hf, "image_size", spec.crop_size)
            raise ValueError(
                f"backbone {self.hparams.backbone!r} cannot take clips of {t} frames of {h}x{w} "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). It was built for "
                f"{frames} frames of {size}x{size}; this run feeds "
                f"num_frames={cfg.num_frames}, crop_size={cfg.crop_size}. Remove the data.num_frames/crop_size "
                "overrides, or set them to what the backbone was built for."
            ) from e

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the configured label smoothing; override to change the objective."""
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.hparams.label_smoothing)

    # ------------------------------------------------------------------ failed files
    def _account(self, batch: Mapping[str, Any]) -> None:
        for f in batch.get("failed", []):
            if f["path"] not in self.failed_files:
                self.failed_files[f["path"]] = f["reason"]
                log.warning("flashvid: skipping unreadable video %s (%s)", f["path"], f["reason"])
            self._seen.add(f["path"])
        self._seen.update(batch.get("path", []))

    def _check_failures(self) -> None:
        if not self.failed_files or not self._seen:
            return
        share = len(self.failed_files) / len(self._seen)
        if share > self.hparams.max_failed_fraction:
            listing = "\n  ".join(f"{p}: {r}" for p, r in list(self.failed_files.items())[:20])
            raise TooManyFailedFiles(
                f"{len(self.failed_files)} of {len(self._seen)} videos ({share:.0%}) could not be decoded, more "
                f"than max_failed_fraction={self.hparams.max_failed_fraction:.0%}. Run `flashvid doctor` on the "
                f"data, fix or remove these files, or raise model.max_failed_fraction:\n  {listing}"
            )

    def failure_report(self) -> dict[str, Any]:
        return {"num_failed": len(self.failed_files), "num_seen": len(self._seen),
                "failed": [{"path": p, "reason": r} for p, r in sorted(self.failed_files.items())]}

    def _skip_loss(self) -> torch.Tensor:
        """A zero loss touching every trainable parameter: a batch with no decodable clip still steps in sync
        on every rank (returning None would hang DDP)."""
        return sum((p.sum() * 0.0 for p in self.parameters() if p.requires_grad), torch.zeros((), device=self.device))

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        self._account(batch)
        if batch["video"] is None:
            return self._skip_loss()
        logits = self(batch["video"])
        loss = self.compute_loss(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def _eval_step(self, batch: Mapping[str, Any], metrics: MetricCollection, prefix: str) -> None:
        self._account(batch)
        if batch["video"] is None:
            return
        video, labels = batch["video"], batch["label"]
        out = self(video)
        if video.dim() == 6:  # out holds log of view-averaged probabilities
            loss = F.nll_loss(out, labels)
            probs = out.exp()
        else:
            loss = F.cross_entropy(out.float(), labels)
            probs = out.float().softmax(-1)
        metrics.update(probs, labels)
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=len(labels), sync_dist=True)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._check_failures()

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        self._account(batch)
        probs = None if batch["video"] is None else self._probabilities(batch["video"])
        return {"index": batch["index"], "probs": probs, "failed": batch.get("failed", [])}

    def _probabilities(self, video: torch.Tensor) -> torch.Tensor:
        out = self(video).float()
        return out.exp() if video.dim() == 6 else out.softmax(-1)

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self, lr: float, weight_decay: float,
                         modules: Iterable[nn.Module] | None = None) -> list[dict[str, Any]]:
        """Trainable parameters grouped by (stage LR scale, weight decay): no decay on biases and norms.

        ``modules`` restricts the groups to those modules' parameters (what a finetune strategy unfreezes), with
        the same per-stage scales and weight decay as the initial groups.
        """
        decay = self.layer_decay
        stage_of = self.backbone.stage_index_of_parameters()
        last = len(self.backbone.stages) - 1
        wanted = None if modules is None else {id(p) for m in modules for p in m.parameters()}
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, p in self.backbone.named_parameters():
            if not p.requires_grad or (wanted is not None and id(p) not in wanted):
                continue
            scale = decay ** (last - stage_of[name]) if decay else 1.0
            wd = 0.0 if p.ndim <= 1 or name.endswith(".bias") or "pos" in name.split(".")[-1] else weight_decay
            groups.setdefault((scale, wd), []).append(p)
        return [{"params": ps, "lr": lr * s, "weight_decay": wd, "lr_scale": s}
                for (s, wd), ps in sorted(groups.items(), key=lambda kv: kv[0])]

    def configure_optimizers(self) -> Any:
        h = self.hparams
        groups = self.parameter_groups(h.learning_rate, h.weight_decay)
        if not groups:
            raise RuntimeError("no trainable parameters: the finetune strategy froze everything")
        fused = {"fused": True} if self.device.type == "cuda" else {}
        if h.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=h.learning_rate, momentum=0.9, nesterov=True)
        elif h.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=h.learning_rate, **fused)
        else:
            opt = torch.optim.AdamW(groups, lr=h.learning_rate, betas=(0.9, 0.999), **fused)
        if h.scheduler == "constant" and not h.warmup_ratio:
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(total * h.warmup_ratio)
        floor = h.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if h.scheduler == "constant":
                return 1.0
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            if h.scheduler == "linear":
                return floor + (1 - floor) * (1 - progress)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = GroupAwareLambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def add_param_groups(self, modules: Iterable[nn.Module], optimizer: torch.optim.Optimizer,
                         lr_scale: float = 0.1) -> list[dict[str, Any]]:
        """Add the trainable parameters of ``modules`` that ``optimizer`` lacks, as :meth:`parameter_groups` would
        group them, at ``lr_scale`` times the configured learning rate and following the running schedule.

        The finetune strategies call this when they unfreeze stages.
        """
        h = self.hparams
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        # the schedule's current factor, read off the first group so new groups start where the others are
        first = optimizer.param_groups[0]
        factor = first["lr"] / first["initial_lr"] if first.get("initial_lr") else 1.0
        added = []
        for group in self.parameter_groups(h.learning_rate * lr_scale, h.weight_decay, modules):
            group["params"] = [p for p in group["params"] if id(p) not in held]
            if not group["params"]:
                continue
            group["initial_lr"] = group["lr"]
            group["lr"] = group["initial_lr"] * factor
            optimizer.add_param_group(group)
            added.append(group)
        return added

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restoring a checkpoint loads its own weights: never re-download the pretrained ones.
        # hparams hold the arguments as given (labels may have been None): store the resolved ones, so
        # load_from_checkpoint rebuilds the same head and names.
        checkpoint["hyper_parameters"] = {**checkpoint.get("hyper_parameters", {}), "pretrained": False,
                                          "compile": False, "labels": list(self.labels),
                                          "num_classes": self.num_classes}
        checkpoint["flashvid"] = {"labels": list(self.labels), "data_config": self.data_config.to_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("flashvid", {})
        # Before the weights load: a class mismatch is named here rather than as a head size mismatch (or, with the
        # same number of classes, not at all).
        if saved.get("labels") is not None:
            from .callbacks import check_labels

            check_labels(list(saved["labels"]), self.labels, source="the checkpoint")
        # The clip settings the weights were trained with (the datamodule's explicit values included) win over
        # the ones rebuilt from the backbone entry and hyperparameters.
        if "data_config" in saved:
            self._set_data_config(DataConfig.from_dict(saved["data_config"]))

    def _set_data_config(self, config: DataConfig) -> None:
        self.data_config = config
        self._normalize = None  # rebuilt with the new mean/std on the next uint8 input

    def _compile(self) -> None:
        if not self._compiled:
            self.backbone.compile()
            self._compiled = True

    def setup(self, stage: str) -> None:
        """Adopt the datamodule's final clip settings (ours plus its explicit overrides), so checkpoints and
        :meth:`predict` use what training used. The datamodule's ``setup`` has run by now. ``compile="auto"``
        is decided here, once the device is known."""
        if (self.hparams.compile == "auto" and stage == "fit" and self.backbone.spec.family == "transformers"
                and self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"):
            self._compile()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        config = getattr(datamodule, "data_config", None)
        if isinstance(config, DataConfig) and config != self.data_config:
            log.info("flashvid: clip settings from the datamodule: %s", config)
            self._set_data_config(config)

    # ------------------------------------------------------------------ inference on files
    @torch.inference_mode()
    def predict(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        top_k: int = 5,
        batch_size: int = 8,
        num_workers: int = 0,
        num_clips: int = 1,
        num_crops: int = 1,
        decoder: str = "auto",
        device: str | torch.device | None = None,
    ) -> list[dict[str, Any]]:
        """Classify video files and/or folders (searched recursively), in input order.

        Each result is ``{"path", "label", "score", "top_k": [{"label", "score"}, ...]}``; a file that cannot be
        decoded gets ``{"path", "label": None, "score": None, "top_k": [], "error": reason}`` and never hides
        the others' results. ``num_clips`` x ``num_crops`` views are averaged per file.
        """
        samples = collect_paths(inputs)
        cfg = self.data_config
        dataset = VideoClipDataset(samples, cfg.sampling, cfg.eval_transform(num_crops),
                                   "uniform" if num_clips > 1 else "center", num_clips=num_clips, decoder=decoder)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                             collate_fn=collate_clips, pin_memory=torch.cuda.is_available())
        device = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else self.device)
        was_training = self.training
        self.eval().to(device)
        k = min(top_k, self.num_classes)
        results: list[dict[str, Any] | None] = [None] * len(samples)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        for batch in loader:
            for f in batch["failed"]:
                results[f["index"]] = {"path": f["path"], "label": None, "score": None, "top_k": [],
                                       "error": f["reason"]}
            if batch["video"] is None:
                continue
            with autocast:
                probs = self._probabilities(batch["video"].to(device, non_blocking=True)).float().cpu()
            scores, ids = probs.topk(k, dim=-1)
            for i, row_s, row_i in zip(batch["index"].tolist(), scores.tolist(), ids.tolist()):
                top = [{"label": self.labels[c], "score": s} for s, c in zip(row_s, row_i)]
                results[i] = {"path": samples[i].path, "label": top[0]["label"], "score": top[0]["score"],
                              "top_k": top}
        self.train(was_training)
        return [r for r in results if r is not None]


class GroupAwareLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """``LambdaLR`` with one factor for every parameter group, including groups added after it was built.

    Finetune strategies add the unfrozen backbone to the optimizer mid-training; a plain ``LambdaLR`` then fails
    (``zip() argument 2 is shorter than argument 1``) or leaves the new groups unscheduled. A new group's base LR is
    its ``initial_lr`` when set, else its current LR divided by the schedule's current factor.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Any, last_epoch: int = -1):
        self._factor = factor
        super().__init__(optimizer, factor, last_epoch)

    def _sync_groups(self) -> None:
        groups = self.optimizer.param_groups
        if len(self.base_lrs) < len(groups):
            now = self._factor(max(self.last_epoch - 1, 0))
            for group in groups[len(self.base_lrs):]:
                if "initial_lr" not in group:
                    group["initial_lr"] = group["lr"] / now if now > 0 else group["lr"]
                self.base_lrs.append(group["initial_lr"])
        while len(self.lr_lambdas) < len(groups):  # also after load_state_dict restored longer base_lrs
            self.lr_lambdas.append(self._factor)

    def get_lr(self) -> list[float]:  # type: ignore[override]  # torch: list[float | Tensor]
        self._sync_groups()
        return super().get_lr()  # type: ignore[return-value]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_factor", None)  # a closure: neither picklable nor needed (rebuilt by configure_optimizers)
        return state


def save_predictions(results: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(results), indent=2))
    return path
