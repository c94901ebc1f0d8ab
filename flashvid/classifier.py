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
from typing import Any, Iterable, Iterator, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection

from . import _compat  # noqa: F401
from .checkpoint_record import read_record, write_record
from .data.clip_config import DataConfig, clip_shape_error, resolve_clip_config
from .data.transforms import BatchAugmentation
from .data.view_averaging import average_views
from .evaluation import EvaluationSteps
from .failures import DecodeFailureAccounting, TooManyFailedFiles  # noqa: F401  (re-exported: defined here once)
from .inference import Inputs, PredictOptions, Predictor, probabilities
from .losses import check_class_weights, datamodule_class_weights, multi_hot_targets, weighted_cross_entropy
from .models import VideoBackbone, create_backbone
from .optim import add_param_groups, build_optimizer, check_optimizer, parameter_groups
from .schedules import check_scheduler, with_schedule

log = logging.getLogger(__name__)


class VideoClassifier(DecodeFailureAccounting, EvaluationSteps, L.LightningModule):
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
        compile: ``torch.compile`` the backbone: ``True``, ``False``, or ``"auto"`` (on when training a transformers
            backbone on a CUDA GPU: 253 -> 316 clips/s for VideoMAE-base; off for conv nets, where it did not pay).
        activation_checkpointing: recompute activations in backward (VideoMAE-large: 17.0 -> 5.6 GB, 0.57x speed).
        channels_last: channels-last-3d memory format for conv backbones on GPU.
        max_failed_fraction: fail the run when more than this share of files cannot be decoded.
        multi_label: several classes per video (``path,a;b`` list files): a sigmoid per class and binary
            cross-entropy, mAP (macro average precision), F1 at ``threshold`` (``f1`` macro, ``f1_micro``) and
            subset accuracy (``subset_acc``: every class right) as metrics, checkpoints and early stopping by
            ``val/mAP``, and ``predict`` listing every class scoring at least ``threshold``.
        threshold: the multi-label decision threshold on a class's probability.
        architecture: the backbone's architecture as checkpoints record it (:meth:`VideoBackbone.architecture`), to
            rebuild a model whose architecture came from its ``pretrained`` source without that source.
    """

    view_average: str = "prob"  #: how test views combine (data.view_averaging); set per evaluation, not saved

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
        check_optimizer(optimizer)
        check_scheduler(scheduler)
        class_weights = check_class_weights(class_weights, num_classes)  # as floats, before save_hyperparameters
        if ema_decay is not None:
            from .ema import EMA

            EMA(ema_decay)  # validates the decay now, not when training starts
        if drop_path_rate:
            from .models import get_backbone_spec
            from .models.drop_path import drop_path_kwargs

            backbone_kwargs = {**(backbone_kwargs or {}),
                               **drop_path_kwargs(get_backbone_spec(backbone), drop_path_rate)}
        # one call, after labels/num_classes are resolved (a second would replace the first's hparams, and a checkpoint
        # without labels cannot be loaded); plain dicts and lists only, so torch.load(weights_only=True) reads it.
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
        self._add_evaluation_state()  # val_/test_ metrics, loss, per-class accuracy (flashvid.evaluation)
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
        if video.dim() == 6:  # (B, V, ...) views: one row per video
            logits = self._backbone_forward(video.flatten(0, 1)).view(*video.shape[:2], -1)
            return average_views(logits, self.view_average, self.multi_label)
        return self._backbone_forward(video)

    def _backbone_forward(self, video: torch.Tensor) -> torch.Tensor:
        """The backbone on ``(B, T, C, H, W)``; a shape it cannot take becomes an error that names the settings."""
        try:
            return self.backbone(video)
        except (RuntimeError, ValueError) as e:
            if isinstance(e, torch.OutOfMemoryError) or video.dim() != 5:
                raise
            spec, hf = self.backbone.spec.data, getattr(self.backbone.model, "config", None)  # hf: its own size
            raise clip_shape_error(self.hparams.backbone, video.shape, self.data_config, e, getattr(
                hf, "num_frames", spec.num_frames), getattr(hf, "image_size", spec.crop_size)) from e

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the configured label smoothing and class weights; override to change the objective.

        ``labels`` are integer class ids ``(B,)`` or soft targets ``(B, num_classes)`` (mixup/CutMix), which
        ``F.cross_entropy`` takes as class probabilities. A multi-label model uses binary cross-entropy per class
        on multi-hot targets, ``class_weights`` as each class's positive weight.
        """
        weight = None if self.class_weight is None else self.class_weight.to(logits.device)
        if self.multi_label:
            targets = multi_hot_targets(labels, self.num_classes)
            return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=weight)
        return weighted_cross_entropy(logits, labels, weight, self.hparams.label_smoothing)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        self._account(batch)
        if batch["video"] is None:
            return self._skip_loss()
        logits = self(batch["video"])
        loss = self.compute_loss(logits, batch.get("target", batch["label"]))
        self._log_training_step(loss, logits, batch["label"])
        return loss

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
        return with_schedule(opt, h.scheduler, h.warmup_ratio, h.min_lr_ratio,
                             lambda: self.trainer.estimated_stepping_batches)

    def add_param_groups(self, modules: Iterable[nn.Module], optimizer: torch.optim.Optimizer,
                         lr_scale: float = 0.1) -> list[dict[str, Any]]:
        """Add the trainable parameters of ``modules`` that ``optimizer`` lacks, as :meth:`parameter_groups` would
        group them, at ``lr_scale`` times the configured learning rate and following the running schedule (what
        the finetune strategies call when they unfreeze stages)."""
        h = self.hparams
        return add_param_groups(optimizer, self.parameter_groups(h.learning_rate * lr_scale, h.weight_decay, modules))

    def configure_callbacks(self) -> list[L.Callback]:
        """The EMA of the weights when ``ema_decay`` is set (a callback, so it is checkpointed with the run)."""
        if self.hparams.get("ema_decay") is None:
            return []
        from .ema import EMA

        return [EMA(self.hparams.ema_decay)]

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        write_record(self, checkpoint)  # labels, architecture, clip settings, class: flashvid.checkpoint_record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        read_record(self, checkpoint)

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
        if self.hparams.get("class_weights") == "auto" and stage == "fit":  # from the training videos
            self.class_weight = datamodule_class_weights(getattr(self.trainer, "datamodule", None), self.num_classes,
                                                         self.multi_label, self.labels)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if getattr(datamodule, "multi_label", False) and not self.multi_label:
            raise ValueError("the data has several labels per video (path,a;b rows) but the model is single-label: "
                             "set model.multi_label=true (VideoClassifier(multi_label=True))")
        if self.multi_label and self._trainer is not None:
            self._monitor_map()
        config = getattr(datamodule, "data_config", None)
        if isinstance(config, DataConfig) and config != self.data_config:
            log.info("flashvid: clip settings from the datamodule: %s", config)
            self._set_data_config(config)

    # ------------------------------------------------------------------ inference on files
    def predict(self, inputs: Inputs, *args: Any, **options: Any) -> list[dict[str, Any]]:
        """Classify video files and/or folders (searched recursively), in input order.

        ``args``/``options``: :class:`~flashvid.inference.PredictOptions` fields (``top_k``, ``batch_size``,
        ``num_workers``, ``num_clips`` x ``num_crops`` views averaged per file, ``decoder``, ``device``, ``window``,
        ``stride``, ``threshold``, ``clips_per_window``, ``progress``). A result is ``{"path", "label", "score",
        "top_k": [{"label", "score"}, ...]}``; a file that cannot be decoded gets ``"label": None``, ``"top_k": []``
        and its ``"error"``, never hiding the others. ``window=SECONDS`` (:mod:`flashvid.timeline`) adds
        ``windows``, ``segments`` (runs of one label scoring >= ``threshold``) and ``duration``, the top label being
        the mean over windows. A multi-label model adds ``"labels"``: every class with a probability of at least
        ``threshold`` (default: the model's), highest first, possibly none.
        """
        return Predictor(self, PredictOptions(*args, **options)).predict(inputs)

    def iter_predict(self, inputs: Inputs, *args: Any, **options: Any) -> Iterator[tuple[int, dict[str, Any]]]:
        """:meth:`predict`'s results as ``(input index, result)`` pairs, each as soon as its file is done (for
        streaming them to a file); the order is the input order except across workers with timelines."""
        return Predictor(self, PredictOptions(*args, **options)).iter_predict(inputs)
