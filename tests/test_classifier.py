"""``VideoClassifier``: checkpoints, ``predict`` on files, input handling, failed files and the documented
extension points, on real encoded demo videos with the tiny (2+1)D backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassF1Score

from flashvid import Trainer, VideoClassificationData, VideoClassifier
from flashvid.classifier import TooManyFailedFiles
from flashvid.data import VideoSample

LABELS = ["clockwise", "counterclockwise", "left", "right"]  # the demo dataset's classes, sorted


def make_trainer(tmp_path: Path, **kwargs) -> Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                    max_epochs=1, default_root_dir=str(tmp_path), num_sanity_val_steps=0)
    return Trainer(**{**defaults, **kwargs})


def tiny_model(**kwargs) -> VideoClassifier:
    """tiny_r2plus1d at 4 frames of 32 px: enough to exercise everything, fast on a CPU."""
    torch.manual_seed(0)
    return VideoClassifier("tiny_r2plus1d", labels=LABELS, data={"num_frames": 4, "crop_size": 32}, **kwargs)


def demo_files(demo_root: Path, split: str = "test") -> list[Path]:
    return sorted((demo_root / split).rglob("*.mp4")) + sorted((demo_root / split).rglob("*.avi"))


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(demo_root: Path, tmp_path: Path):
    """Weights, labels and the clip settings training used (the datamodule's explicit sampling_rate included)
    survive save and load, and the file loads with torch.load(weights_only=True)."""
    data = VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", batch_size=4,
                                                num_workers=0, sampling_rate=3)
    model = tiny_model()
    trainer = make_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, datamodule=data)
    assert model.data_config.sampling_rate == 3 and model.data_config.num_frames == 4
    path = trainer.checkpoint_callback.best_model_path
    assert path

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["hyper_parameters"]["labels"] == LABELS

    for kwargs in ({}, {"weights_only": True}):
        loaded = VideoClassifier.load_from_checkpoint(path, **kwargs)
        assert loaded.labels == LABELS
        assert loaded.data_config == model.data_config
        expected = model.state_dict()
        got = loaded.state_dict()
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected)

    files = demo_files(demo_root)[:2]
    before = model.predict(files)
    after = loaded.predict(files)
    assert [r["label"] for r in after] == [r["label"] for r in before]
    assert [r["score"] for r in after] == pytest.approx([r["score"] for r in before], abs=1e-5)


def test_labels_and_num_classes_are_checked():
    with pytest.raises(ValueError, match="num_classes=3 but 4 labels"):
        VideoClassifier("tiny_r2plus1d", num_classes=3, labels=LABELS)
    with pytest.raises(ValueError, match="num_classes or labels"):
        VideoClassifier("tiny_r2plus1d")
    assert VideoClassifier("tiny_r2plus1d", num_classes=2).labels == ["0", "1"]


# ---------------------------------------------------------------------------------------------- predict
def _check_result(result: dict, path: Path, top_k: int) -> None:
    assert result["path"] == str(path)
    assert set(result) == {"path", "label", "score", "top_k"}
    assert len(result["top_k"]) == top_k
    scores = [t["score"] for t in result["top_k"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores) and sum(scores) <= 1.0 + 1e-5
    assert all(t["label"] in LABELS for t in result["top_k"])
    assert len({t["label"] for t in result["top_k"]}) == top_k
    assert (result["label"], result["score"]) == (result["top_k"][0]["label"], result["top_k"][0]["score"])


def test_predict_files_and_folder(demo_root: Path, decoder: str):
    model = tiny_model()
    files = demo_files(demo_root)[:3]
    results = model.predict(files, top_k=2, batch_size=2, decoder=decoder)
    assert len(results) == 3
    for r, f in zip(results, files):
        _check_result(r, f, top_k=2)

    folder = demo_root / "test" / "left"
    results = model.predict(folder, top_k=10, decoder=decoder)  # more than there are classes: every class, ranked
    expected = sorted(p for p in folder.iterdir())
    assert [r["path"] for r in results] == [str(p) for p in expected]
    for r, f in zip(results, expected):
        _check_result(r, f, top_k=len(LABELS))
        assert sum(t["score"] for t in r["top_k"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_reports_unreadable_files_in_order(demo_root: Path, tmp_path: Path, decoder: str):
    model = tiny_model()
    good = demo_files(demo_root)[:2]
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    missing = tmp_path / "missing.mp4"
    inputs = [good[0], text, missing, good[1]]
    results = model.predict(inputs, top_k=3, batch_size=2, decoder=decoder)
    assert [r["path"] for r in results] == [str(p) for p in inputs]
    _check_result(results[0], good[0], top_k=3)
    _check_result(results[3], good[1], top_k=3)
    for r in results[1:3]:
        assert r["label"] is None and r["score"] is None and r["top_k"] == []
        assert isinstance(r["error"], str) and r["error"]
    # a batch where every file fails must not hide the next batch's results
    results = model.predict([text, missing, good[0]], top_k=1, batch_size=2, decoder=decoder)
    assert [r["label"] is None for r in results] == [True, True, False]


def test_predict_multi_view(demo_root: Path):
    """num_clips x num_crops views reach the backbone as one batch per file and are averaged into one result."""
    model = tiny_model()
    seen: list[tuple[int, ...]] = []
    handle = model.backbone.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    files = demo_files(demo_root)[:3]
    results = model.predict(files, top_k=2, num_clips=2, num_crops=3, batch_size=2)
    handle.remove()
    assert [r["path"] for r in results] == [str(f) for f in files]
    for r, f in zip(results, files):
        _check_result(r, f, top_k=2)
    assert [s[0] for s in seen] == [2 * 6, 1 * 6]  # batches of 2 and 1 files, 6 views each
    assert all(s[1:] == (4, 3, 32, 32) for s in seen)
    single = model.predict(files, top_k=2)
    assert all(r["path"] == s["path"] for r, s in zip(results, single))


# ---------------------------------------------------------------------------------------------- forward
def test_uint8_input_is_normalised():
    model = tiny_model().eval()
    video = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor(model.data_config.mean).view(3, 1, 1)
    std = torch.tensor(model.data_config.std).view(3, 1, 1)
    with torch.no_grad():
        expected = model((video.float() / 255 - mean) / std)
        got = model(video)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, model(video.float()), atol=1e-3)  # raw 0..255 floats are not normalised


def test_multi_view_input_averages_view_probabilities():
    model = tiny_model().eval()
    views = torch.randn(2, 3, 4, 3, 32, 32)
    with torch.no_grad():
        out = model(views)
        per_view = torch.stack([model(views[:, v]).softmax(-1) for v in range(3)], 1)
    assert out.shape == (2, len(LABELS))
    assert torch.allclose(out.exp(), per_view.mean(1), atol=1e-5)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2), atol=1e-5)


def test_multi_view_test_loop(demo_root: Path, tmp_path: Path):
    """trainer.test with 2 clips x 3 crops: 6-D batches are scored on view-averaged probabilities."""
    data = VideoClassificationData.from_folders(test_folder=demo_root / "test", batch_size=4, num_workers=0,
                                                num_clips=2, num_crops=3)
    model = tiny_model()
    seen: list[int] = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    metrics = make_trainer(tmp_path).test(model, datamodule=data, verbose=False)[0]
    assert sum(seen) == 6 * len(demo_files(demo_root))
    assert {"test/loss", "test/acc", "test/mean_class_acc"} <= set(metrics)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert "test/acc5" not in metrics  # 4 classes: the top 5 hold them all, a top-5 accuracy would always be 1


# ---------------------------------------------------------------------------------------------- failed files
def _broken_files(tmp_path: Path) -> list[Path]:
    text = tmp_path / "broken.mp4"
    text.write_text("not a video")
    return [text, tmp_path / "gone.avi"]


def test_training_skips_a_batch_whose_files_all_failed(demo_root: Path, tmp_path: Path):
    good = demo_files(demo_root, "train")[:2]
    broken = _broken_files(tmp_path)
    train = [VideoSample(str(p), i % len(LABELS)) for i, p in enumerate(good + broken)]
    data = VideoClassificationData(train=train, val=train[:1], labels=LABELS, batch_size=1, num_workers=0)
    model = tiny_model(max_failed_fraction=0.6)
    trainer = make_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 4  # the two batches with no decodable clip still stepped
    assert set(model.failed_files) == {str(p) for p in broken}
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())

    strict = tiny_model()  # max_failed_fraction=0.05: half the files broken must stop the run, naming them
    with pytest.raises(TooManyFailedFiles, match="broken.mp4"):
        make_trainer(tmp_path / "strict", limit_val_batches=0).fit(strict, datamodule=data)


# ---------------------------------------------------------------------------------------------- extension points
class ExtendedClassifier(VideoClassifier):
    """The documented extension points: a new head, an extra loss term and an extra metric."""

    def configure_head(self, backbone):
        backbone.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(backbone.head.in_features, self.num_classes))

    def compute_loss(self, logits, labels):
        loss = super().compute_loss(logits, labels) + 0.5 * logits.pow(2).mean()
        self.losses.append(loss.item())
        return loss

    def build_metrics(self, num_classes):
        return MetricCollection({"f1": MulticlassF1Score(num_classes, average="macro")})


def test_subclass_extension_points(demo_root: Path, tmp_path: Path):
    torch.manual_seed(0)
    model = ExtendedClassifier("tiny_r2plus1d", labels=LABELS, data={"num_frames": 4, "crop_size": 32})
    model.losses = []
    head = model.backbone.head
    assert isinstance(head, nn.Sequential) and model.backbone.model.fc is head  # forward runs the new head
    assert model.backbone.stages[-1] is head  # finetune strategies train (and layer decay ranks) the new head
    head_before = [p.detach().clone() for p in head.parameters()]

    data = VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", batch_size=4,
                                                num_workers=0)
    trainer = make_trainer(tmp_path, limit_train_batches=2, limit_val_batches=2, enable_checkpointing=False)
    trainer.finetune(model, datamodule=data, strategy="freeze")

    assert len(model.losses) == 2
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(model.losses[-1], rel=1e-5)
    assert "val/f1" in trainer.callback_metrics and "val/acc" in trainer.callback_metrics
    assert all(not torch.equal(a, b) for a, b in zip(head_before, head.parameters()))
    logits = model(torch.randn(1, 4, 3, 32, 32))
    assert logits.shape == (1, len(LABELS))


def test_compute_loss_default_uses_label_smoothing():
    model = tiny_model(label_smoothing=0.2)
    logits, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(model.compute_loss(logits, labels), F.cross_entropy(logits, labels, label_smoothing=0.2))


def test_mean_class_accuracy_is_not_merged_with_top5_at_batch_size_1():
    """Videos scored one at a time (eval batch size 1): torchmetrics' compute groups once merged acc5 and
    mean_class_acc after a first update where their states agreed, so mean-class accuracy reported top-5."""
    from torchmetrics.classification import MulticlassAccuracy

    model = VideoClassifier("tiny_r2plus1d", labels=list("abcdef"), data={"num_frames": 4, "crop_size": 32})
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    # class 0 always right, the others always wrong (but in the top 5)
    probs = torch.tensor([0.8, 0.1, 0.05, 0.03, 0.015, 0.005]).repeat(len(labels), 1)
    for p, y in zip(probs, labels, strict=True):
        model.val_metrics.update(p[None], y[None])
    got = model.val_metrics.compute()
    top1 = MulticlassAccuracy(6, top_k=1, average="micro")(probs, labels)
    macro = MulticlassAccuracy(6, top_k=1, average="macro")(probs, labels)
    assert got["val/acc"] == pytest.approx(top1.item()) and got["val/mean_class_acc"] == pytest.approx(macro.item())
    assert got["val/mean_class_acc"] != pytest.approx(got["val/acc5"].item())


@pytest.mark.parametrize("num_classes, has_top5", [(2, False), (5, False), (6, True)])
def test_top5_accuracy_only_with_more_than_5_classes(num_classes: int, has_top5: bool):
    """With 5 classes or fewer the top 5 hold every class: an acc5 of 1.0 in the logs and curves said nothing."""
    model = VideoClassifier("tiny_r2plus1d", labels=[f"c{i}" for i in range(num_classes)],
                            data={"num_frames": 4, "crop_size": 32})
    for metrics, prefix in ((model.val_metrics, "val"), (model.test_metrics, "test")):
        assert set(metrics.keys(keep_base=False)) == {f"{prefix}/acc", f"{prefix}/mean_class_acc",
                                                      *([f"{prefix}/acc5"] if has_top5 else [])}


def test_lightning_promotional_tips_are_not_printed(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Lightning 2.6 logs "💡 Tip: ... try installing litlogger" when a Trainer starts: flashvid's output drops it."""
    import logging

    from lightning.pytorch.loggers import CSVLogger

    with caplog.at_level(logging.INFO):
        Trainer(default_root_dir=tmp_path, logger=CSVLogger(tmp_path), accelerator="cpu", max_epochs=1,
                enable_progress_bar=False)
    assert not [r.getMessage() for r in caplog.records if "Tip:" in r.getMessage()]


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizer="lamb"), "unknown optimizer 'lamb': choose one of adamw, adam, sgd"),
    (dict(scheduler="step"), "unknown scheduler 'step': choose one of cosine, linear, constant"),
    (dict(class_weights=[1.0, 2.0]), "class_weights has 2 values for 4 classes"),
])
def test_bad_arguments_fail_at_construction_naming_the_choices(kwargs, message):
    """Each checked by the module that owns it (optim, schedules, losses), before any backbone is built."""
    with pytest.raises(ValueError, match=message):
        VideoClassifier("tiny_r2plus1d", labels=LABELS, **kwargs)
