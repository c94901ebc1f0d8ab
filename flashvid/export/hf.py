"""``format=hf``: a transformers model directory that loads without flashvid.

``transformers.pipeline("video-classification", model=DIR)`` reads ``config.json`` (architecture, ``id2label``,
``num_frames``, ``problem_type``), ``model.safetensors``, and the processor configs, which carry flashvid's
evaluation transform: the short side resized to ``data.short_side``, a centre crop of ``crop_size``, values
rescaled by 1/255 and normalised with the backbone's mean/std.

Frame sampling differs and cannot be set from a JSON file: transformers' video processor spreads
``config.num_frames`` frames evenly over the whole file (frame ``i * total / num_frames``), while flashvid predicts
on one centre clip of ``num_frames`` frames ``stride`` apart (``sampling_rate`` at 30 fps). Both take the same
frames when a file is exactly one clip long (``num_frames x stride`` frames, a trimmed clip as in Kinetics-style
datasets cut to the training clip); on longer files the pipeline sees a wider span. The model card says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from .safetensors import write_config

PROCESSORS = {  # model_type -> (image processor, video processor) classes in transformers
    "videomae": ("VideoMAEImageProcessor", "VideoMAEVideoProcessor"),
    "timesformer": ("VideoMAEImageProcessor", "VideoMAEVideoProcessor"),  # transformers maps it so too
    "vivit": ("VivitImageProcessor", "VivitVideoProcessor"),
}


def export_hf(model: Any, out: Path, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Save ``model``'s transformers model, processor configs and a model card (README.md) into ``out``."""
    from .formats import ExportError

    backbone = model.backbone
    hf_model = backbone.model
    config: Any = getattr(hf_model, "config", None)
    model_type = getattr(config, "model_type", None)
    if config is None or backbone.spec.family != "transformers" or model_type not in PROCESSORS:
        raise ExportError(
            f"format=hf needs a transformers backbone (VideoMAE, TimeSformer, ViViT); {model.hparams.backbone!r} "
            f"is a {backbone.spec.family} model that transformers cannot rebuild. Use format=onnx, torch_export or "
            "safetensors")
    head = getattr(hf_model, "classifier", None)
    if not isinstance(head, nn.Linear) or head.out_features != model.num_classes:
        raise ExportError(
            f"format=hf: the classifier head is {type(head).__name__}, not the Linear({model.num_classes}) that "
            f"{type(hf_model).__name__} rebuilds from config.json (configure_head replaced it). Use format=onnx, "
            "torch_export or safetensors")
    labels = list(model.labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    config.problem_type = "multi_label_classification" if getattr(model, "multi_label", False) \
        else "single_label_classification"
    hf_model.save_pretrained(str(out))

    data = model.data_config
    settings = {
        "do_resize": True, "size": {"shortest_edge": int(data.short_side)}, "do_center_crop": True,
        "crop_size": {"height": int(data.crop_size), "width": int(data.crop_size)}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(data.mean), "image_std": list(data.std),
        "resample": 2,  # bilinear, as flashvid's resize
    }
    import transformers

    image_cls, video_cls = (getattr(transformers, n) for n in PROCESSORS[model_type])
    extra = {}
    if model_type == "vivit":
        # ViViT's video processor always subtracts 1 after rescaling (its [-1, 1] "offset"): (x/255 - 1 - (m - 1))
        # / s is flashvid's (x/255 - m) / s, so the mean is stored shifted by -1 and the image processor offsets too
        settings["image_mean"] = [m - 1.0 for m in data.mean]
        extra = {"offset": True}
    image_cls(**settings, **extra).save_pretrained(str(out))
    video_cls(**settings, num_frames=int(config.num_frames)).save_pretrained(str(out))
    write_config(model, out, exported_as="hf")
    (out / "README.md").write_text(model_card(model, card or {}))
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return {"format": "hf", "directory": str(out), "files": files, "model_type": model_type}


def model_card(model: Any, facts: Mapping[str, Any]) -> str:
    """A Hugging Face model card: front matter, labels, input, how to use, data and metrics when known."""
    data = model.data_config
    labels = list(model.labels)
    multi = bool(getattr(model, "multi_label", False))
    stride = f"{data.sampling_rate:g} frames at {data.target_fps:g} fps" if data.target_fps else \
        f"{data.sampling_rate:g} source frames"
    if data.clip_duration:
        stride = f"{data.num_frames} frames over {data.clip_duration:g} s"
    lines = [
        "---", "library_name: transformers", "pipeline_tag: video-classification",
        "tags:", "- video-classification", "- flashvid", "---", "",
        f"# {model.hparams.backbone} video classifier ({len(labels)} classes)", "",
        f"Fine-tuned with flashvid from the `{model.hparams.backbone}` backbone"
        f"{' as a multi-label classifier (sigmoid per class)' if multi else ''}.", "",
        "## Use", "", "```python", "from transformers import pipeline", "",
        'classifier = pipeline("video-classification", model="PATH_OR_HUB_ID")',
        'print(classifier("clip.mp4", top_k=5))', "```", "",
        "## Input", "",
        f"- {data.num_frames} frames per clip, {data.crop_size}x{data.crop_size} px: short side resized to "
        f"{data.short_side}, centre crop, RGB scaled to [0, 1], normalised with mean {list(data.mean)} and std "
        f"{list(data.std)} (`preprocessor_config.json`, `video_preprocessor_config.json`).",
        f"- Trained on clips of {data.num_frames} frames, one every {stride}. transformers' pipeline spreads the "
        f"{data.num_frames} frames over the whole file, so it sees the same frames as `flashvid predict` on files "
        "one clip long; on longer files pass trimmed clips, or use `flashvid predict` (centre clip) or "
        "`flashvid predict window=...` for timelines.", "",
        f"## Labels ({len(labels)})", "", ", ".join(f"`{x}`" for x in labels), "",
    ]
    if facts.get("data"):
        lines += ["## Training data", ""] + [f"- {k}: `{v}`" for k, v in facts["data"].items()] + [""]
    results = []
    if facts.get("epochs") is not None:
        results.append(f"- epochs: {facts['epochs']}")
    if facts.get("best_val_acc") is not None:
        results.append(f"- best validation score: {facts['best_val_acc']:.4f}")
    for k, v in (facts.get("test") or {}).items():
        results.append(f"- {k}: {v:.4f}")
    lines += ["## Results", ""] + (results or ["No evaluation was recorded with this checkpoint."]) + [""]
    lines += ["## flashvid settings", "", "```json", json.dumps(data.to_dict(), indent=2), "```", ""]
    return "\n".join(lines)
