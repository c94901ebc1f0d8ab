"""The backbone zoo: every registered entry builds, runs forward and backward, and declares its clip settings;
pretrained weights load from local copies and fail fast (never silently random) when they cannot be fetched."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from flashvid import VideoClassifier
from flashvid.models import (
    BackboneSpec,
    PretrainedWeightsUnavailable,
    create_backbone,
    get_backbone_spec,
    list_backbones,
)

NUM_CLASSES = 3
ALL_BACKBONES = list_backbones()
# a batch of 2 catches batch-dimension mix-ups; these are big enough that one clip is plenty
BATCH_OF_ONE = {"mvit_v1_b", "mvit_v2_s", "videomae_large", "videomae_huge", "slowfast_r101", "csn_r101"}


ZOO = {
    "pytorchvideo": ["c2d_r50", "csn_r101", "efficient_x3d_s", "efficient_x3d_xs", "i3d_r50", "mvit_base_16x4",
                     "mvit_base_32x3", "r2plus1d_r50", "slow_r50", "slowfast_r101", "slowfast_r50", "x3d_l", "x3d_m",
                     "x3d_s", "x3d_xs"],
    "torchvision": ["mc3_18", "mvit_v1_b", "mvit_v2_s", "r2plus1d_18", "r3d_18", "s3d", "swin3d_b", "swin3d_s",
                    "swin3d_t"],
    "transformers": ["timesformer_base", "videomae_base", "videomae_huge", "videomae_large", "videomae_small",
                     "vivit_b_16x2", "vjepa2_vitl", "vjepa2_vitl_ssv2", "videoprism_base", "videoprism_large"],
    "timm": ["tsn_resnet50", "tsm_resnet50", "tsm_resnet18", "tsn_convnext_tiny"],
    "flashvid": ["tiny_r2plus1d"],
}


def test_registry_has_the_whole_zoo():
    """The documented entries, each under its family (flashvid's own models may grow)."""
    families = {get_backbone_spec(n).family for n in ALL_BACKBONES}
    for family, names in ZOO.items():
        assert set(names) <= set(list_backbones(family=family)), family
    assert families == {"pytorchvideo", "torchvision", "transformers", "flashvid", "timm"}
    assert list_backbones("x3d_*") == ["x3d_l", "x3d_m", "x3d_s", "x3d_xs"]
    assert set(list_backbones(family="transformers")) == {n for n in ALL_BACKBONES
                                                          if get_backbone_spec(n).family == "transformers"}


def _check_declared_settings(spec: BackboneSpec) -> None:
    d = spec.data
    assert d.num_frames >= 1 and d.sampling_rate > 0 and d.crop_size >= 32
    assert d.short_side >= d.crop_size
    assert len(d.mean) == 3 and len(d.std) == 3
    assert all(0 <= m < 1 for m in d.mean) and all(0 < s <= 1 for s in d.std)  # VideoPrism: 0 and 1
    assert spec.layout in ("BCTHW", "BTCHW")
    if spec.name.startswith("slowfast"):
        assert spec.slowfast_alpha and d.num_frames % spec.slowfast_alpha == 0
    else:
        assert spec.slowfast_alpha is None
    summary = spec.summary()
    assert {"frames", "sampling_rate", "crop_size", "mean", "std", "layout", "slowfast_alpha"} <= set(summary)


@pytest.mark.parametrize("name", ALL_BACKBONES)
def test_backbone_builds_forward_backward(name: str):
    """Random init at the entry's reduced test size: logits of num_classes, a gradient for every parameter,
    and stages that cover every parameter once with the head last (what finetuning and layer decay rely on)."""
    spec = get_backbone_spec(name)
    _check_declared_settings(spec)
    frames, size = spec.test_input
    torch.manual_seed(0)
    backbone = create_backbone(name, NUM_CLASSES, pretrained=False, **spec.test_kwargs)
    batch = 1 if name in BATCH_OF_ONE else 2
    video = torch.randn(batch, frames, 3, size, size)  # flashvid's layout, whatever the model's own is

    logits = backbone(video)
    assert logits.shape == (batch, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()

    no_grad = [n for n, p in backbone.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"{name}: parameters without a finite gradient: {no_grad[:5]}"
    head_params = list(backbone.head.parameters())
    assert head_params and any(p.grad.abs().sum() > 0 for p in head_params)

    owner: dict[int, int] = {}
    for i, stage in enumerate(backbone.stages):
        for p in stage.parameters():
            assert id(p) not in owner, f"{name}: a parameter sits in stages {owner[id(p)]} and {i}"
            owner[id(p)] = i
    outside = [n for n, p in backbone.named_parameters() if id(p) not in owner]
    assert not outside, f"{name}: parameters in no stage (never unfrozen by finetune strategies): {outside[:5]}"
    assert all(owner[id(p)] == len(backbone.stages) - 1 for p in head_params)


def test_slowfast_feeds_both_pathways():
    spec = get_backbone_spec("slowfast_r50")
    backbone = create_backbone("slowfast_r50", NUM_CLASSES)
    slow, fast = backbone.to_model_input(torch.randn(1, 8, 3, 32, 32))
    assert fast.shape == (1, 3, 8, 32, 32)  # (B, C, T, H, W) for PyTorchVideo
    assert slow.shape == (1, 3, 8 // spec.slowfast_alpha, 32, 32)


def test_unknown_backbone_lists_names_and_suggests():
    with pytest.raises(ValueError) as err:
        create_backbone("x3d_xxs", NUM_CLASSES)
    msg = str(err.value)
    assert "Did you mean x3d_xs" in msg
    assert all(name in msg for name in ALL_BACKBONES)
    with pytest.raises(ValueError, match="videomae_base"):
        VideoClassifier(backbone="videomae_bse", num_classes=NUM_CLASSES)


def test_num_classes_must_be_positive():
    with pytest.raises(ValueError, match="num_classes"):
        create_backbone("tiny_r2plus1d", 0)


# ---------------------------------------------------------------------------------------------- pretrained weights
def _online() -> bool:
    import socket

    for host in ("huggingface.co", "download.pytorch.org"):
        try:
            socket.create_connection((host, 443), timeout=3).close()
            return True
        except OSError:
            pass
    return False


offline_only = pytest.mark.skipif(_online(), reason="needs a machine without network (it would download weights)")


@offline_only
@pytest.mark.parametrize("name, weights_named_as", [
    ("x3d_xs", "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_XS.pyth"),
    ("r3d_18", "R3D_18_Weights.KINETICS400_V1"),
    ("videomae_small", "MCG-NJU/videomae-small-finetuned-kinetics"),
    ("vjepa2_vitl", "facebook/vjepa2-vitl-fpc64-256"),
    ("videoprism_base", "google/videoprism-base-f16r288"),
    ("tsm_resnet50", "timm/resnet50.a1_in1k"),
])
def test_pretrained_offline_fails_fast(name: str, weights_named_as: str, tmp_path: Path, monkeypatch):
    """This machine is offline and the caches are empty: loading must raise at once, say which weights and how to
    pass a local copy, and never hand back a randomly initialised model."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torch.hub cache
    kwargs = {"cache_dir": str(tmp_path / "hf")} if get_backbone_spec(name).family == "transformers" else {}
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        create_backbone(name, NUM_CLASSES, pretrained=True, **kwargs)
    elapsed = time.perf_counter() - start
    msg = str(err.value)
    assert weights_named_as in msg
    assert "pretrained=" in msg and "pretrained=False" in msg
    assert elapsed < 15, f"took {elapsed:.1f}s to notice it is offline"


@offline_only
def test_pretrained_hub_id_as_backbone_fails_fast_offline(tmp_path: Path):
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable, match="MCG-NJU/videomae-base"):
        get_backbone_spec("MCG-NJU/videomae-base")
    assert time.perf_counter() - start < 15


@offline_only
def test_pytorchvideo_weights_from_the_cache_path_the_error_names(tmp_path: Path, monkeypatch):
    """Placing a file where the offline error says makes pretrained=True load it (and a local path works too)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        create_backbone("x3d_xs", NUM_CLASSES, pretrained=True)
    cache_path = Path(re.search(r"place the file at (\S+?)\)", str(err.value)).group(1))

    import pytorchvideo.models.hub as hub

    torch.manual_seed(1)
    reference = hub.x3d_xs(pretrained=False)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": reference.state_dict()}, cache_path)

    for pretrained in (True, str(cache_path)):
        loaded = create_backbone("x3d_xs", NUM_CLASSES, pretrained=pretrained)
        _assert_same_except_head(reference.state_dict(), loaded.model.state_dict(), head_prefix="blocks.5.proj")
        assert loaded.head.out_features == NUM_CLASSES


def test_torchvision_weights_from_local_file(tmp_path: Path):
    import torchvision

    torch.manual_seed(2)
    reference = torchvision.models.video.r3d_18()
    path = tmp_path / "r3d_18.pth"
    torch.save(reference.state_dict(), path)
    loaded = create_backbone("r3d_18", NUM_CLASSES, pretrained=str(path))
    _assert_same_except_head(reference.state_dict(), loaded.model.state_dict(), head_prefix="fc.")
    assert loaded.head.out_features == NUM_CLASSES
    with pytest.raises(FileNotFoundError, match="no-such.pth"):
        create_backbone("r3d_18", NUM_CLASSES, pretrained=str(tmp_path / "no-such.pth"))


def _assert_same_except_head(saved: dict, loaded: dict, head_prefix: str) -> None:
    body = [k for k in saved if not k.startswith(head_prefix)]
    assert body, "nothing to compare"
    for k in body:
        assert torch.equal(saved[k], loaded[k]), f"{k} was not loaded"
    head = [k for k in saved if k.startswith(head_prefix) and k.endswith("weight")]
    assert head and all(saved[k].shape != loaded[k].shape for k in head), "the head should be fresh"


# ---------------------------------------------------------------------------------------------- transformers dirs
def _tiny_videomae(tmp_path: Path, model_cls_name: str, num_labels: int = 5) -> tuple[Path, dict]:
    """A small VideoMAE (4 frames at 32 px) saved with save_pretrained, plus a preprocessor config."""
    import transformers

    config = transformers.VideoMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, num_frames=4, image_size=32, patch_size=16,
                                         tubelet_size=2, num_labels=num_labels)
    torch.manual_seed(3)
    model = getattr(transformers, model_cls_name)(config)
    path = tmp_path / model_cls_name
    model.save_pretrained(path)
    transformers.VideoMAEImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.3, 0.2, 0.1]).save_pretrained(path)
    return path, model.state_dict()


@pytest.mark.parametrize("saved_as", ["VideoMAEForVideoClassification", "VideoMAEForPreTraining"])
def test_videomae_from_a_save_pretrained_directory(saved_as: str, tmp_path: Path):
    """As pretrained= of a registered name and as the backbone name itself: the saved weights arrive (a fresh
    head aside), the clip settings follow the checkpoint, and the labels reach the HF config."""
    path, saved = _tiny_videomae(tmp_path, saved_as)
    labels = ["walk", "run", "jump"]
    by_name = VideoClassifier(backbone="videomae_small", pretrained=str(path), labels=labels)
    by_dir = VideoClassifier(backbone=str(path), pretrained=True, labels=labels)

    for clf in (by_name, by_dir):
        loaded = clf.backbone.model.state_dict()
        encoder = [k for k in saved if k.startswith("videomae.")]
        assert len(encoder) > 10
        for k in encoder:
            assert torch.equal(saved[k], loaded[k]), f"{k} was not loaded"
        assert clf.backbone.head.weight.shape == (len(labels), 32)
        if "classifier.weight" in saved:
            assert saved["classifier.weight"].shape != loaded["classifier.weight"].shape
        config = clf.backbone.model.config
        assert config.id2label == {0: "walk", 1: "run", 2: "jump"}
        assert config.label2id == {"walk": 0, "run": 1, "jump": 2}
        assert (clf.data_config.num_frames, clf.data_config.crop_size) == (4, 32)  # the checkpoint's, not 16x224
        assert clf(torch.randn(1, 4, 3, 32, 32)).shape == (1, len(labels))
    assert by_dir.data_config.mean == pytest.approx((0.1, 0.2, 0.3))  # from its preprocessor_config.json

    # the checkpoint's architecture at random init when weights are not asked for
    random_init = VideoClassifier(backbone=str(path), pretrained=False, labels=labels)
    weight = "videomae.encoder.layer.0.attention.attention.query.weight"
    assert random_init.backbone.model.state_dict()[weight].shape == saved[weight].shape
    assert not torch.equal(random_init.backbone.model.state_dict()[weight], saved[weight])


def test_not_a_checkpoint_directory(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a transformers checkpoint"):
        create_backbone("videomae_small", NUM_CLASSES, pretrained=str(tmp_path / "empty"))


def test_builder_kwargs_that_change_the_clip_reach_the_data_settings():
    """VideoMAE built for 8 frames at 64 px must ask the datamodule for exactly that."""
    clf = VideoClassifier("videomae_small", num_classes=2,
                          backbone_kwargs=dict(num_frames=8, image_size=64, num_hidden_layers=1))
    assert (clf.data_config.num_frames, clf.data_config.crop_size) == (8, 64)
    assert math.isclose(clf.data_config.short_side / 64, get_backbone_spec("videomae_small").data.short_side / 224,
                        rel_tol=0.05)
    assert clf(torch.randn(1, 8, 3, 64, 64)).shape == (1, 2)


def test_registry_entry_is_not_changed_by_a_build():
    before = get_backbone_spec("mvit_base_16x4").data.to_dict()
    spec = get_backbone_spec("mvit_base_16x4")
    backbone = create_backbone("mvit_base_16x4", NUM_CLASSES, **spec.test_kwargs)
    assert backbone.spec.data.num_frames == spec.test_input[0] and backbone.spec.data.crop_size == spec.test_input[1]
    assert get_backbone_spec("mvit_base_16x4").data.to_dict() == before


@pytest.mark.parametrize("name", ["tiny_r2plus1d", "s3d", "videomae_small"])
def test_replacing_the_head_changes_what_forward_runs(name: str):
    """``backbone.head = layer`` swaps the layer inside the wrapped model and in the stage list."""
    spec = get_backbone_spec(name)
    backbone = create_backbone(name, NUM_CLASSES, **spec.test_kwargs)
    old = backbone.head
    calls = []
    new = nn.Sequential(nn.Identity(), old.__class__(*_same_io(old, 7)))
    new.register_forward_hook(lambda *_: calls.append(1))
    backbone.head = new
    frames, size = spec.test_input
    out = backbone(torch.randn(1, frames, 3, size, size))
    assert calls and out.shape == (1, 7)
    assert backbone.head is new
    assert any(m is new for m in backbone.stages[-1].modules())
    assert not any(m is old for m in backbone.modules())


def _same_io(layer: nn.Module, out: int) -> tuple:
    if isinstance(layer, nn.Linear):
        return (layer.in_features, out)
    return (layer.in_channels, out, layer.kernel_size)
