"""Self-supervised VideoMAE pretraining on the user's own videos (``flashvid pretrain``), labels ignored.

A masked autoencoder (Tong et al., *VideoMAE*, NeurIPS 2022): each clip is cut into tubelet x patch x patch tokens,
``mask_ratio`` (0.9) of the spatial positions are hidden in every frame alike (tube masking, so a patch cannot be
copied from the next frame), the encoder sees the rest and a small decoder reconstructs the hidden pixels, each
patch normalised (``norm_pix_loss``). transformers' ``VideoMAEForPreTraining`` is the model; flashvid's datamodule,
decoding and GPU augmentation feed it (the same clips, mean/std and loaders as fine-tuning), and its callbacks give
atomic ``last.ckpt``, exact resume, Ctrl-C/SIGTERM saves, bf16, compile and DDP as in ``flashvid train``.

The result is ``RUN/encoder/``: a ``save_pretrained`` directory of the encoder (``VideoMAEModel``, with the
``use_mean_pooling`` head configuration VideoMAE fine-tunes with) plus a preprocessor config holding the mean/std,
which ``flashvid train model=videomae_small model.pretrained=RUN/encoder`` fine-tunes.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning as L
import torch
from torch import nn

from .data.clip_config import DataConfig, resolve_clip_config
from .data.datamodule import VideoClassificationData
from .data.sources import collect_paths
from .failures import DecodeFailureAccounting
from .models import get_backbone_spec
from .models.registry import IMAGENET_MEAN, IMAGENET_STD
from .schedules import warmup_decay_scheduler

log = logging.getLogger(__name__)

# VideoMAE's pretraining decoders (models_pretrain.py: decoder width, heads; depth 4 for every size)
DECODERS: dict[str, dict[str, int]] = {
    "small": dict(decoder_hidden_size=192, decoder_num_attention_heads=3, decoder_intermediate_size=768),
    "base": dict(decoder_hidden_size=384, decoder_num_attention_heads=6, decoder_intermediate_size=1536),
    "large": dict(decoder_hidden_size=512, decoder_num_attention_heads=8, decoder_intermediate_size=2048),
    "huge": dict(decoder_hidden_size=640, decoder_num_attention_heads=8, decoder_intermediate_size=2560),
}
ENCODER_DIR = "encoder"


def tube_mask(batch_size: int, num_frames: int, tokens_per_frame: int, mask_ratio: float,
              device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """VideoMAE's tube masking: ``(batch_size, num_frames * tokens_per_frame)`` booleans, True = hidden.

    Each clip hides ``int(mask_ratio * tokens_per_frame)`` random spatial positions, the same ones in every frame
    (``num_frames`` counts tubelets), in the token order of transformers' patch embedding (time-major). Every clip
    hides as many tokens as the others, which ``VideoMAEForPreTraining`` requires.
    """
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    hidden = int(mask_ratio * tokens_per_frame)
    if hidden < 1 or hidden >= tokens_per_frame:
        raise ValueError(f"mask_ratio={mask_ratio} hides {hidden} of {tokens_per_frame} patches per frame: "
                         "at least one must be hidden and one visible (larger clips or another ratio)")
    order = torch.rand(batch_size, tokens_per_frame, device=device, generator=generator).argsort(dim=1)
    spatial = torch.zeros(batch_size, tokens_per_frame, dtype=torch.bool, device=device)
    spatial.scatter_(1, order[:, :hidden], True)
    return spatial.unsqueeze(1).expand(batch_size, num_frames, tokens_per_frame).reshape(batch_size, -1)


def _size_of(backbone: str) -> str:
    size = backbone.removeprefix("videomae_")
    if backbone not in ("videomae_small", "videomae_base", "videomae_large", "videomae_huge"):
        raise ValueError(f"pretraining builds VideoMAE: backbone must be videomae_small, videomae_base, "
                         f"videomae_large or videomae_huge, got {backbone!r} (model.config sets other sizes)")
    return size


class VideoMAEPretrainer(DecodeFailureAccounting, L.LightningModule):
    """VideoMAE masked-autoencoder pretraining as a LightningModule; :meth:`save_encoder` writes what
    ``VideoClassifier(..., pretrained=DIR)`` fine-tunes.

    Args:
        backbone: ``videomae_small`` / ``_base`` / ``_large`` / ``_huge``: the encoder size and clip settings.
        config: overrides of the ``VideoMAEConfig`` (e.g. a tiny model for tests: ``hidden_size``, ``patch_size``,
            decoder sizes); ``num_frames`` and ``image_size`` follow ``data`` when that sets them.
        data: overrides of the backbone's clip settings (``num_frames``, ``crop_size``, ``sampling_rate``...).
        mask_ratio: share of the patches hidden (tube masking); VideoMAE: 0.9.
        norm_pix_loss: reconstruct each patch normalised by its own mean and std (VideoMAE's default).
        repeated_sampling: each decoded clip is used this many times per step, each with its own GPU crop, flip
            and mask (MAE-ST's repeated sampling: decoding is the cost, the extra views are nearly free).
        learning_rate: the AdamW learning rate; ``None``: ``base_learning_rate * effective batch / 256``.
        base_learning_rate, betas, weight_decay: VideoMAE's AdamW (1.5e-4, (0.9, 0.95), 0.05).
        warmup_ratio, min_lr_ratio: linear warm-up over this share of the steps (VideoMAE: 40 of 800 epochs),
            then a cosine to ``min_lr_ratio`` x the learning rate, per step.
        compile: ``torch.compile`` each transformer block: ``True``, ``False`` or ``"auto"`` (on a CUDA GPU).
            Blocks rather than the whole model: masking gathers a data-dependent set of tokens in between.
        activation_checkpointing: recompute activations in the backward pass (less memory, slower).
        max_failed_fraction: stop when more than this share of the videos cannot be decoded.
    """

    def __init__(
        self,
        backbone: str = "videomae_small",
        config: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        mask_ratio: float = 0.9,
        norm_pix_loss: bool = True,
        repeated_sampling: int = 1,
        learning_rate: float | None = None,
        base_learning_rate: float = 1.5e-4,
        betas: Sequence[float] = (0.9, 0.95),
        weight_decay: float = 0.05,
        warmup_ratio: float = 0.05,
        min_lr_ratio: float = 0.01,
        compile: bool | str = "auto",
        activation_checkpointing: bool = False,
        max_failed_fraction: float = 0.05,
    ):
        super().__init__()
        import transformers

        from .models.transformers_models import _VIDEOMAE_SIZES

        config = dict(config) if config is not None else {}
        data = dict(data) if data is not None else {}
        self.save_hyperparameters()
        size = _size_of(backbone)
        if repeated_sampling < 1:
            raise ValueError(f"repeated_sampling must be >= 1, got {repeated_sampling}")
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be true, false or 'auto', got {compile!r}")
        spec = get_backbone_spec(backbone).data
        settings: dict[str, Any] = {**_VIDEOMAE_SIZES[size], **DECODERS[size], "decoder_num_hidden_layers": 4,
                                    "num_frames": spec.num_frames, "image_size": spec.crop_size, **config}
        # the clip the model eats: data.num_frames / data.crop_size win over the backbone entry and `config`
        settings["num_frames"] = int(data.get("num_frames", settings["num_frames"]))
        settings["image_size"] = int(data.get("crop_size", settings["image_size"]))
        # pretraining keeps the encoder's final norm (VideoMAE's encoder.norm); save_encoder drops it for the
        # mean-pooling head fine-tuning uses
        settings.update(use_mean_pooling=False, norm_pix_loss=norm_pix_loss)
        self.vmae_config = transformers.VideoMAEConfig(**settings)
        self.vmae_config._attn_implementation = "sdpa"
        self.model = transformers.VideoMAEForPreTraining(self.vmae_config)
        c = self.vmae_config
        if c.num_frames % c.tubelet_size or c.image_size % c.patch_size:
            raise ValueError(f"clips of {c.num_frames} frames at {c.image_size} px do not split into tubelets of "
                             f"{c.tubelet_size} frames and {c.patch_size} px patches")
        self.mask_shape = (c.num_frames // c.tubelet_size, (c.image_size // c.patch_size) ** 2)
        tube_mask(1, *self.mask_shape, mask_ratio)  # a ratio that hides nothing or everything fails now
        resize = None if spec.resize_size is None else round(spec.resize_size * c.image_size / spec.crop_size)
        self.data_config = resolve_clip_config(spec, {"num_frames": c.num_frames, "crop_size": c.image_size,
                                                      "resize_size": resize, **data})
        self._check_normalisation()
        self._compiled = False
        if activation_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if compile is True:
            self._compile()

    def _check_normalisation(self) -> None:
        # transformers un-normalises the target with ImageNet's mean/std (VideoMAE's); with norm_pix_loss each
        # patch is re-normalised per channel, which cancels any per-channel affine, so only plain pixel targets
        # need the clips normalised that way
        cfg = self.data_config
        if not self.hparams.norm_pix_loss and (tuple(cfg.mean), tuple(cfg.std)) != (IMAGENET_MEAN, IMAGENET_STD):
            raise ValueError(f"norm_pix_loss=false reconstructs ImageNet-normalised pixels, but the clips use "
                             f"mean={cfg.mean} std={cfg.std}: drop the data.mean/std overrides or keep "
                             "norm_pix_loss=true")

    def _compile(self) -> None:
        if not self._compiled:
            for layer in [*self.model.videomae.encoder.layer, *self.model.decoder.decoder_layers]:
                layer.compile()
            self._compiled = True

    def setup(self, stage: str) -> None:
        """Adopt the datamodule's final clip settings; ``compile="auto"`` compiles on a CUDA device."""
        # our on_before_batch_transfer (repeated sampling) and the datamodule's on_after_batch_transfer work together;
        # Lightning warns on every fit that the module's hook is the one used, which is what is meant
        warnings.filterwarnings("ignore", message=".*overridden `on_before_batch_transfer`.*")
        if (self.hparams.compile == "auto" and stage == "fit" and self._trainer is not None
                and self.trainer.strategy.root_device.type == "cuda"):
            self._compile()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        config = getattr(datamodule, "data_config", None)
        if isinstance(config, DataConfig) and config != self.data_config:
            c = self.vmae_config
            if (config.num_frames, config.crop_size) != (c.num_frames, c.image_size):
                raise ValueError(f"the datamodule feeds {config.num_frames} frames at {config.crop_size} px but the "
                                 f"model was built for {c.num_frames} at {c.image_size}: set data.num_frames / "
                                 "data.crop_size on the model too (the CLI does)")
            self.data_config = config
            self._check_normalisation()

    # ------------------------------------------------------------------ steps
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Repeated sampling: each decoded uint8 clip goes to the device ``repeated_sampling`` times; the GPU
        augmentation (after the transfer) and the mask then differ per copy."""
        k = self.hparams.repeated_sampling
        if k > 1 and isinstance(batch, dict) and batch.get("video") is not None and self._trainer is not None \
                and self.trainer.training:
            batch["video"] = batch["video"].repeat_interleave(k, dim=0)
        return batch

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        """``VideoMAEForPreTraining`` on normalised ``(B, T, C, H, W)`` clips; a fresh tube mask unless given."""
        if mask is None:
            mask = tube_mask(video.shape[0], *self.mask_shape, self.hparams.mask_ratio, video.device)
        return self.model(pixel_values=video, bool_masked_pos=mask)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        self._account(batch)
        if batch["video"] is None:  # nothing decodable: a zero loss keeps DDP ranks in step
            return self._skip_loss()
        # float32 pixels: the reconstruction targets (per-patch mean and std) are computed from them; the
        # encoder and decoder still run in bf16 under autocast
        loss = self(batch["video"].float()).loss.float()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["video"]))
        return loss

    def on_train_epoch_end(self) -> None:
        self._check_failures()

    # ------------------------------------------------------------------ optimisation
    def effective_batch_size(self) -> int:
        """Clips per optimizer step over all devices, repeated samples included (what the LR is scaled by)."""
        dm = getattr(self.trainer, "datamodule", None)
        per_device = int(getattr(dm, "batch_size", 1) or 1)
        return (per_device * self.hparams.repeated_sampling * self.trainer.world_size
                * self.trainer.accumulate_grad_batches)

    def configure_optimizers(self) -> Any:
        h = self.hparams
        lr = h.learning_rate
        if lr is None:
            lr = h.base_learning_rate * self.effective_batch_size() / 256
        log.info("flashvid pretrain: AdamW lr %.3g (effective batch %d), betas %s, weight decay %g", lr,
                 self.effective_batch_size(), tuple(h.betas), h.weight_decay)
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                # no decay on biases, norms, the mask token (VideoMAE's no_weight_decay list) and 1-d tensors
                (no_decay if p.ndim <= 1 or name.endswith(".bias") or "mask_token" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": h.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = {"fused": True} if self.device.type == "cuda" else {}
        opt = torch.optim.AdamW(groups, lr=lr, betas=tuple(h.betas), **fused)
        sched = warmup_decay_scheduler(opt, int(self.trainer.estimated_stepping_batches), h.warmup_ratio,
                                       h.min_lr_ratio)  # VideoMAE: cosine
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hyper_parameters"] = {**checkpoint.get("hyper_parameters", {}), "compile": False}
        checkpoint["flashvid"] = {"data_config": self.data_config.to_dict(), "task": "videomae_pretraining"}

    # ------------------------------------------------------------------ the result
    def encoder(self) -> nn.Module:
        """The encoder as a fine-tuning ``VideoMAEModel`` (mean-pooling configuration, no final norm)."""
        import transformers

        config = transformers.VideoMAEConfig.from_dict({**self.vmae_config.to_dict(), "use_mean_pooling": True})
        encoder = transformers.VideoMAEModel(config)
        state = {k: v for k, v in self.model.videomae.state_dict().items() if not k.startswith("layernorm.")}
        encoder.load_state_dict(state, strict=True)
        return encoder

    def save_encoder(self, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the encoder with ``save_pretrained`` plus a preprocessor config (mean/std, size) and
        ``flashvid_pretraining.json`` (clip settings, hyperparameters): ``pretrained=DIR`` of ``videomae_*``."""
        import transformers

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder().save_pretrained(directory)
        cfg = self.data_config
        transformers.VideoMAEImageProcessor(
            image_mean=list(cfg.mean), image_std=list(cfg.std), size={"shortest_edge": cfg.short_side},
            crop_size={"height": cfg.crop_size, "width": cfg.crop_size}).save_pretrained(directory)
        record = {"task": "videomae_pretraining", "backbone": self.hparams.backbone,
                  "data_config": cfg.to_dict(), "mask_ratio": self.hparams.mask_ratio,
                  "norm_pix_loss": self.hparams.norm_pix_loss, **dict(extra or {})}
        (directory / "flashvid_pretraining.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        return directory


# ---------------------------------------------------------------------------------------------------- data
def unlabelled_data(videos: str | os.PathLike | Sequence[str | os.PathLike], **kwargs: Any) -> VideoClassificationData:
    """Every video under ``videos`` (files and/or folders, any layout, searched recursively) as training data."""
    for p in [videos] if isinstance(videos, (str, os.PathLike)) else videos:
        if not os.path.exists(p):
            raise FileNotFoundError(f"videos: {str(p)!r} does not exist: pass files or folders of videos")
    return VideoClassificationData(train=collect_paths(videos), labels=[], **kwargs)
