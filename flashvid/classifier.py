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
import warnings
from typing import Any, Iterable, Iterator, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from . import _compat  # noqa: F401
from .checkpoint import check_class, class_path
from .data.clip_config import DataConfig, resolve_clip_config
from .data.transforms import BatchAugmentation
from .data.view_averaging import average_views
from .failures import DecodeFailureAccounting
from .failures import TooManyFailedFiles as TooManyFailedFiles  # re-exported: it was defined here
from .inference import Inputs, PredictOptions, Predictor, probabilities
from .losses import auto_class_weights, multi_hot_targets, weighted_cross_entropy
from .metrics import evaluation_metrics
from .models import VideoBackbone, create_backbone
from .optim import OPTIMIZERS, add_param_groups, build_optimizer, parameter_groups
from .schedules import GroupAwareLambdaLR, warmup_then_decay

log = logging.getLogger(__name__)

SCHEDULERS = ("cosine", "linear", "constant")


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

    #: how test views are combined (flashvid.data.view_averaging): set by the datamodule's and PredictOptions'
    #: ``view_average`` for the evaluation they run, not a trained property (checkpoints do not keep it)
    view_average: str = "prob"

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
        return evaluation_metrics(self.num_classes, prefix, self.multi_label, self.threshold,
                                  self.build_metrics(self.num_classes))

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
        """Logits for ``(B, T, C, H, W)`` clips; for ``(B, V, T, C, H, W)`` views, averaged as ``view_average`` says
        (:func:`flashvid.data.view_averaging.average_views`: log-probabilities, or a multi-label model's logits)."""
        video = self.normalize(video)
        if self.hparams.channels_last and video.is_cuda and self.backbone.spec.layout == "BCTHW":
            video = video.transpose(1, 2).contiguous(memory_format=torch.channels_last_3d).transpose(1, 2)
        if video.dim() == 6:
            b, v = video.shape[:2]
            logits = self._backbone_forward(video.flatten(0, 1))
            return average_views(logits.view(b, v, -1), self.view_average, self.multi_label)
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
        return weighted_cross_entropy(logits, labels, weight, self.hparams.label_smoothing)

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        return multi_hot_targets(labels, self.num_classes)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        self._account(batch)
        if batch["video"] is None:
            return self._skip_loss()
        logits = self(batch["video"])
        loss = self.compute_loss(logits, batch.get("target", batch["label"]))
        n = len(batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
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
        probs = None if batch["video"] is None else probabilities(self, batch["video"])
        return {"index": batch["index"], "probs": probs, "failed": batch.get("failed", [])}

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self, lr: float, weight_decay: float,
                         modules: Iterable[nn.Module] | None = None) -> list[dict[str, Any]]:
        """Trainable parameters grouped by (stage LR scale, weight decay): no decay on biases and norms.

        ``modules`` restricts the groups to those modules' parameters (what a finetune strategy unfreezes), with
        the same per-stage scales and weight decay as the initial groups.
        """
        return parameter_groups(self.backbone, lr, weight_decay, self.layer_decay, modules)

    def configure_optimizers(self) -> Any:
        h = self.hparams
        groups = self.parameter_groups(h.learning_rate, h.weight_decay)
        if not groups:
            raise RuntimeError("no trainable parameters: the finetune strategy froze everything")
        opt = build_optimizer(h.optimizer, groups, h.learning_rate, fused=self.device.type == "cuda")
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
        return add_param_groups(optimizer, self.parameter_groups(h.learning_rate * lr_scale, h.weight_decay, modules))

    def configure_callbacks(self) -> list[L.Callback]:
        """The EMA of the weights when ``ema_decay`` is set (a callback, so it is checkpointed with the run)."""
        if self.hparams.get("ema_decay") is None:
            return []
        from .ema import EMA

        return [EMA(self.hparams.ema_decay)]

    def _auto_class_weights(self) -> None:
        """``class_weights="auto"``: from the training videos of the trainer's datamodule."""
        datamodule = getattr(self.trainer, "datamodule", None)
        train = getattr(datamodule, "samples", {}).get("train") if datamodule is not None else None
        if not train:
            raise ValueError("class_weights='auto' needs the training videos: train with a VideoClassificationData "
                             "datamodule, or pass one weight per class")
        self.class_weight = auto_class_weights(train, self.num_classes, self.multi_label, self.labels)

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
    def predict(self, inputs: Inputs, *args: Any, **options: Any) -> list[dict[str, Any]]:
        """Classify video files and/or folders (searched recursively), in input order.

        ``args``/``options``: :class:`~flashvid.inference.PredictOptions` fields (``top_k``, ``batch_size``,
        ``num_workers``, ``num_clips``, ``num_crops``, ``decoder``, ``device``, ``window``, ``stride``,
        ``threshold``, ``clips_per_window``, ``progress``). Each result is ``{"path", "label", "score", "top_k":
        [{"label", "score"}, ...]}``; a file that cannot be decoded gets ``{"path", "label": None, "score": None,
        "top_k": [], "error": reason}`` and never hides the others' results. ``num_clips`` x ``num_crops`` views
        are averaged per file.

        ``window=SECONDS`` classifies every window of each video instead (a window every ``stride`` seconds,
        default ``window``; see :mod:`flashvid.timeline`): the result adds ``windows`` (per-window top-k),
        ``segments`` (runs of one label scoring >= ``threshold``) and ``duration``, and its top-level label is
        the mean over windows. ``progress=True`` shows a progress bar (``None``: only on a terminal).
        A multi-label model adds ``"labels"``: every class whose probability (sigmoid) is at least ``threshold``
        (default: the model's, which is also the timeline segments' cut), highest first, possibly none.
        """
        return Predictor(self, PredictOptions(*args, **options)).predict(inputs)

    def iter_predict(self, inputs: Inputs, *args: Any, **options: Any) -> Iterator[tuple[int, dict[str, Any]]]:
        """:meth:`predict`'s results as ``(input index, result)`` pairs, each as soon as its file is done (for
        streaming them to a file); the order is the input order except across workers with timelines."""
        return Predictor(self, PredictOptions(*args, **options)).iter_predict(inputs)
