"""The official Kinetics CSV (files found in the downloaders' layouts, labels from the label column) and
multi-label list files (sigmoid + BCE, mAP, thresholded predict), on real encoded videos."""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from flashvid.data.demo import write_video

HEADER = "label,youtube_id,time_start,time_end,split\n"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    return path


def test_kinetics_csv_rows_map_to_files_in_every_downloader_layout(clip: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Rows become ``{youtube_id}_{start:06d}_{end:06d}`` files under <label>/ (spaces kept or as underscores),
    <split>/<label>/, <split>/ or the root, labelled by the label column (never by the YouTube id); a clip in
    another class's folder is not taken; missing downloads are skipped with a warning that counts them."""
    from flashvid import VideoClassificationData
    from flashvid.data.sources import read_csv

    root = tmp_path / "k400"
    placed = {
        "abseiling,--07WQ2iBlw,1,11,train": "abseiling/--07WQ2iBlw_000001_000011.mp4",
        "air drumming,-0Ve1k4_3hU,30,40,train": "air drumming/-0Ve1k4_3hU_000030_000040.mp4",
        "arm wrestling,0EdWk3Ikr7o,5,15,train": "arm_wrestling/0EdWk3Ikr7o_000005_000015.mp4",
        "abseiling,0HpkN5YpUYA,120,130,train": "train/abseiling/0HpkN5YpUYA_000120_000130.mp4",
        "air drumming,1Tgl1uTgt5Y,0,10,train": "train/1Tgl1uTgt5Y_000000_000010.mkv",
        "arm wrestling,2bx_-9fMnNg,7,17,train": "2bx_-9fMnNg_000007_000017.mp4",
    }
    for rel in placed.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / rel)
    (root / "abseiling").mkdir(exist_ok=True)  # in the wrong class's folder: must not be matched
    shutil.copy(clip, root / "abseiling" / "zzWrongFolder_000003_000013.mp4")
    rows = [*placed, "arm wrestling,zzWrongFolder,3,13,train", "abseiling,notDownloaded,0,10,train"]
    listing = tmp_path / "kinetics_400_train.csv"
    listing.write_text(HEADER + "\n".join(rows) + "\n")

    with caplog.at_level(logging.WARNING):
        samples, labels = read_csv(listing, root)
    assert labels == ["abseiling", "air drumming", "arm wrestling"]
    got = {os.path.relpath(s.path, root): labels[s.label] for s in samples}
    assert got == {rel: row.split(",")[0] for row, rel in placed.items()}
    assert "2 of 8 clips" in caplog.text and "notDownloaded_000000_000010" in caplog.text

    dm = VideoClassificationData.from_csv(train_file=listing, root=root, val_split=None)  # the datamodule's path
    assert dm.labels == labels and len(dm.samples["train"]) == 6


def test_kinetics_csv_errors_are_clear(clip: Path, tmp_path: Path) -> None:
    from flashvid.data.sources import read_csv

    listing = tmp_path / "train.csv"
    listing.write_text(HEADER + "abseiling,--07WQ2iBlw,1,11,train\n")
    (tmp_path / "videos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"none of its 1 clips .*--07WQ2iBlw_000001_000011\.mp4"):
        read_csv(listing, tmp_path / "videos")
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("youtube_id,time_start,time_end,split\n--07WQ2iBlw,1,11,test\n")
    with pytest.raises(ValueError, match="without a 'label' column"):
        read_csv(test_csv, tmp_path / "videos")


@pytest.fixture(scope="module")
def multi_label_lists(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo videos with two labels each: the motion and its kind (moves / turns)."""
    kind = {"left": "moves", "right": "moves", "clockwise": "turns", "counterclockwise": "turns"}
    out = tmp_path_factory.mktemp("multilabel")
    for split in ("train", "val", "test"):  # test.csv beside the two returned
        lines = ["path,label"]
        for p in sorted(glob.glob(str(demo_root / split / "*" / "*"))):
            motion = Path(p).parent.name
            lines.append(f"{os.path.relpath(p, demo_root)},{motion};{kind[motion]}")
        (out / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return out / "train.csv", out / "val.csv"


def test_multi_label_trains_with_bce_and_reports_map(multi_label_lists: tuple[Path, Path], demo_root: Path,
                                                     tmp_path: Path) -> None:
    """`path,a;b` rows give multi-hot batches; the model trains with BCE, logs val/mAP (equal to torchmetrics'
    mAP over predict's probabilities on the same clips), checkpoints by val/mAP, and predict lists every class
    at or above the threshold."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torchmetrics.classification import MultilabelAveragePrecision

    from flashvid import Trainer, VideoClassificationData, VideoClassifier

    train, val = multi_label_lists
    clip = {"num_frames": 4, "crop_size": 32, "resize_size": 36}
    dm = VideoClassificationData.from_csv(train, val, root=demo_root, batch_size=4, num_workers=0, **clip)
    assert dm.multi_label and dm.labels == ["clockwise", "counterclockwise", "left", "moves", "right", "turns"]
    with pytest.raises(ValueError, match="set model.multi_label=true"):
        Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False).fit(
            VideoClassifier("tiny_r2plus1d", labels=dm.labels), dm)

    torch.manual_seed(0)
    model = VideoClassifier("tiny_r2plus1d", labels=dm.labels, multi_label=True, learning_rate=3e-3)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val/acc", mode="max")  # as conf/callbacks has it
    trainer = Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[checkpoint], num_sanity_val_steps=0)
    trainer.fit(model, dm)
    m = trainer.callback_metrics
    assert {"val/mAP", "val/f1", "train/loss"} <= set(m) and "val/acc" not in m
    assert checkpoint.monitor == "val/mAP" and checkpoint.best_model_path

    loaded = VideoClassifier.load_from_checkpoint(checkpoint.best_model_path)
    assert loaded.multi_label
    files = [s.path for s in dm.samples["val"]]
    preds = loaded.predict(files, top_k=6, threshold=0.5)
    probs = torch.tensor([[next(t["score"] for t in p["top_k"] if t["label"] == c) for c in dm.labels]
                          for p in preds])
    targets = torch.zeros(len(files), 6, dtype=torch.long)
    for i, s in enumerate(dm.samples["val"]):
        targets[i, list(s.label)] = 1
    expected = MultilabelAveragePrecision(6, average="macro")(probs, targets)
    assert float(checkpoint.best_model_score) == pytest.approx(float(expected), abs=1e-4)
    for p, row in zip(preds, probs, strict=True):
        assert [x["label"] for x in p["labels"]] == [dm.labels[int(i)] for i in row.argsort(descending=True)
                                                     if row[i] >= 0.5]

    # predict's CSV keeps the thresholded label set (it used to drop it), also after an unreadable file first
    from flashvid.predictions import load_predictions, save_predictions

    results = [loaded.predict([tmp_path / "missing.mp4"])[0], *preds]
    csv_file = save_predictions(results, tmp_path / "preds.csv")
    assert csv_file.read_text().splitlines()[0] == "path,label,score,top_k,labels,error"
    back = load_predictions(csv_file)
    assert back[0]["error"] and "labels" not in back[0]
    for b, p in zip(back[1:], preds, strict=True):
        assert [x["label"] for x in b["labels"]] == [x["label"] for x in p["labels"]]
        assert [x["score"] for x in b["labels"]] == pytest.approx([x["score"] for x in p["labels"]], rel=1e-5)


def test_doctor_counts_a_multi_label_video_in_each_of_its_classes(multi_label_lists: tuple[Path, Path],
                                                                  demo_root: Path) -> None:
    from flashvid import VideoClassificationData
    from flashvid.doctor import diagnose_data

    dm = VideoClassificationData.from_csv(*multi_label_lists, root=demo_root)
    per_class = diagnose_data(dm, workers=2).split_summary("val")["per_class"]
    assert {k: v["files"] for k, v in per_class.items()} == {
        "clockwise": 2, "counterclockwise": 2, "left": 2, "right": 2, "moves": 4, "turns": 4}


def test_multi_label_class_weights_are_positive_weights_of_the_loss(multi_label_lists: tuple[Path, Path],
                                                                   demo_root: Path) -> None:
    """class_weights=auto crashed ("bincount only supports 1-d") and an explicit list was silently ignored: both
    are now binary cross-entropy's pos_weight, auto being each class's negatives / positives in training."""
    import torch.nn.functional as F

    from flashvid import Trainer, VideoClassificationData, VideoClassifier

    dm = VideoClassificationData.from_csv(*multi_label_lists, root=demo_root, batch_size=4, num_workers=0,
                                          num_frames=4, crop_size=32, resize_size=36)
    auto = VideoClassifier("tiny_r2plus1d", labels=dm.labels, multi_label=True, class_weights="auto")
    Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, limit_val_batches=0).fit(auto, dm)
    # 24 training videos: each motion in 6 (18 negatives), "moves" and "turns" in 12 each
    expected = {"clockwise": 3.0, "counterclockwise": 3.0, "left": 3.0, "right": 3.0, "moves": 1.0, "turns": 1.0}
    assert auto.class_weight is not None
    assert dict(zip(dm.labels, auto.class_weight.tolist())) == pytest.approx(expected)

    torch.manual_seed(0)
    logits, targets = torch.randn(4, 6), torch.tensor([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 1]] * 2)
    weights = [4.0, 1.0, 1.0, 2.0, 1.0, 0.5]
    plain = VideoClassifier("tiny_r2plus1d", labels=dm.labels, multi_label=True)
    weighted = VideoClassifier("tiny_r2plus1d", labels=dm.labels, multi_label=True, class_weights=weights)
    loss = weighted.compute_loss(logits, targets.float())
    assert float(loss) == pytest.approx(float(F.binary_cross_entropy_with_logits(
        logits, targets.float(), pos_weight=torch.tensor(weights))))
    assert float(loss) != pytest.approx(float(plain.compute_loss(logits, targets.float())))


def test_multi_label_train_and_test_commands_report_multi_label_metrics(
        multi_label_lists: tuple[Path, Path], demo_root: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """`flashvid test` on a multi-label checkpoint showed "n/a" for every metric and wrote no report: it prints
    mAP, F1 and subset accuracy, writes predictions.csv (true and predicted label sets, every class's
    probability), per-class AP / F1 / support and TP/FP/FN/TN, all agreeing with torchmetrics; train's final test
    prints them too, class_weights=auto trains, and no metric warns "compute before update"."""
    from torchmetrics.classification import MultilabelAveragePrecision, MultilabelExactMatch

    from flashvid.cli import main

    train, val = multi_label_lists
    data = ["data=csv", f"data.train_file={train}", f"data.val_file={val}",
            f"data.test_file={train.parent / 'test.csv'}", f"data.root={demo_root}", "data.num_workers=0",
            "data.batch_size=4", "data.num_frames=4", "data.crop_size=32", "data.resize_size=36",
            "hydra/job_logging=none", "hydra/hydra_logging=none"]
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["train", "model=tiny", "model.multi_label=true", "model.class_weights=auto",
                     "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0",
                     "logger=none", f"hydra.run.dir={tmp_path / 'train'}", *data])
        trained = capfd.readouterr()
        assert code == 0, trained.err[-3000:]
        assert "test (best checkpoint): mAP " in trained.out and "subset accuracy" in trained.out
        best = json.loads((tmp_path / "train" / "metrics.json").read_text())["best_checkpoint"]
        code = main(["test", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'test'}", *data])
        tested = capfd.readouterr()
    assert code == 0, tested.err[-3000:]
    assert not [str(w.message) for w in caught if "before the ``update``" in str(w.message)]
    out = tmp_path / "test"
    r = json.loads((out / "test_metrics.json").read_text())
    assert r["multi_label"] and r["num_videos"] == 8
    for key in ("mAP", "f1_macro", "f1_micro", "subset_accuracy", "loss"):
        assert isinstance(r[key], float), key
    assert "n/a" not in tested.out.split("per class")[0] and "mAP (macro average precision)" in tested.out
    assert f"{r['mAP']:.4f}" in tested.out and "AP" in tested.out.split("per class")[1]

    labels = ["clockwise", "counterclockwise", "left", "moves", "right", "turns"]
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    probs = torch.tensor([[float(row[f"prob:{c}"]) for c in labels] for row in rows])
    targets = torch.tensor([[int(c in row["true"].split(";")) for c in labels] for row in rows])
    assert all(len(row["true"].split(";")) == 2 for row in rows)
    for row, p in zip(rows, probs, strict=True):
        assert (row["predicted"].split(";") if row["predicted"] else []) == [c for c, x in zip(labels, p) if x >= 0.5]
    assert float(MultilabelAveragePrecision(6)(probs, targets)) == pytest.approx(r["mAP"], abs=1e-4)
    assert float(MultilabelExactMatch(6)(probs, targets)) == pytest.approx(r["subset_accuracy"], abs=1e-6)
    assert sum(row["correct"] == "1" for row in rows) == round(r["subset_accuracy"] * 8)
    per_class = {c["label"]: c for c in json.loads((out / "per_class.json").read_text())["per_class"]}
    assert {c: per_class[c]["support"] for c in labels} == {
        "clockwise": 2, "counterclockwise": 2, "left": 2, "right": 2, "moves": 4, "turns": 4}
    for i, c in enumerate(labels):
        assert per_class[c]["ap"] == pytest.approx(float(MultilabelAveragePrecision(6, average=None)(
            probs, targets)[i]), abs=1e-4)
        assert per_class[c]["tp"] + per_class[c]["fn"] == per_class[c]["support"]
        assert per_class[c]["tp"] + per_class[c]["fp"] == per_class[c]["predicted"]
    with open(out / "confusion_matrix.csv", newline="") as f:
        assert next(csv.reader(f)) == ["class", "tp", "fp", "fn", "tn"]
