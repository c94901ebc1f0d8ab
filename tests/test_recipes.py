"""Fine-tuning recipe components, each shown to act: mixup/CutMix soft targets, RandAugment per clip, EMA weights,
drop path, sampling-rate jitter, class weights, and the small-validation-set policy."""

from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flashvid import Trainer, VideoClassificationData, VideoClassifier
from flashvid.data import ClipSampling, VideoSample, group_split
from flashvid.data.clip_augment import ClipAutoAugment, parse_policy
from flashvid.data.mixing import ClipMix
from flashvid.validation_policy import callback_overrides

LABELS = ["clockwise", "counterclockwise", "left", "right"]


def make_trainer(tmp_path: Path, **kwargs) -> Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                    max_epochs=1, default_root_dir=str(tmp_path), num_sanity_val_steps=0)
    return Trainer(**{**defaults, **kwargs})


# ---------------------------------------------------------------------------------------------- mixup / cutmix
def test_mixup_targets_sum_to_one_and_every_frame_gets_the_same_mix():
    torch.manual_seed(0)
    b, t = 6, 5
    # clip i, frame f holds the constant 10 * i + f: a mix of clips i and j is 10 * (lam i + (1 - lam) j) + f
    video = (10 * torch.arange(b).view(b, 1, 1, 1, 1) + torch.arange(t).view(1, t, 1, 1, 1)).float()
    video = video.expand(b, t, 3, 8, 8).clone()
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    mixed, targets = ClipMix(4, mixup_alpha=0.8)(video, labels)
    assert targets.shape == (b, 4) and torch.allclose(targets.sum(1), torch.ones(b))
    assert (targets.max(1).values < 1).all()  # mixed, not one-hot
    per_frame = mixed - torch.arange(t).view(1, t, 1, 1, 1)
    assert torch.allclose(per_frame, per_frame[:, :1].expand_as(per_frame), atol=1e-4)  # same weight every frame
    lam = (per_frame[:, 0, 0, 0, 0] - 10 * labels.new_tensor(range(b)).roll(1).float()) / (
        10 * (torch.arange(b) - torch.arange(b).roll(1)).float())
    own = targets[torch.arange(b), labels]
    assert torch.allclose(own[labels != labels.roll(1)], lam[labels != labels.roll(1)], atol=1e-4)


def test_cutmix_puts_one_box_on_every_frame_and_targets_match_its_area():
    torch.manual_seed(1)
    b, t = 4, 3
    video = torch.rand(b, t, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3])
    for _ in range(5):
        mixed, targets = ClipMix(4, cutmix_alpha=1.0)(video, labels)
        assert torch.allclose(targets.sum(1), torch.ones(b))
        pasted = (mixed != video).any(2)  # (B, T, H, W): pixels taken from the other clip
        assert (pasted == pasted[:, :1]).all()  # the same box on every frame
        area = pasted[:, 0].float().mean((1, 2))
        assert torch.allclose(targets[torch.arange(b), labels], 1 - area, atol=1e-6)


def test_mix_prob_zero_gives_one_hot_targets_and_bad_settings_fail():
    labels = torch.tensor([2, 0])
    video = torch.rand(2, 2, 3, 4, 4)
    out, targets = ClipMix(3, mixup_alpha=1.0, prob=0.0)(video, labels)
    assert torch.equal(out, video) and torch.equal(targets, F.one_hot(labels, 3).float())
    with pytest.raises(ValueError, match="mix_prob"):
        ClipMix(3, mixup_alpha=1.0, prob=1.5)


# ---------------------------------------------------------------------------------------------- RandAugment
@pytest.mark.parametrize("policy", ["rand-m9-n2-mstd0.5-inc1", "trivial"])
def test_auto_augment_applies_the_same_ops_to_every_frame_and_differs_per_clip(policy: str):
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    video = frame.expand(8, 4, 3, 24, 24).contiguous()  # 8 identical clips of 4 identical frames
    out = ClipAutoAugment(policy)(video)
    assert out.shape == video.shape and out.dtype == torch.uint8
    assert (out == out[:, :1]).all()  # every frame of a clip augmented alike
    assert not (out == out[:1]).all()  # clips drew different operations
    assert not torch.equal(out, video)


def test_auto_augment_policy_strings():
    assert parse_policy("rand-m7-n4-mstd0.5-inc1") == {"kind": "rand", "magnitude": 7.0, "num_ops": 4,
                                                       "magnitude_std": 0.5}
    for bad in ("rand-x7", "augmix", "rand-m40"):
        with pytest.raises(ValueError, match="auto_augment"):
            parse_policy(bad)


# ---------------------------------------------------------------------------------------------- sampling jitter
def test_rate_jitter_varies_the_stride_of_training_clips_only():
    s = ClipSampling(num_frames=4, sampling_rate=4, target_fps=None, rate_jitter=2.0)
    rng = random.Random(0)
    strides = {idx[1] - idx[0] for idx in (s.clips(1000, 30.0, "random", rng=rng)[0] for _ in range(200))}
    assert min(strides) <= 3 and max(strides) >= 6 and min(strides) >= 2 and max(strides) <= 8
    assert s.clips(1000, 30.0, "center")[0][1] - s.clips(1000, 30.0, "center")[0][0] == 4  # evaluation: exact
    plain = ClipSampling(num_frames=4, sampling_rate=4, target_fps=None)
    assert {idx[0][1] - idx[0][0] for idx in (plain.clips(1000, 30.0, "random", rng=rng) for _ in range(50))} == {4}


# ---------------------------------------------------------------------------------------------- training with all
def test_recipe_training_ema_soft_targets_and_class_weights(demo_root: Path, tmp_path: Path):
    """A run with mixup + CutMix + RandAugment + jitter + EMA + auto class weights: the checkpoint holds the EMA
    weights (not the raw ones), the model ends with them (so export writes them), and testing a checkpoint keeps
    them."""
    data = VideoClassificationData.from_folders(
        demo_root / "train", demo_root / "val", batch_size=4, num_workers=0, num_frames=4, crop_size=32,
        augmentation=dict(mixup_alpha=0.8, cutmix_alpha=1.0, auto_augment="rand-m7-n4-mstd0.5-inc1",
                          rate_jitter=1.5))
    data.samples["train"] = [s for s in data.samples["train"] if s.label != 0 or "c01" in s.path]  # imbalanced
    data.samples["test"] = data.samples["val"]
    torch.manual_seed(0)
    model = VideoClassifier("tiny_r2plus1d", labels=LABELS, ema_decay=0.9, class_weights="auto",
                            label_smoothing=0.1, learning_rate=1e-2)
    seen_targets = []
    original = model.compute_loss

    def spy(logits, labels):
        seen_targets.append(labels)
        return original(logits, labels)

    model.compute_loss = spy
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(model, datamodule=data)

    # soft targets reached the loss, rows summing to 1; train/acc was logged from the integer labels
    assert seen_targets and all(t.dim() == 2 and torch.allclose(t.sum(1), torch.ones(len(t))) for t in seen_targets)
    assert 0.0 <= float(trainer.callback_metrics["train/acc"]) <= 1.0
    # inverse frequency: the class with fewer training videos weighs more
    counts = torch.bincount(torch.tensor([s.label for s in data.samples["train"]]), minlength=4).float()
    assert torch.allclose(model.class_weight, counts.sum() / (4 * counts))
    assert model.class_weight[0] > model.class_weight[1]

    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, map_location="cpu", weights_only=True)
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    floats = [k for k, v in ema.items() if v.is_floating_point()]
    assert any(not torch.equal(ema[k], raw[k]) for k in floats)  # the average is not the raw weights
    # the model ended training holding the EMA weights of the last step: export_model writes these
    ema_cb = next(c for c in trainer.callbacks if type(c).__name__ == "EMA")
    final = ema_cb._average_model.module.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, final[k]), k
    # testing the best checkpoint runs its EMA weights, not its current_model_state, without Lightning's warning
    # that the averaging state "cannot be restored" (outside fit there is none to restore)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.test(model, datamodule=data, ckpt_path=trainer.checkpoint_callback.best_model_path, verbose=False)
    assert not [w for w in caught if "WeightAveraging" in str(w.message)], [str(w.message) for w in caught]
    for k in floats:
        assert torch.equal(model.state_dict()[k], ema[k]), k
    assert set(model.per_class_accuracy["test"]) == set(LABELS)


def test_compute_loss_takes_soft_targets_like_integer_labels():
    model = VideoClassifier("tiny_r2plus1d", labels=LABELS, label_smoothing=0.1, class_weights=[1, 2, 1, 1])
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 3, 1])
    hard, soft = model.compute_loss(logits, labels), model.compute_loss(logits, F.one_hot(labels, 4).float())
    assert torch.allclose(hard, soft)
    model.hparams.label_smoothing = 0.0
    model.class_weight = None
    assert torch.allclose(model.compute_loss(logits, labels), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="class_weights"):
        VideoClassifier("tiny_r2plus1d", labels=LABELS, class_weights="inverse")


# ---------------------------------------------------------------------------------------------- drop path
def test_drop_path_changes_the_training_forward_only():
    kw = dict(num_frames=4, image_size=32, num_hidden_layers=3)
    torch.manual_seed(0)
    plain = VideoClassifier("videomae_small", num_classes=3, backbone_kwargs=kw)
    dropped = VideoClassifier("videomae_small", num_classes=3, backbone_kwargs=kw, drop_path_rate=0.5)
    dropped.load_state_dict(plain.state_dict())  # same weights: drop path adds no parameters
    x = torch.randn(4, 4, 3, 32, 32)
    plain.eval(), dropped.eval()
    assert torch.allclose(plain(x), dropped(x))
    plain.train(), dropped.train()
    assert torch.allclose(plain(x), plain(x))  # no other randomness in the train-mode forward
    assert not torch.allclose(plain(x), dropped(x))
    with pytest.raises(ValueError, match="no drop path"):
        VideoClassifier("tiny_r2plus1d", num_classes=3, drop_path_rate=0.1)


# ---------------------------------------------------------------------------------------------- small data
def test_tiny_validation_sets_turn_early_stopping_off_and_pick_the_best_by_loss(caplog):
    es = {"monitor": "val/acc", "patience": 10}
    ck = {"monitor": "val/acc", "mode": "max"}
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        assert callback_overrides("lightning.pytorch.callbacks.EarlyStopping", es, 5, 60) is None
    assert "early stopping off" in caplog.text
    assert callback_overrides("lightning.pytorch.callbacks.ModelCheckpoint", ck, 5, 60) == {"monitor": "val/loss",
                                                                                           "mode": "min"}
    assert callback_overrides("lightning.pytorch.callbacks.ModelCheckpoint", ck, 500, 60) == {}
    assert callback_overrides("lightning.pytorch.callbacks.EarlyStopping", es, 500, 12) == {}
    assert callback_overrides("lightning.pytorch.callbacks.EarlyStopping", es, 500, 200) == {"patience": 50}


def test_val_split_never_holds_out_far_more_than_asked(caplog):
    # class 0: 10 groups of 2 videos; class 1: 2 groups of 10 (one group would be half the class)
    samples = [VideoSample(f"a/v_a_g{g:02d}_c{c}.mp4", 0) for g in range(10) for c in range(2)]
    samples += [VideoSample(f"b/v_b_g{g:02d}_c{c}.mp4", 1) for g in range(2) for c in range(10)]
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        train, val = group_split(samples, 0.1)
    assert {s.label for s in val} == {0} and len(val) == 2
    assert "stay out of validation" in caplog.text
    # every group too large: file by file instead, said in the log
    big = [VideoSample(f"b/v_b_g{g:02d}_c{c}.mp4", k) for k in range(2) for g in range(2) for c in range(10)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        train, val = group_split(big, 0.1)
    assert len(val) == 4 and len(train) == 36 and "file by file" in caplog.text


def test_ema_decay_warms_up_then_holds():
    """Early updates follow the weights closely ((1 + n) / (10 + n)), later ones at the set decay."""
    from flashvid.ema import ema_avg_fn

    avg = ema_avg_fn(0.999)
    zero, one = torch.zeros(3), torch.ones(3)
    assert torch.allclose(avg(zero, one, torch.tensor(1)), torch.full((3,), 1 - 2 / 11))
    assert torch.allclose(avg(zero, one, torch.tensor(100_000)), torch.full((3,), 1 - 0.999))
    assert torch.equal(avg(torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long), torch.tensor(5)),
                       torch.ones(3, dtype=torch.long))  # integer buffers (BatchNorm's counter) are copied
