"""The GPU per-batch augmentations as registered steps (flashvid.data.batch_augment): the same outputs for the same
seed as the hand-wired chain they replaced, and a new step added by registering it, without touching the
datamodule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from flashvid.data import VideoClassificationData
from flashvid.data import batch_augment as ba
from flashvid.data.clip_augment import ClipAutoAugment
from flashvid.data.mixing import ClipMix
from flashvid.data.transforms import BatchAugmentation

RECIPE = dict(mixup_alpha=0.8, cutmix_alpha=1.0, auto_augment="rand-m7-n4-mstd0.5-inc1", color_jitter=0.4,
              scale=(0.3, 1.0))


def _training_dm(demo_root: Path, **augmentation: Any) -> VideoClassificationData:
    dm = VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", num_frames=4, crop_size=32,
                                              batch_size=4, num_workers=0, augmentation=augmentation)
    dm.setup("fit")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.training = True  # on_after_batch_transfer's training path, as inside fit
    dm.trainer = trainer
    return dm


def _old_chain(dm: VideoClassificationData, batch: dict[str, Any]) -> dict[str, Any]:
    """What datamodule.on_after_batch_transfer wired by hand before the registry, in training."""
    a, cfg = dm.augmentation, dm.data_config
    crop = BatchAugmentation(cfg.mean, cfg.std, cfg.crop_size, train=True, scale=tuple(a.scale), ratio=tuple(a.ratio),
                             hflip=a.hflip, color_jitter=a.color_jitter, backend=a.backend)
    auto = ClipAutoAugment(a.auto_augment) if a.auto_augment else None
    mix = ClipMix(max(dm.num_classes, 1), a.mixup_alpha, a.cutmix_alpha, a.mix_prob, a.mix_switch_prob)
    video = batch["video"]
    if auto is not None:
        video = auto(video)
    video = crop(video)
    if mix.active:
        video, batch["target"] = mix(video, batch["label"])
    batch["video"] = video
    return batch


@pytest.mark.parametrize("augmentation", [RECIPE, {}])
def test_registered_steps_give_the_hand_wired_chains_outputs_for_a_seed(demo_root: Path, augmentation):
    dm = _training_dm(demo_root, **augmentation)
    batch = next(iter(dm.train_dataloader()))
    expected_names = ["auto_augment", "crop_flip_jitter", "mixup_cutmix"] if augmentation else ["crop_flip_jitter"]
    assert dm.batch_steps["train"].names == expected_names and dm.batch_steps["eval"].names == ["crop_flip_jitter"]
    for seed in (0, 1, 2):  # several seeds: mixup and CutMix both drawn
        torch.manual_seed(seed)
        new = dm.on_after_batch_transfer({k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}, 0)
        torch.manual_seed(seed)
        old = _old_chain(dm, {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})
        assert new["video"].dtype == torch.float32 and new["video"].shape == (4, 4, 3, 32, 32)
        torch.testing.assert_close(new["video"], old["video"], rtol=0, atol=0)
        assert set(new) == set(old)
        if "target" in old:
            torch.testing.assert_close(new["target"], old["target"], rtol=0, atol=0)


def test_a_registered_step_runs_in_its_stage_without_datamodule_changes(demo_root: Path):
    """A decode-stage step runs before every augmentation (it sees the loader's uint8), a float-stage one after
    mixup (it sees the soft targets); a step whose builder returns None is left out."""
    seen: dict[str, Any] = {}

    def decode(settings, context):
        def step(batch):
            seen["decode"] = batch["video"].dtype
            return batch
        return step

    def after_mix(settings, context):
        if not context.train:
            return None

        def step(batch):
            seen["float"] = (batch["video"].dtype, "target" in batch)
            batch["video"] = batch["video"] * 0
            return batch
        return step

    ba.register_batch_augmentation("test_decode", stage="decode")(decode)
    ba.register_batch_augmentation("test_zero", stage="float")(after_mix)
    try:
        dm = _training_dm(demo_root, mixup_alpha=0.8)
        assert dm.batch_steps["train"].names == ["test_decode", "crop_flip_jitter", "mixup_cutmix", "test_zero"]
        assert dm.batch_steps["eval"].names == ["test_decode", "crop_flip_jitter"]
        out = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
        assert seen == {"decode": torch.uint8, "float": (torch.float32, True)}
        assert not out["video"].any()
        with pytest.raises(ValueError, match="already registered"):
            ba.register_batch_augmentation("test_zero", stage="float")(after_mix)
    finally:
        ba._REGISTRY.pop("test_decode", None)
        ba._REGISTRY.pop("test_zero", None)
    with pytest.raises(ValueError, match="stage must be one of decode, uint8, normalize, float"):
        ba.register_batch_augmentation("x", stage="gpu")
