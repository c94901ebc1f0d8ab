"""The backbones added for issue #23: V-JEPA 2 and VideoPrism (transformers), TSN/TSM on timm image networks, and
VideoMAE at another clip grid than its checkpoint. Each loads from a local checkpoint the test writes; their
forward/backward at test size and the offline errors are in test_models.py with every other entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flashvid import VideoClassifier
from flashvid.models import create_backbone, get_backbone_spec
from flashvid.optim import parameter_groups

NUM_CLASSES = 3


def _layer_decay_scales(backbone, decay: float = 0.5) -> list[float]:
    groups = parameter_groups(backbone, lr=1.0, weight_decay=0.05, layer_decay=decay)
    return sorted({g["lr_scale"] for g in groups})


def _assert_layer_decay(backbone, decay: float = 0.5) -> None:
    """One LR scale per stage, decay ** (n - 1 - s); the head at the full rate."""
    n = len(backbone.stages)
    assert _layer_decay_scales(backbone, decay) == pytest.approx(sorted(decay ** (n - 1 - s) for s in range(n)))
    head_ids = {id(p) for p in backbone.head.parameters()}
    for g in parameter_groups(backbone, lr=1.0, weight_decay=0.05, layer_decay=decay):
        if any(id(p) in head_ids for p in g["params"]):
            assert g["lr_scale"] == 1.0


# ------------------------------------------------------------------------------------------------------ V-JEPA 2
def test_vjepa2_from_a_save_pretrained_directory(tmp_path: Path):
    """A tiny V-JEPA 2 encoder saved with save_pretrained loads as pretrained= of vjepa2_vitl: the encoder
    tensors arrive, the predictor is dropped, the clip follows the checkpoint's crop with the entry's 16 frames."""
    import transformers

    config = transformers.VJEPA2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, crop_size=32,
                                       frames_per_clip=8, num_pooler_layers=1, pred_hidden_size=32,
                                       pred_num_hidden_layers=1, pred_num_attention_heads=4)
    torch.manual_seed(0)
    saved = transformers.VJEPA2Model(config)
    saved.save_pretrained(tmp_path / "vjepa2")
    clf = VideoClassifier(backbone="vjepa2_vitl", pretrained=str(tmp_path / "vjepa2"), num_classes=NUM_CLASSES)
    loaded = clf.backbone.model.state_dict()
    encoder = {k: v for k, v in saved.state_dict().items() if k.startswith("encoder.")}
    assert len(encoder) > 10
    for k, v in encoder.items():
        assert torch.equal(v, loaded[f"vjepa2.{k}"]), k
    assert not any(".predictor." in k or k.startswith("vjepa2.predictor") for k in loaded)
    assert (clf.data_config.num_frames, clf.data_config.crop_size) == (16, 32)
    assert clf.data_config.mean == pytest.approx((0.485, 0.456, 0.406))
    assert clf(torch.randn(2, 4, 3, 32, 32)).shape == (2, NUM_CLASSES)  # RoPE: any clip length
    _assert_layer_decay(clf.backbone)


# ---------------------------------------------------------------------------------------------------- VideoPrism
def test_videoprism_from_a_save_pretrained_directory(tmp_path: Path):
    """A tiny VideoPrism vision model (what the published checkpoints hold) loads under the classification head;
    its position embeddings are interpolated to a clip of another length and size."""
    import transformers

    config = transformers.VideoPrismVisionConfig(hidden_size=64, num_spatial_layers=2, num_temporal_layers=1,
                                                 num_attention_heads=4, intermediate_size=128, image_size=36,
                                                 num_frames=4)
    torch.manual_seed(0)
    saved = transformers.VideoPrismVisionModel(config)
    saved.save_pretrained(tmp_path / "videoprism")
    backbone = create_backbone("videoprism_base", NUM_CLASSES, pretrained=str(tmp_path / "videoprism"))
    loaded = backbone.model.state_dict()
    for k, v in saved.state_dict().items():
        assert torch.equal(v, loaded[f"vision_model.{k}"]), k
    assert (backbone.spec.data.num_frames, backbone.spec.data.crop_size) == (4, 36)
    assert backbone.spec.data.mean == (0.0, 0.0, 0.0) and backbone.spec.data.std == (1.0, 1.0, 1.0)
    assert backbone(torch.randn(2, 6, 3, 54, 54)).shape == (2, NUM_CLASSES)
    _assert_layer_decay(backbone)


# ------------------------------------------------------------------------------------------------ VideoMAE grids
def test_videomae_at_another_clip_grid_than_its_checkpoint(tmp_path: Path):
    """Saved at 8 frames x 64 px, loaded at 4 x 96: the position table is the checkpoint's (4x4x4 tokens)
    resampled to the new 2x6x6 grid, not the 1D table of 72 tokens; a flashvid checkpoint rebuilds the same
    table from the recorded architecture, and a training step changes the predictions."""
    import transformers
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    from flashvid.models.videomae_positions import resampled_table

    config = transformers.VideoMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, num_frames=8, image_size=64, patch_size=16,
                                         tubelet_size=2, num_labels=5)
    torch.manual_seed(0)
    transformers.VideoMAEForVideoClassification(config).save_pretrained(tmp_path / "mae")
    clf = VideoClassifier(backbone="videomae_small", pretrained=str(tmp_path / "mae"), num_classes=NUM_CLASSES,
                          backbone_kwargs=dict(num_frames=4, image_size=96))
    assert (clf.data_config.num_frames, clf.data_config.crop_size) == (4, 96)
    table = clf.backbone.model.videomae.embeddings.position_embeddings
    assert table.shape == (1, 2 * 6 * 6, 32)
    assert torch.allclose(table, resampled_table(32, (4, 4, 4), (2, 6, 6)))
    assert not torch.allclose(table, get_sinusoid_encoding_table(72, 32))

    arch = clf.backbone.architecture()
    assert arch["position_grid"] == [4, 4, 4]
    rebuilt = create_backbone("videomae_small", NUM_CLASSES, pretrained=False, **arch)
    assert torch.equal(rebuilt.model.videomae.embeddings.position_embeddings, table)

    video = torch.randn(2, 4, 3, 96, 96)
    labels = torch.tensor([0, 2])
    clf.eval()
    before = clf(video).detach()
    opt = torch.optim.SGD(clf.parameters(), lr=0.1)
    clf.train()
    torch.nn.functional.cross_entropy(clf(video), labels).backward()
    opt.step()
    clf.eval()
    after = clf(video).detach()
    assert torch.isfinite(after).all() and not torch.allclose(before, after)


# ------------------------------------------------------------------------------------------------------ TSN/TSM
def test_temporal_shift_moves_an_eighth_of_the_channels_each_way():
    from flashvid.models.timm_models import temporal_shift

    b, t, c = 2, 4, 16
    x = torch.randn(b, t, c, 3, 3)
    out = temporal_shift(x.flatten(0, 1), t).view(b, t, c, 3, 3)
    fold = c // 8
    assert torch.equal(out[:, :-1, :fold], x[:, 1:, :fold]) and (out[:, -1, :fold] == 0).all()
    assert torch.equal(out[:, 1:, fold:2 * fold], x[:, :-1, fold:2 * fold]) and (out[:, 0, fold:2 * fold] == 0).all()
    assert torch.equal(out[:, :, 2 * fold:], x[:, :, 2 * fold:])


def test_tsn_averages_frames_and_tsm_sees_their_order():
    """TSN's consensus ignores the order of its segments; TSM's shifts mix neighbouring frames, so it does not."""
    torch.manual_seed(0)
    video = torch.randn(2, 4, 3, 32, 32)
    reversed_video = video.flip(1)
    tsm = create_backbone("tsm_resnet18", NUM_CLASSES).eval()
    tsn = create_backbone("tsn_resnet50", NUM_CLASSES).eval()
    assert len(tsm.model.shifts) == 8  # every BasicBlock of ResNet-18
    for model in (tsm, tsn):  # timm zero-inits each block's last norm (the blocks start as identities, shift or
        # not) and the heads start near zero: weights as after training, so the shift shows in the logits
        for norm in model.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(norm.weight)
        torch.nn.init.normal_(model.head.weight, std=1.0)
    with torch.no_grad():
        assert not torch.allclose(tsm(video), tsm(reversed_video), rtol=1e-3, atol=1e-4)
        assert torch.allclose(tsn(video), tsn(reversed_video), rtol=1e-4, atol=1e-5)
    _assert_layer_decay(tsm)


def test_tsm_from_a_timm_state_dict(tmp_path: Path):
    """pretrained=<file> takes timm's own state dict of the image network (its 1000-class head dropped)."""
    import timm

    torch.manual_seed(0)
    image_model = timm.create_model("resnet18", pretrained=False)
    torch.save(image_model.state_dict(), tmp_path / "resnet18.pth")
    backbone = create_backbone("tsm_resnet18", NUM_CLASSES, pretrained=str(tmp_path / "resnet18.pth"))
    encoder = backbone.model.encoder
    assert torch.equal(encoder.conv1.weight, image_model.conv1.weight)
    assert torch.equal(encoder.layer3[1].conv1.net.weight, image_model.layer3[1].conv1.weight)
    assert backbone.head.out_features == NUM_CLASSES

    torch.save({"not": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth: not a state dict of timm's resnet18"):
        create_backbone("tsm_resnet18", NUM_CLASSES, pretrained=str(tmp_path / "other.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_backbone("tsm_resnet18", NUM_CLASSES, pretrained=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", ["tsn_resnet50", "tsm_resnet18", "tsn_convnext_tiny"])
def test_timm_entries_use_the_weights_normalisation(name: str):
    """The entry's mean/std are those of the timm weights it loads (its pretrained_cfg), and it samples segments."""
    from timm.models import get_pretrained_cfg

    spec = get_backbone_spec(name)
    cfg = get_pretrained_cfg(spec.weights)
    assert spec.data.mean == pytest.approx(cfg.mean) and spec.data.std == pytest.approx(cfg.std)
    assert spec.data.clip_sampling == "segments"


def test_tsm_trains_on_segments_and_reloads_from_its_checkpoint(demo_root: Path, tmp_path: Path):
    """The entry's segment sampling reaches the datamodule through the model; a checkpoint keeps it."""
    from flashvid import Trainer, VideoClassificationData

    torch.manual_seed(0)
    model = VideoClassifier("tsm_resnet18", num_classes=4, data={"num_frames": 4, "crop_size": 32})
    dm = VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", batch_size=2, num_workers=0)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      max_steps=1, limit_val_batches=1, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(model, dm)
    assert dm.data_config.clip_sampling == "segments" and dm.datasets["train"].sampling.segments
    trainer.save_checkpoint(tmp_path / "tsm.ckpt")
    reloaded = VideoClassifier.load_from_checkpoint(tmp_path / "tsm.ckpt")
    assert reloaded.data_config.clip_sampling == "segments"
    video = torch.randn(1, 4, 3, 32, 32)
    model.eval(), reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(model(video), reloaded(video))
