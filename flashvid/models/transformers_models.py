"""transformers' video transformers: VideoMAE, TimeSformer, ViViT, by registered name or any checkpoint.

``pretrained=True`` loads the Kinetics-400 fine-tuned checkpoint of the name from the Hugging Face hub;
``pretrained="<dir or hub id>"`` loads that checkpoint (e.g. the self-supervised ``MCG-NJU/videomae-base`` the
HF tutorial starts from). A local directory saved with ``save_pretrained`` also works as the backbone name itself.
Loading never uses ``trust_remote_code``. SDPA attention is used where the architecture supports it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import urllib.parse
import urllib.request
from typing import Any, Callable

from torch import nn

from ..data.clip_config import DataConfig
from .registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    BackboneSpec,
    VideoBackbone,
    offline_error,
    register_backbone,
)

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class HFFamily:
    """How flashvid drives one transformers video classifier: its classes, where its encoder sits, the config keys
    of its clip, and the tensors a new head may leave freshly initialised."""

    config: str
    model: str
    base: str  # the encoder's attribute on the classification model
    frames_key: str = "num_frames"
    size_key: str = "image_size"
    input_name: str = "pixel_values"
    fresh: tuple[str, ...] = ()  # head tensors besides ``classifier.`` (new for another number of classes)
    forward_kwargs: tuple[tuple[str, Any], ...] = ()


_FAMILY = {
    "videomae": HFFamily("VideoMAEConfig", "VideoMAEForVideoClassification", "videomae",
                         fresh=("fc_norm.", "videomae.layernorm.")),
    "timesformer": HFFamily("TimesformerConfig", "TimesformerForVideoClassification", "timesformer",
                            fresh=("timesformer.layernorm.",)),
    "vivit": HFFamily("VivitConfig", "VivitForVideoClassification", "vivit", fresh=("vivit.layernorm.",)),
    # V-JEPA 2's self-supervised checkpoints have no attentive pooler: it is trained with the head
    "vjepa2": HFFamily("VJEPA2Config", "VJEPA2ForVideoClassification", "vjepa2", frames_key="frames_per_clip",
                       size_key="crop_size", input_name="pixel_values_videos", fresh=("pooler.", "vjepa2.predictor.")),
    # VideoPrism's learned position embeddings are interpolated to the clip fed (its own option), so data.num_frames
    # and data.crop_size can differ from the checkpoint's 16x288
    "videoprism_vision_model": HFFamily("VideoPrismVisionConfig", "VideoPrismForVideoClassification", "vision_model",
                                        input_name="pixel_values_videos", fresh=("head.", "head_layernorm."),
                                        forward_kwargs=(("interpolate_pos_encoding", True),)),
}
_VIDEOMAE_SIZES = {
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
}


def _classes(model_type: str):
    import transformers

    family = _FAMILY[model_type]
    return getattr(transformers, family.config), getattr(transformers, family.model)


def _with_attention(build, **kw):
    """Build with SDPA attention, falling back to eager for architectures without an SDPA path."""
    try:
        return build(attn_implementation="sdpa", **kw)
    except (ValueError, ImportError):
        return build(**kw)


def _layers(model: nn.Module, model_type: str) -> list[nn.Module]:
    """The encoder's transformer layers, input to output."""
    base = getattr(model, _FAMILY[model_type].base)
    if model_type == "videoprism_vision_model":
        return [*base.spatial_layers, *base.temporal_layers]
    encoder = getattr(base, "encoder", base)  # ViViT names them differently
    return list(encoder.layer if hasattr(encoder, "layer") else encoder.layers)


def _stages(model: nn.Module, model_type: str) -> list[nn.Module]:
    """Embeddings, each encoder layer, then the final norm and head: the order layer decay ranks."""
    base = getattr(model, _FAMILY[model_type].base)
    if model_type == "videoprism_vision_model":  # spatial layers, then the temporal embeddings and layers
        return [base.spatial_embeddings, *base.spatial_layers,
                nn.ModuleList([base.layernorm1, base.temporal_embeddings]), *base.temporal_layers,
                nn.ModuleList([base.layernorm2, model.head, model.head_layernorm, model.classifier])]
    if model_type == "vjepa2":
        return [base.encoder.embeddings, *base.encoder.layer,
                nn.ModuleList([base.encoder.layernorm, model.pooler, model.classifier])]
    tail = [m for m in (getattr(model, "fc_norm", None), getattr(base, "layernorm", None), model.classifier)
            if m is not None]
    return [base.embeddings, *_layers(model, model_type), nn.ModuleList(tail)]


class HFVideoBackbone(VideoBackbone):
    def forward(self, video):  # transformers' video models take (B, T, C, H, W) pixel values
        family = _FAMILY[self.model.config.model_type]
        logits = self.model(**{family.input_name: video}, **dict(family.forward_kwargs)).logits
        return logits.squeeze(1) if logits.dim() == 3 else logits  # VideoPrism's pooling keeps its query axis

    def architecture(self) -> dict[str, Any]:
        """The model config's own fields (width, depth, frames, image size...): weights loaded from a
        ``pretrained=`` directory (a ``flashvid pretrain`` encoder) may have another architecture than the
        registry entry, and a checkpoint must rebuild it without that directory. The generic
        ``PretrainedConfig`` fields (labels, dtype, version) are left out."""
        import transformers

        generic = set(transformers.PretrainedConfig().to_dict())
        return {k: v for k, v in self.model.config.to_dict().items() if k not in generic}


def hub_unreachable(timeout: float = 3.0) -> OSError | None:
    """Why the Hugging Face hub cannot be reached (None when it can, or when a proxy decides).

    huggingface_hub retries a failed connection five times with backoff (~25 s) before giving up; one quick
    connection attempt tells an offline machine apart first, so a missing download fails fast.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return OSError("HF_HUB_OFFLINE is set")
    url = urllib.parse.urlparse(constants.ENDPOINT)
    if urllib.request.getproxies().get(url.scheme) or not url.hostname:
        return None  # only the proxy knows
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
    except OSError as e:
        return e
    return None


def from_hub(load: Callable[..., Any], source: str, **kwargs: Any) -> Any:
    """``load(source, **kwargs)`` from the local cache first, then from the hub if it is reachable.

    Raises ``OSError`` at once when ``source`` is neither cached nor reachable.
    """
    if os.path.isdir(source) or "local_files_only" in kwargs:
        return load(source, **kwargs)
    try:
        return load(source, local_files_only=True, **kwargs)
    except OSError as cached_miss:
        reason = hub_unreachable()
        if reason is not None:
            raise OSError(f"{source!r} is not in the local Hugging Face cache and the hub is unreachable "
                          f"({type(reason).__name__}: {reason})") from cached_miss
    return load(source, **kwargs)


def _load_pretrained(spec: BackboneSpec, source: str, model_type: str, num_classes: int, **kwargs: Any) -> nn.Module:
    _, model_cls = _classes(model_type)
    is_local = os.path.isdir(source)

    def load(src: str, **kw: Any) -> tuple[nn.Module, dict[str, Any]]:
        return _with_attention(model_cls.from_pretrained, pretrained_model_name_or_path=src,
                               output_loading_info=True, **kw)

    try:
        # id2label rather than num_labels: transformers warns when num_labels disagrees with the saved id2label
        id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
        model, info = from_hub(load, source, id2label=id2label, label2id={v: k for k, v in id2label.items()},
                               ignore_mismatched_sizes=True, trust_remote_code=False, **kwargs)
    except OSError as e:
        if is_local:
            raise FileNotFoundError(f"{source!r} is not a transformers checkpoint directory "
                                    f"(config.json + model weights): {e}") from e
        raise offline_error(spec.name, f"the Hugging Face hub id {source!r}", e,
                            f"run `huggingface-cli download {source} --local-dir DIR` and pass pretrained='DIR'"
                            " (or set HF_HOME to a cache that holds it)") from e
    check_loaded(model, info, source, model_type)
    # from_pretrained returns the model in eval mode and Lightning keeps sub-modules' modes: without this, dropout
    # and drop path would stay off while fine-tuning pretrained weights (Lightning warns "modules in eval mode")
    return model.train()


class PretrainedMismatch(ValueError):
    """A checkpoint's encoder tensors are missing or shaped differently from the model being built."""


def check_loaded(model: nn.Module, info: dict[str, Any], source: str, model_type: str) -> int:
    """Log how many tensors came from ``source`` and refuse a checkpoint whose encoder does not fit the model.

    ``ignore_mismatched_sizes=True`` is needed for the new head (another number of classes), but transformers then
    re-initialises ANY tensor whose shape differs and only warns: a ViT-S checkpoint under a ViT-B config would
    train from random weights. Only the head (classifier, the mean-pooling norm) and the final norm may be fresh.
    Returns the number of tensors loaded.
    """
    fresh = ("classifier.", "fc_norm.", *_FAMILY[model_type].fresh)
    names = list(model.state_dict())
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(fresh))
    mismatched = sorted((k, tuple(a), tuple(b)) for k, a, b in info.get("mismatched_keys", ())
                        if not k.startswith(fresh))
    if missing or mismatched:
        detail = "; ".join([f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched[:3]]
                           + [f"{k}: not in the checkpoint" for k in missing[:3]])
        raise PretrainedMismatch(
            f"{source!r} does not fit the {model_type} model being built: {len(mismatched)} tensor(s) of another "
            f"shape and {len(missing)} missing outside the head (e.g. {detail}). Build the checkpoint's own "
            f"architecture: drop the backbone_kwargs that change it, or use model.backbone={source} "
            f"(its config.json decides the size)")
    new = sorted({k for k in info.get("missing_keys", ())} | {k for k, _, _ in info.get("mismatched_keys", ())})
    loaded = len(names) - len(new)
    log.info("flashvid: loaded %d of %d tensors from %s; newly initialised: %s", loaded, len(names), source,
             ", ".join(new) or "none")
    return loaded


def clip_of(cfg: Any) -> tuple[int, int]:
    """(frames, crop size) a transformers video config takes."""
    family = _FAMILY[cfg.model_type]
    size = getattr(cfg, family.size_key)
    return getattr(cfg, family.frames_key), size if isinstance(size, int) else size[0]


def _spec_for_model(spec: BackboneSpec, model: nn.Module) -> BackboneSpec:
    """``spec`` with the frames and crop size the built model takes (a checkpoint or builder kwargs may differ
    from the registry entry), so the datamodule feeds clips the model accepts."""
    frames, size = clip_of(model.config)
    data = spec.data
    if (frames, size) == (data.num_frames, data.crop_size):
        return spec
    resize = None if data.resize_size is None else round(data.resize_size * size / data.crop_size)
    return dataclasses.replace(spec, data=dataclasses.replace(data, num_frames=frames, crop_size=size,
                                                              resize_size=resize))


def _source_grid(source: str, model_type: str, kwargs: dict[str, Any]) -> tuple[int, int, int] | None:
    """The VideoMAE token grid the checkpoint's weights learned their positions on, when ``kwargs`` change it
    (another clip length or size than the checkpoint's); None when they do not."""
    from .videomae_positions import GRID_KEYS, token_grid

    if model_type != "videomae" or not GRID_KEYS & set(kwargs):
        return None
    cfg_cls, _ = _classes(model_type)
    saved = from_hub(cfg_cls.from_pretrained, source)
    return tuple(getattr(saved, "position_grid", None) or token_grid(saved))  # type: ignore[return-value]


def _build_hf(spec: BackboneSpec, num_classes: int, pretrained: bool | str, *, model_type: str,
              config: dict[str, Any], load_overrides: dict[str, Any] | None = None, **kwargs: Any) -> VideoBackbone:
    cfg_cls, model_cls = _classes(model_type)
    # drop path is put in after building (models/drop_path.py says why)
    inserted_drop_path = kwargs.pop("drop_path_rate", 0.0)
    if pretrained:
        source = spec.weights if pretrained is True else pretrained
        if source is None:
            raise ValueError(f"{spec.name} has no published weights; pass pretrained=False or a checkpoint")
        kwargs = {**(load_overrides or {}), **kwargs}
        grid = None
        try:
            grid = _source_grid(source, model_type, kwargs)
        except OSError:
            pass  # _load_pretrained names the missing checkpoint
        model = _load_pretrained(spec, source, model_type, num_classes, **kwargs)
        if grid:
            model.config.position_grid = list(grid)
    else:
        settings = {k: v for k, v in {**config, **kwargs}.items() if k not in ("id2label", "label2id", "num_labels")}
        model = _random_init(model_cls, cfg_cls(**settings, num_labels=num_classes))
    if model_type == "videomae":
        from .videomae_positions import apply_position_grid

        apply_position_grid(model)
    if model_type == "vjepa2":
        # the self-supervised predictor is never run by the classifier: its ~20% of the weights would sit in memory,
        # the optimizer and every checkpoint without a gradient
        model.vjepa2.predictor = None
    if inserted_drop_path:
        from .drop_path import insert_drop_path

        insert_drop_path(_layers(model, model_type), inserted_drop_path)
    return HFVideoBackbone(model, _spec_for_model(spec, model), model.classifier, _stages(model, model_type))


def _random_init(model_cls, cfg) -> nn.Module:
    cfg._attn_implementation = "sdpa"
    try:
        return model_cls(cfg)
    except (ValueError, ImportError):  # no SDPA path for this architecture
        cfg._attn_implementation = "eager"
        return model_cls(cfg)


def _register_hf(name: str, model_type: str, config: dict[str, Any], weights: str, num_frames: int,
                 sampling_rate: float, mean, std, test_kwargs: dict[str, Any], test_input: tuple[int, int],
                 description: str, load_overrides: dict[str, Any] | None = None) -> None:
    def builder(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
        return _build_hf(spec, num_classes, pretrained, model_type=model_type, config=config,
                         load_overrides=load_overrides, **kwargs)

    builder.__doc__ = description
    register_backbone(name, family="transformers", layout="BTCHW", num_frames=num_frames,
                      sampling_rate=sampling_rate, crop_size=config.get(_FAMILY[model_type].size_key, 224),
                      mean=mean, std=std, weights=weights, test_input=test_input, test_kwargs=test_kwargs,
                      description=description)(builder)


# The test size keeps each entry's width; large and huge keep 2 of their 24 and 32 layers (their random init alone
# took 5 and 9 CPU seconds of the zoo test, for layers identical to the first two).
_TEST_DEPTH = {"large": dict(num_hidden_layers=2), "huge": dict(num_hidden_layers=2)}
for _size, _arch in _VIDEOMAE_SIZES.items():
    _register_hf(f"videomae_{_size}", "videomae", dict(num_frames=16, image_size=224, **_arch),
                 f"MCG-NJU/videomae-{_size}-finetuned-kinetics", 16, 4, IMAGENET_MEAN, IMAGENET_STD,
                 test_kwargs=dict(num_frames=4, image_size=32, **_TEST_DEPTH.get(_size, {})), test_input=(4, 32),
                 description=f"VideoMAE ViT-{_size[0].upper()} 16x224 (Kinetics-400 fine-tuned weights)")

_register_hf("timesformer_base", "timesformer", dict(num_frames=8, image_size=224),
             "facebook/timesformer-base-finetuned-k400", 8, 32, KINETICS_MEAN, KINETICS_STD,
             test_kwargs=dict(num_frames=2, image_size=32, num_hidden_layers=2), test_input=(2, 32),
             description="TimeSformer-Base 8x224, divided space-time attention (Kinetics-400)")

_register_hf("vivit_b_16x2", "vivit", dict(num_frames=32, image_size=224),
             "google/vivit-b-16x2-kinetics400", 32, 2, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
             test_kwargs=dict(num_frames=4, image_size=32), test_input=(4, 32),
             description="ViViT-B 16x2 factorised encoder (Kinetics-400)")

# V-JEPA 2: 3D RoPE (no position table, any clip length; the crop size sets the rotary grid), attentive pooling
# head. Processor: ImageNet mean/std, 256 crop of a 292 short side. The self-supervised encoder was pretrained on
# 64-frame clips; fine-tuning feeds 16 (V-JEPA 2's own probes, frame step 4), so the entry says 16.
_VJEPA2_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_pooler_layers=1,
                    pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=4, crop_size=32,
                    frames_per_clip=4)
_VJEPA2_L = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, crop_size=256, frames_per_clip=16)
_register_hf("vjepa2_vitl", "vjepa2", _VJEPA2_L, "facebook/vjepa2-vitl-fpc64-256", 16, 4, IMAGENET_MEAN,
             IMAGENET_STD, test_kwargs=_VJEPA2_TINY, test_input=(4, 32), load_overrides=dict(frames_per_clip=16),
             description="V-JEPA 2 ViT-L 16x256, self-supervised encoder (the attentive pooler and head are new)")
_register_hf("vjepa2_vitl_ssv2", "vjepa2", _VJEPA2_L, "facebook/vjepa2-vitl-fpc16-256-ssv2", 16, 4, IMAGENET_MEAN,
             IMAGENET_STD, test_kwargs=_VJEPA2_TINY, test_input=(4, 32),
             description="V-JEPA 2 ViT-L 16x256 with its attentive probe trained on Something-Something v2")

# VideoPrism: factorised encoder (spatial ViT per frame, then temporal layers), attention-pooling head. Its
# processor does not normalise (pixels in [0, 1]): mean 0, std 1. Position embeddings are interpolated to the clip.
_VIDEOPRISM_TINY = dict(hidden_size=64, num_spatial_layers=2, num_temporal_layers=1, num_attention_heads=4,
                        intermediate_size=128, image_size=36, num_frames=4)
_register_hf("videoprism_base", "videoprism_vision_model",
             dict(hidden_size=768, num_spatial_layers=12, num_temporal_layers=4, num_attention_heads=12,
                  intermediate_size=3072, image_size=288, num_frames=16),
             "google/videoprism-base-f16r288", 16, 4, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
             test_kwargs=_VIDEOPRISM_TINY, test_input=(4, 36),
             description="VideoPrism-B 16x288 video encoder (the attention-pooling head is new)")
_register_hf("videoprism_large", "videoprism_vision_model",
             dict(hidden_size=1024, num_spatial_layers=24, num_temporal_layers=4, num_attention_heads=16,
                  intermediate_size=4096, image_size=288, num_frames=8),
             "google/videoprism-large-f8r288", 8, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
             test_kwargs=_VIDEOPRISM_TINY, test_input=(4, 36),
             description="VideoPrism-L 8x288 video encoder (the attention-pooling head is new)")

def _processor_stats(path: str) -> tuple[Any, Any]:
    for fname in ("video_preprocessor_config.json", "preprocessor_config.json"):
        f = os.path.join(path, fname)
        if os.path.isfile(f):
            with open(f) as fh:
                d = json.load(fh)
            if "image_mean" in d and "image_std" in d:
                return tuple(d["image_mean"]), tuple(d["image_std"])
    return None, None


def spec_from_hf_checkpoint(source: str) -> BackboneSpec:
    """An on-the-fly registry entry for a transformers checkpoint directory or hub id."""
    from transformers import AutoConfig

    try:
        cfg = from_hub(AutoConfig.from_pretrained, source, trust_remote_code=False)
    except OSError as e:
        raise offline_error(source, f"{source!r}", e, "pass a local directory saved with save_pretrained") from e
    model_type = cfg.model_type
    if model_type not in _FAMILY:
        raise ValueError(f"{source!r} is a {model_type!r} checkpoint; flashvid loads {sorted(_FAMILY)} ones")
    mean, std = _processor_stats(source) if os.path.isdir(source) else (None, None)
    default_mean, default_std = {"videomae": (IMAGENET_MEAN, IMAGENET_STD), "vjepa2": (IMAGENET_MEAN, IMAGENET_STD),
                                 "vivit": ((0.5,) * 3, (0.5,) * 3),
                                 "videoprism_vision_model": ((0.0,) * 3, (1.0,) * 3)}.get(
        model_type, (KINETICS_MEAN, KINETICS_STD))
    frames, size = clip_of(cfg)
    data = DataConfig(num_frames=frames, sampling_rate={"timesformer": 32, "vivit": 2}.get(model_type, 4),
                      crop_size=size, mean=tuple(mean or default_mean), std=tuple(std or default_std))

    def builder(spec: BackboneSpec, num_classes: int, pretrained: bool | str, **kwargs: Any) -> VideoBackbone:
        if pretrained is False:  # the checkpoint's architecture at random init
            return _build_hf(spec, num_classes, False, model_type=model_type, config=cfg.to_dict(), **kwargs)
        return _build_hf(spec, num_classes, source if pretrained is True else pretrained, model_type=model_type,
                         config={}, **kwargs)

    return BackboneSpec(source, "transformers", builder, data, "BTCHW", weights=source,
                        description=f"transformers {model_type} checkpoint {source}")
