"""``VideoClassifier``: any registered backbone as a LightningModule, with ``predict`` on video files.

Extension points for subclasses (each covered by a test):

- ``configure_head(backbone)``: swap the classifier layer. It receives the built backbone; assign
  ``backbone.head = new_layer`` (or call ``backbone.replace_head``), which replaces the layer inside the wrapped
  model too. The new layer takes the old head's input (for a ``Linear`` head, ``backbone.head.in_features``
  pooled features) and returns ``num_classes`` logits.
- ``compute_loss(logits, labels)``: add or change the training loss (mixup, focal, distillation...).
- ``build_metrics(num_classes)``: return a ``MetricCollection`` of extra metrics over (probabilities, integer
  labels; a multi-label model's: multi-hot targets), logged as ``val/<name>`` and ``test/<name>``.
- ``configure_optimizers``: as in any LightningModule; :meth:`parameter_groups` gives weight-decay and
  layer-decay aware groups to reuse.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassRecall,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
)

from . import _compat  # noqa: F401
from .data.clip_config import DataConfig, resolve_clip_config
from .data.dataset import VideoClipDataset, collate_clips, multi_hot
from .data.sources import collect_paths
from .data.transforms import BatchAugmentation
from .failures import DecodeFailureAccounting
from .failures import TooManyFailedFiles as TooManyFailedFiles  # re-exported: it was defined here
from .models import VideoBackbone, create_backbone

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "linear", "constant")


class MeanClassAccuracy(MulticlassRecall):
    """The mean of the per-class recalls over the classes that have videos in the evaluated split.

    torchmetrics' macro accuracy also averages in a class that has no videos but was predicted (its recall 0), so a
    test folder holding a subset of the classes scored lower than its classes' recalls say (2 classes recalled at
    0.5 and 1.0, a third predicted once: 0.5 instead of 0.75).
    """

    def __init__(self, num_classes: int, **kwargs: Any):
        super().__init__(num_classes, average=None, **kwargs)

    def compute(self) -> torch.Tensor:
        tp, _, _, fn = self._final_state()
        support = tp + fn
        present = support > 0
        if not present.any():
            return torch.tensor(0.0, device=tp.device)
        return (tp[present].float() / support[present]).mean()


class VideoClassifier(DecodeFailureAccounting, L.LightningModule):
    """Video classification with a registered backbone (``available_backbones()``).

    Args:
        backbone: registry name (``x3d_xs``, ``videomae_base``...) or a transformers checkpoint directory/hub id.
        num_classes: number of classes; taken from ``labels`` when given.
        labels: class names, kept in checkpoints (and in a transformers backbone's id2label).
        pretrained: ``True`` for the backbone's published weights, a path or hub id for a local copy.
        data: overrides of the backbone's clip settings (``num_frames``, ``sampling_rate``, ``crop_size``, ...).
        learning_rate, optimizer, weight_decay, scheduler, warmup_ratio: AdamW with warmup + cosine by default.
        label_smoothing: cross-entropy label smoothing (applied to mixup/CutMix soft targets too).
        class_weights: ``"auto"`` weighs the loss by inverse class frequency in the training data
            (``n / (k * count)``), or one weight per class; ``None`` for none. Multi-label: each class's
            positive weight (``pos_weight`` of binary cross-entropy); ``"auto"`` is negatives / positives among
            the training videos (1 for a class without positives).
        drop_path_rate: stochastic depth for backbones that have it (VideoMAE, TimeSformer, MViT, Swin3D; rising
            linearly over the depth where the model does so); an error for backbones without it.
        ema_decay: keep an exponential moving average of the weights (e.g. 0.999): validated, checkpointed and
            exported instead of the raw weights (:class:`flashvid.ema.EMA`); ``None`` for none.
        layer_decay: layer-wise LR decay factor (``None`` for none; the ``layer_decay`` strategy sets it too).
        compile: ``torch.compile`` the backbone: ``True``, ``False``, or ``"auto"`` (the default: on when training
            a transformers backbone on a CUDA GPU, where it measured 253 -> 316 clips/s for VideoMAE-base; off for
            conv nets such as X3D, where it did not pay).
        activation_checkpointing: recompute activations in the backward pass (VideoMAE-large, batch 8, H100:
            17.0 -> 5.6 GB, 0.57x the speed).
        channels_last: channels-last-3d memory format for conv backbones on GPU.
        max_failed_fraction: fail the run when more than this share of files cannot be decoded.
        multi_label: several classes per video (``path,a;b`` list files): a sigmoid per class and binary
            cross-entropy, mAP (macro average precision), F1 at ``threshold`` (``f1`` macro, ``f1_micro``) and
            subset accuracy (``subset_acc``: every class right) as metrics, checkpoints and early stopping by
            ``val/mAP``, and ``predict`` listing every class scoring at least ``threshold``.
        threshold: the multi-label decision threshold on a class's probability.
        architecture: the backbone's exact architecture as checkpoints record it (:meth:`VideoBackbone.architecture`,
            e.g. a transformers config's fields), for rebuilding a model whose architecture came from its
            ``pretrained`` source (a ``flashvid pretrain`` encoder) without that source; with ``pretrained=False``.
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
        class_weights: str | Sequence[float] | None = None,
        drop_path_rate: float = 0.0,
        ema_decay: float | None = None,
        layer_decay: float | None = None,
        compile: bool | str = "auto",
        activation_checkpointing: bool = False,
        channels_last: bool = False,
        max_failed_fraction: float = 0.05,
        multi_label: bool = False,
        threshold: float = 0.5,
        architecture: Mapping[str, Any] | None = None,
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
        architecture = dict(architecture) if architecture is not None else None
        if architecture and pretrained:
            raise ValueError("architecture= rebuilds a trained model's backbone without its pretrained source: "
                             "give it with pretrained=False")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
        if isinstance(class_weights, str) and class_weights != "auto":
            raise ValueError(f"class_weights must be 'auto', a list of {num_classes} numbers or null, "
                             f"got {class_weights!r}")
        if class_weights is not None and not isinstance(class_weights, str):
            class_weights = [float(w) for w in class_weights]
            if len(class_weights) != num_classes:
                raise ValueError(f"class_weights has {len(class_weights)} values for {num_classes} classes")
        if ema_decay is not None:
            from .ema import EMA

            EMA(ema_decay)  # validates the decay now, not when training starts
        if drop_path_rate:
            from .models.drop_path import drop_path_kwargs

            backbone_kwargs = {**(backbone_kwargs or {}), **drop_path_kwargs(backbone, drop_path_rate)}
        # one call, after labels/num_classes are resolved: a second call would replace the first's hparams, and a
        # checkpoint without labels cannot be loaded. Plain dicts and lists only, so torch.load(weights_only=True)
        # reads the checkpoint.
        self.save_hyperparameters()
        self.labels: list[str] = labels
        self.num_classes = num_classes
        self.multi_label = bool(multi_label)
        self.threshold = float(threshold)
        from .warmstart import is_flashvid_checkpoint, load_backbone_from_checkpoint

        warm = is_flashvid_checkpoint(pretrained)  # a flashvid checkpoint: its backbone, a new head
        self.backbone: VideoBackbone = create_backbone(backbone, num_classes, False if warm else pretrained,
                                                       **{**(backbone_kwargs or {}), **(architecture or {})})
        if drop_path_rate and self.backbone.spec.family == "torchvision":
            from .models.drop_path import set_stochastic_depth

            set_stochastic_depth(self.backbone.model, drop_path_rate)
        self.configure_head(self.backbone)
        self.data_config = resolve_clip_config(self.backbone.spec.data, data)
        if warm:
            load_backbone_from_checkpoint(self, str(pretrained))
        self._set_hf_labels()
        self.layer_decay = layer_decay
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        # The evaluation loss as a torchmetrics mean (sum and weight, summed over ranks): Lightning's
        # self.log(sync_dist=True) averages each rank's integer batch-size count with a truncating integer mean,
        # so ranks with unequal numbers of videos (3 and 2) reported a loss 25% too high.
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        # per-class accuracy (recall), kept out of the logged collection: k values per epoch would flood the logs;
        # read it from per_class_accuracy (written to metrics.json / test_metrics.json by the command line).
        # Single-label only: a metric never updated warns "compute before update" (multi-label per-class AP and F1
        # are in flashvid test's report)
        self.val_per_class = None if self.multi_label else MulticlassAccuracy(num_classes, top_k=1, average="none")
        self.test_per_class = None if self.multi_label else MulticlassAccuracy(num_classes, top_k=1, average="none")
        self.per_class_accuracy: dict[str, dict[str, float]] = {}
        # a plain attribute, not a buffer: the EMA callback pairs the model's buffers with its copy's by position
        self.class_weight: torch.Tensor | None = None if class_weights is None or class_weights == "auto" \
            else torch.tensor(class_weights, dtype=torch.float32)
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
        if self.multi_label:
            return self._multi_label_metrics(prefix)
        metrics: dict[str, Any] = {"acc": MulticlassAccuracy(k, top_k=1, average="micro")}
        if k > 5:  # with 5 classes or fewer the top 5 hold every class: acc5 would always be 1
            metrics["acc5"] = MulticlassAccuracy(k, top_k=5, average="micro")
        metrics["mean_class_acc"] = MeanClassAccuracy(k)
        extra = self.build_metrics(k)
        if extra is not None:
            metrics.update(dict(extra.items()))
        # compute_groups=False: torchmetrics merges metrics whose states are equal after the first update into one
        # group, and top-5 (always right with 2 classes) and macro accuracy can agree on a batch of one video, after
        # which mean_class_acc silently reported acc5. Three small states are cheap to update separately.
        return MetricCollection(metrics, prefix=f"{prefix}/", compute_groups=False)

    def _multi_label_metrics(self, prefix: str) -> MetricCollection:
        """Over (sigmoid probabilities, multi-hot targets). A class with no positive video in the split scores 0
        in the mAP average (torchmetrics' convention, with a warning): evaluate on splits that hold every class."""
        k = self.num_classes
        metrics: dict[str, Any] = {"mAP": MultilabelAveragePrecision(k, average="macro"),
                                   "f1": MultilabelF1Score(k, threshold=self.threshold, average="macro"),
                                   "f1_micro": MultilabelF1Score(k, threshold=self.threshold, average="micro"),
                                   "subset_acc": MultilabelExactMatch(k, threshold=self.threshold)}
        extra = self.build_metrics(k)
        if extra is not None:
            metrics.update(dict(extra.items()))
        # compute_groups=False: as for single-label, metrics must not be merged by equal states after one batch
        return MetricCollection(metrics, prefix=f"{prefix}/", compute_groups=False)

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
            if self.multi_label:  # the logits of the view-averaged per-class probabilities
                return torch.logit(logits.view(b, v, -1).sigmoid().mean(1), eps=1e-7)
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
        """Cross-entropy with the configured label smoothing and class weights; override to change the objective.

        ``labels`` are integer class ids ``(B,)`` or soft targets ``(B, num_classes)`` (mixup/CutMix), which
        ``F.cross_entropy`` takes as class probabilities. A multi-label model uses binary cross-entropy per class
        on multi-hot targets, ``class_weights`` as each class's positive weight.
        """
        weight = None if self.class_weight is None else self.class_weight.to(logits.device)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits.float(), self._targets(labels), pos_weight=weight)
        smoothing = self.hparams.label_smoothing
        if weight is not None and labels.is_floating_point():
            # F.cross_entropy divides weighted probability targets by the batch size but weighted class ids by
            # the sum of their weights: normalise soft targets by their weight too, so the loss of a batch has
            # the same scale mixed or not (and equals the integer-label loss for one-hot targets)
            q = labels.float()
            smoothed = q * (1 - smoothing) + smoothing / q.shape[-1]
            nll = -(smoothed * weight * logits.float().log_softmax(-1)).sum()
            return nll / (q * weight).sum().clamp(min=1e-12)
        return F.cross_entropy(logits.float(), labels.float() if labels.is_floating_point() else labels,
                               weight=weight, label_smoothing=smoothing)

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Multi-hot float targets, from the datamodule's multi-hot rows or collate's padded class indices."""
        if labels.is_floating_point():
            return labels.float()
        if labels.dim() == 1:
            labels = labels.unsqueeze(1)
        return multi_hot(labels, self.num_classes)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        self._account(batch)
        if batch["video"] is None:
            return self._skip_loss()
        logits = self(batch["video"])
        loss = self.compute_loss(logits, batch.get("target", batch["label"]))
        n = len(batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        # the epoch's mean too: per-step values reach the loggers every log_every_n_steps only, so a shorter run
        # had no training loss in metrics.csv and curves.png
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=n)
        # against the integer labels even when the loss saw mixed targets (then it measures the dominant clip)
        if not self.multi_label:  # a multi-label model reports mAP at evaluation, no training accuracy
            self.log("train/acc", (logits.detach().argmax(-1) == batch["label"]).float().mean(), batch_size=n)
        return loss

    def _eval_step(self, batch: Mapping[str, Any], metrics: MetricCollection, prefix: str) -> torch.Tensor | None:
        """Update ``metrics`` with the batch's video-level probabilities (views averaged) and return them."""
        self._account(batch)
        if batch["video"] is None:
            return None
        video, labels = batch["video"], batch["label"]
        out = self(video)
        if self.multi_label:
            targets = self._targets(labels)
            probs = out.float().sigmoid()
            metrics.update(probs, targets.long())
            loss = F.binary_cross_entropy_with_logits(out.float(), targets)
            getattr(self, f"{prefix}_loss").update(loss.detach(), weight=len(labels))
            return probs
        if video.dim() == 6:  # out holds log of view-averaged probabilities
            loss = F.nll_loss(out, labels)
            probs = out.exp()
        else:
            loss = F.cross_entropy(out.float(), labels)
            probs = out.float().softmax(-1)
        metrics.update(probs, labels)
        per_class = self.val_per_class if prefix == "val" else self.test_per_class
        assert per_class is not None  # single-label
        per_class.update(probs, labels)
        getattr(self, f"{prefix}_loss").update(loss.detach(), weight=len(labels))
        return probs

    def _share_buffers(self) -> None:
        """Under DDP, rank 0's buffers (BatchNorm running statistics) on every rank before evaluating.

        DDP broadcasts buffers at the start of each training forward, so after the last step every other rank
        keeps statistics updated by its own last batch; evaluated with them, part of the videos were scored by a
        model that is not the one checkpointed (rank 0's), and DDP and one-process metrics of a checkpoint differed.
        """
        if self._trainer is None or self.trainer.world_size <= 1:
            return
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for buf in self.buffers():
                dist.broadcast(buf, src=0)

    def on_validation_epoch_start(self) -> None:
        self._share_buffers()

    def on_test_epoch_start(self) -> None:
        self._share_buffers()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val", prog_bar=True)
        self._store_per_class("val", self.val_per_class)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any] | None:
        """Returns each video's probabilities with its label (multi-label: its multi-hot row) and path, once per
        video (what :class:`flashvid.reports.TestReport` collects)."""
        probs = self._eval_step(batch, self.test_metrics, "test")
        if probs is None:
            return None
        label = self._targets(batch["label"]) if self.multi_label else batch["label"]
        return {"probs": probs.detach(), "label": label, "path": list(batch["path"]), "index": batch["index"]}

    def on_test_epoch_end(self) -> None:
        self._log_eval("test", prog_bar=False)
        self._store_per_class("test", self.test_per_class)

    def _log_eval(self, prefix: str, prog_bar: bool) -> None:
        """Video-level metrics and the mean loss over every rank's videos (each counted once: the datamodule's
        evaluation samplers do not pad), then the failed files of all ranks."""
        self._sync_failures()
        metrics, loss = getattr(self, f"{prefix}_metrics"), getattr(self, f"{prefix}_loss")
        values = dict(metrics.compute())
        with warnings.catch_warnings():  # every rank computes (a collective), even one whose batches all failed
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
            mean_loss = loss.compute()
        if not torch.isnan(mean_loss):
            values[f"{prefix}/loss"] = mean_loss
        # values are already equal on every rank; sync_dist averages equal floats (exact) and keeps Lightning quiet
        self.log_dict(values, prog_bar=prog_bar, sync_dist=True)
        metrics.reset()
        loss.reset()

    def _store_per_class(self, prefix: str, metric: MulticlassAccuracy | None) -> None:
        """Per-class accuracy of the classes present in the split (a class without videos has no accuracy)."""
        if metric is None:  # multi-label
            return
        seen = (metric.tp + metric.fn) > 0
        acc = metric.compute()
        self.per_class_accuracy[prefix] = {self.labels[i]: float(acc[i]) for i in range(self.num_classes)
                                           if bool(seen[i])}
        metric.reset()

    def on_train_epoch_end(self) -> None:
        self._check_failures()

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        self._account(batch)
        probs = None if batch["video"] is None else self._probabilities(batch["video"])
        return {"index": batch["index"], "probs": probs, "failed": batch.get("failed", [])}

    def _probabilities(self, video: torch.Tensor) -> torch.Tensor:
        out = self(video).float()
        if self.multi_label:
            return out.sigmoid()
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
        factor = warmup_then_decay(total, int(total * h.warmup_ratio), h.min_lr_ratio, h.scheduler)
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

    def configure_callbacks(self) -> list[L.Callback]:
        """The EMA of the weights when ``ema_decay`` is set (a callback, so it is checkpointed with the run)."""
        if self.hparams.get("ema_decay") is None:
            return []
        from .ema import EMA

        return [EMA(self.hparams.ema_decay)]

    def _auto_class_weights(self) -> None:
        """``class_weights="auto"``: inverse frequency of the classes among the training videos; multi-label:
        each class's negatives / positives (binary cross-entropy's ``pos_weight``)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        train = getattr(datamodule, "samples", {}).get("train") if datamodule is not None else None
        if not train:
            raise ValueError("class_weights='auto' needs the training videos: train with a VideoClassificationData "
                             "datamodule, or pass one weight per class")
        if self.multi_label:
            hot = torch.zeros(len(train), self.num_classes)
            for i, s in enumerate(train):
                hot[i, list(s.label) if isinstance(s.label, tuple) else [s.label]] = 1.0
            positives = hot.sum(0)
            weights = (len(train) - positives) / positives.clamp(min=1)
            weights[positives == 0] = 1.0  # no positive to weigh
            self.class_weight = weights
            log.info("flashvid: positive weights (negatives / positives): %s",
                     ", ".join(f"{n}={w:.2f}" for n, w in zip(self.labels, weights.tolist())))
            return
        counts = torch.bincount(torch.tensor([s.label for s in train]), minlength=self.num_classes).float()
        weights = counts.sum() / (self.num_classes * counts.clamp(min=1))
        weights[counts == 0] = 0.0  # a class with no training video contributes no loss (doctor warns about it)
        self.class_weight = weights
        log.info("flashvid: class weights (inverse frequency): %s",
                 ", ".join(f"{n}={w:.2f}" for n, w in zip(self.labels, weights.tolist())))

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restoring a checkpoint loads its own weights: never re-download the pretrained ones.
        # hparams hold the arguments as given (labels may have been None): store the resolved ones, so
        # load_from_checkpoint rebuilds the same head and names.
        # Without the pretrained source, the architecture it gave (a pretrain encoder's width, frames, size) is
        # recorded, and the class: a subclass's head and hooks are rebuilt only by that class.
        checkpoint["hyper_parameters"] = {**checkpoint.get("hyper_parameters", {}), "pretrained": False,
                                          "compile": False, "labels": list(self.labels),
                                          "num_classes": self.num_classes,
                                          "architecture": self.backbone.architecture()}
        checkpoint["flashvid"] = {"labels": list(self.labels), "data_config": self.data_config.to_dict(),
                                  "class": class_path(type(self)), "per_class_accuracy": self.per_class_accuracy}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("flashvid", {})
        check_class(saved.get("class"), type(self), "the checkpoint")
        # Before the weights load: a class mismatch is named here rather than as a head size mismatch (or, with the
        # same number of classes, not at all).
        if saved.get("labels") is not None:
            from .callbacks import check_labels

            check_labels(list(saved["labels"]), self.labels, source="the checkpoint")
        # The clip settings the weights were trained with (the datamodule's explicit values included) win over
        # the ones rebuilt from the backbone entry and hyperparameters.
        if "data_config" in saved:
            self._set_data_config(resolve_clip_config(saved["data_config"]))
        # the last evaluations' per-class accuracy, for a resumed run that evaluates nothing more (a finished one);
        # never over this model's own
        for split, accuracy in (saved.get("per_class_accuracy") or {}).items():
            self.per_class_accuracy.setdefault(split, dict(accuracy))

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
        if self.hparams.get("class_weights") == "auto" and stage == "fit":
            self._auto_class_weights()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if getattr(datamodule, "multi_label", False) and not self.multi_label:
            raise ValueError("the data has several labels per video (path,a;b rows) but the model is single-label: "
                             "set model.multi_label=true (VideoClassifier(multi_label=True))")
        if self.multi_label and self._trainer is not None:
            self._follow_map()
        config = getattr(datamodule, "data_config", None)
        if isinstance(config, DataConfig) and config != self.data_config:
            log.info("flashvid: clip settings from the datamodule: %s", config)
            self._set_data_config(config)

    def _follow_map(self) -> None:
        """Checkpointing and early stopping configured on ``val/acc`` follow ``val/mAP``: a multi-label model
        logs no accuracy (both are "higher is better", so the mode stays)."""
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        for cb in self.trainer.callbacks:  # type: ignore[union-attr]
            if isinstance(cb, (ModelCheckpoint, EarlyStopping)) and cb.monitor == "val/acc":
                log.info("flashvid: multi-label model: %s monitors val/mAP instead of val/acc", type(cb).__name__)
                cb.monitor = "val/mAP"

    # ------------------------------------------------------------------ inference on files
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
        window: float | None = None,
        stride: float | None = None,
        threshold: float | None = None,
        clips_per_window: int = 1,
        progress: bool | None = False,
    ) -> list[dict[str, Any]]:
        """Classify video files and/or folders (searched recursively), in input order.

        Each result is ``{"path", "label", "score", "top_k": [{"label", "score"}, ...]}``; a file that cannot be
        decoded gets ``{"path", "label": None, "score": None, "top_k": [], "error": reason}`` and never hides
        the others' results. ``num_clips`` x ``num_crops`` views are averaged per file.

        ``window=SECONDS`` classifies every window of each video instead (a window every ``stride`` seconds,
        default ``window``; see :mod:`flashvid.timeline`): the result adds ``windows`` (per-window top-k),
        ``segments`` (runs of one label scoring >= ``threshold``) and ``duration``, and its top-level label is
        the mean over windows. ``progress=True`` shows a progress bar (``None``: only on a terminal).
        A multi-label model adds ``"labels"``: every class whose probability (sigmoid) is at least ``threshold``
        (default: the model's, which is also the timeline segments' cut), highest first, possibly none.
        """
        results = sorted(self.iter_predict(inputs, top_k, batch_size, num_workers, num_clips, num_crops, decoder,
                                           device, window, stride, threshold, clips_per_window, progress),
                         key=lambda x: x[0])
        return [r for _, r in results]

    @torch.inference_mode()
    def iter_predict(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        top_k: int = 5,
        batch_size: int = 8,
        num_workers: int = 0,
        num_clips: int = 1,
        num_crops: int = 1,
        decoder: str = "auto",
        device: str | torch.device | None = None,
        window: float | None = None,
        stride: float | None = None,
        threshold: float | None = None,
        clips_per_window: int = 1,
        progress: bool | None = False,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """:meth:`predict`'s results as ``(input index, result)`` pairs, each as soon as its file is done (for
        streaming them to a file); the order is the input order except across workers with timelines."""
        from .predictions import Progress

        samples = collect_paths(inputs)
        cut = self.threshold if threshold is None else float(threshold)
        if window is not None and (num_clips != 1 or num_crops != 1):
            raise ValueError("window= classifies each window from clips_per_window centre-cropped clips: leave "
                             "num_clips and num_crops at 1")
        if window is None and stride is not None:
            raise ValueError("stride= needs window=SECONDS (the length of each classified window)")
        device = torch.device(device) if device is not None else (
            torch.device("cuda") if torch.cuda.is_available() else self.device)
        was_training = self.training
        self.eval().to(device)
        try:
            with Progress(len(samples), progress) as bar:
                if window is not None:
                    from .timeline import iter_timelines

                    for i, r in iter_timelines(self, samples, float(window), None if stride is None else float(stride),
                                               top_k, cut, clips_per_window, batch_size, num_workers, decoder,
                                               device, on_windows=lambda n: bar.advance(windows=n)):
                        bar.advance(files=1)
                        yield i, r
                    return
                yield from self._iter_clip_predictions(samples, top_k, batch_size, num_workers, num_clips, num_crops,
                                                       decoder, device, bar, cut)
        finally:
            self.train(was_training)

    def _iter_clip_predictions(self, samples: Sequence[Any], top_k: int, batch_size: int, num_workers: int,
                               num_clips: int, num_crops: int, decoder: str, device: torch.device,
                               bar: Any, cut: float) -> Iterator[tuple[int, dict[str, Any]]]:
        cfg = self.data_config
        dataset = VideoClipDataset(samples, cfg.sampling, cfg.eval_transform(num_crops),
                                   "uniform" if num_clips > 1 else "center", num_clips=num_clips, decoder=decoder)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                             collate_fn=collate_clips, pin_memory=torch.cuda.is_available())
        k = min(top_k, self.num_classes)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        for batch in loader:
            done: dict[int, dict[str, Any]] = {}
            for f in batch["failed"]:
                done[f["index"]] = {"path": f["path"], "label": None, "score": None, "top_k": [],
                                    "error": f["reason"]}
            if batch["video"] is not None:
                with autocast:
                    probs = self._probabilities(batch["video"].to(device, non_blocking=True)).float().cpu()
                scores, ids = probs.topk(k, dim=-1)
                for i, row_s, row_i in zip(batch["index"].tolist(), scores.tolist(), ids.tolist()):
                    top = [{"label": self.labels[c], "score": s} for s, c in zip(row_s, row_i)]
                    done[i] = {"path": samples[i].path, "label": top[0]["label"], "score": top[0]["score"],
                               "top_k": top}
                if self.multi_label:
                    for i, row in zip(batch["index"].tolist(), probs, strict=True):
                        above = (row >= cut).nonzero().flatten().tolist()
                        done[i]["labels"] = sorted(({"label": self.labels[c], "score": float(row[c])} for c in above),
                                                   key=lambda d: -d["score"])
            bar.advance(files=len(done))
            for i in sorted(done):
                yield i, done[i]


def class_path(cls: type) -> str:
    """``module.QualName`` of ``cls``: what a checkpoint records and ``model._target_=`` names."""
    return f"{cls.__module__}.{cls.__qualname__}"


def check_class(recorded: str | None, cls: type, source: str) -> None:
    """Refuse to rebuild a subclass's model (its own head, hooks) as a plain :class:`VideoClassifier`.

    A class is imported only when the user names it, never from what a file says: the fix names the option.
    """
    if recorded is None or cls is not VideoClassifier or recorded == class_path(VideoClassifier):
        return
    from .checkpoint import CheckpointError

    raise CheckpointError(
        f"{source} holds a {recorded} (a VideoClassifier subclass), which a plain VideoClassifier cannot rebuild: "
        f"name the class, model._target_={recorded} on the command line (its module importable, e.g. on "
        f"PYTHONPATH) or cls={recorded.rpartition('.')[2]} in Python (load_classifier, load_exported)")


def load_classifier(path: str | os.PathLike, cls: type[VideoClassifier] | str | None = None,
                    map_location: Any = "cpu") -> VideoClassifier:
    """The model a flashvid checkpoint holds, rebuilt as it was trained, loaded with ``weights_only=True``.

    ``cls``: the class it was trained with when that is a subclass (the class or its ``module.Name``); the
    checkpoint records which one and refuses another. Class names come from the checkpoint's ``flashvid``
    record when its hyperparameters lack them (checkpoints of flashvid 0.1.0 keep them only there).
    Raises :class:`~flashvid.checkpoint.CheckpointError` (one line saying what to do) for a file that is no
    training checkpoint, carries code, or needs ``cls``.
    """
    import importlib

    from .checkpoint import CheckpointError, load_checkpoint, require_training_checkpoint

    ck = load_checkpoint(path, mmap=True)
    require_training_checkpoint(ck, path)
    saved = ck.get("flashvid") or {}
    if isinstance(cls, str):
        module, _, name = cls.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise CheckpointError(f"cannot import the class {cls!r} to load {str(path)!r} with: {e}") from None
    cls = VideoClassifier if cls is None else cls
    if not (isinstance(cls, type) and issubclass(cls, VideoClassifier)):
        raise CheckpointError(f"cls={cls!r} is not a VideoClassifier subclass: cannot load {str(path)!r} with it")
    check_class(saved.get("class"), cls, repr(str(path)))
    labels = saved.get("labels")
    kwargs = {"labels": labels} if labels and "labels" not in (ck.get("hyper_parameters") or {}) else {}
    del ck
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=True, **kwargs)


def warmup_then_decay(total: int, warmup: int, floor: float, shape: str = "cosine") -> Callable[[int], float]:
    """The LR multiplier of each step: linear warm-up over ``warmup`` steps, then ``constant``, ``linear`` or
    ``cosine`` decay to ``floor`` at step ``total`` (per step, not per epoch, so short runs decay smoothly)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if shape == "constant":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        if shape == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


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
    """``results`` to ``path`` in the format its extension names (.json, .jsonl, .csv; see flashvid.predictions)."""
    from .predictions import save_predictions as save

    return save(results, path)
