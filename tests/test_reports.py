"""Test reports, training curves, timelines and prediction files, on real encoded videos and a tiny model trained
here on two demo motions (left, right) in about 20 s."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch


def flashvid(capfd: pytest.CaptureFixture[str], *args: str) -> SimpleNamespace:
    """``flashvid ARGS`` in this process (the imports are paid once): exit status, stdout, stderr."""
    from flashvid.cli import main

    capfd.readouterr()
    code = main([*args, "hydra/job_logging=none", "hydra/hydra_logging=none"])
    out = capfd.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


@pytest.fixture(scope="module")
def left_right(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The tiny model trained on left/right demo videos (12 per class, 5 epochs), logged by a CSV logger.

    One torch thread for this module: on the shared 2-core test machine, under load, fitting took 8 s with one
    thread and 38 s with two (the threads of a small conv net spin waiting for each other)."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    from flashvid import Trainer, VideoClassificationData, VideoClassifier
    from flashvid.data import make_demo_dataset

    work = tmp_path_factory.mktemp("reports")
    root = make_demo_dataset(work / "data", motions=("left", "right"),
                             videos_per_class={"train": 12, "val": 1, "test": 4}, num_frames=16, height=64, width=64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    L.seed_everything(0)
    dm = VideoClassificationData.from_folders(train_folder=root / "train", val_folder=root / "val",
                                              test_folder=root / "test", batch_size=4, num_workers=0,
                                              augmentation={"hflip": 0.0, "scale": (0.5, 1.0)})
    model = VideoClassifier("tiny_r2plus1d", labels=dm.labels, learning_rate=6e-3, weight_decay=0.01)
    trainer = Trainer(max_epochs=5, logger=CSVLogger(work, name="csv", version=""), log_every_n_steps=1,
                      callbacks=[LearningRateMonitor()], enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    ckpt = work / "left_right.ckpt"
    trainer.save_checkpoint(ckpt)
    yield SimpleNamespace(root=root, model=model.eval(), ckpt=ckpt, trainer=trainer, work=work)
    torch.set_num_threads(threads)


def _png(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_training_curves_from_the_csv_log(left_right: SimpleNamespace, tmp_path: Path) -> None:
    import lightning as L

    from flashvid.reports import training_curves

    png = training_curves(left_right.trainer, tmp_path)
    assert png == tmp_path / "curves.png"
    w, h = _png(png)
    assert w > 2 * h  # three panels side by side: loss, accuracy, learning rate
    # without a CSV logger there is nothing to draw from: None, no crash
    assert training_curves(L.Trainer(logger=False), tmp_path / "none") is None
    assert not (tmp_path / "none").exists()


def test_training_curves_of_a_run_shorter_than_log_every_n_steps(demo_root: Path, tmp_path: Path) -> None:
    """A run of 2-step epochs with log_every_n_steps=50 logged no training loss or learning rate, and curves.png
    had neither: with epochs shorter than the interval every step is logged."""
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    from flashvid import Trainer, VideoClassificationData, VideoClassifier
    from flashvid.callbacks import ShortEpochLogging
    from flashvid.reports import training_curves

    dm = VideoClassificationData.from_folders(demo_root / "train", batch_size=4, num_workers=0,
                                              num_frames=4, crop_size=32)
    model = VideoClassifier("tiny_r2plus1d", labels=dm.labels)
    trainer = Trainer(max_epochs=2, limit_train_batches=2, logger=CSVLogger(tmp_path, name="csv", version=""),
                      log_every_n_steps=50, callbacks=[LearningRateMonitor(logging_interval="step"),
                                                       ShortEpochLogging()],
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert training_curves(trainer, tmp_path) == tmp_path / "curves.png"
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(bool(r.get("train/loss")) for r in rows) == 4  # every step of both epochs
    assert sum(any(k.startswith("lr-") and v for k, v in r.items()) for r in rows) == 4


def test_test_report_files_agree_with_the_metrics(left_right: SimpleNamespace, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """``flashvid test`` writes predictions, confusion matrix, per-class metrics and a contact sheet that agree
    with its own top-1 and mean-class accuracy; one planted mislabelled video makes sure there is a mistake."""
    test = tmp_path / "test"
    for cls in ("left", "right"):
        (test / cls).mkdir(parents=True)
        for f in sorted((left_right.root / "test" / cls).iterdir()):
            (test / cls / f.name).symlink_to(f)
    planted = min((left_right.root / "test" / "right").iterdir())
    (test / "left" / f"mislabelled_{planted.name}").symlink_to(planted)
    out = tmp_path / "run"
    proc = flashvid(capfd, "test", f"ckpt_path={left_right.ckpt}", f"data.test_folder={test}", "model=tiny",
                    "data.num_clips=2", "data.num_workers=0", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "test_metrics.json").read_text())
    n = r["num_videos"]
    assert n == 9
    with open(out / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == ["left", "right"]
    cm = np.array([[int(x) for x in row[1:]] for row in rows[1:]])
    assert cm.sum() == n and cm.sum(1).tolist() == [5, 4]
    assert cm.trace() / n == pytest.approx(r["top1"], abs=1e-6)
    per_class = json.loads((out / "per_class.json").read_text())
    recall = {c["label"]: c["recall"] for c in per_class["per_class"]}
    assert recall["left"] == pytest.approx(cm[0, 0] / 5) and recall["right"] == pytest.approx(cm[1, 1] / 4)
    assert np.mean(list(recall.values())) == pytest.approx(r["mean_class_accuracy"], abs=1e-6)
    for c in per_class["per_class"]:
        i = ["left", "right"].index(c["label"])
        assert c["support"] == cm[i].sum() and c["predicted"] == cm[:, i].sum()
        assert c["precision"] == pytest.approx(cm[i, i] / max(cm[:, i].sum(), 1))
    with open(out / "predictions.csv", newline="") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == n and len({p["path"] for p in preds}) == n  # each video once
    assert all((p["true"] == p["predicted"]) == (p["correct"] == "1") for p in preds)
    assert sum(p["correct"] == "1" for p in preds) == cm.trace()
    assert all(p["top_k"].split("|")[0].split(":")[0] == p["predicted"] for p in preds)
    wrong = [p for p in preds if p["correct"] == "0"]
    assert any("mislabelled" in p["path"] for p in wrong)  # the planted one
    pairs = {(p["true"], p["predicted"]): p["count"] for p in per_class["confused_pairs"]}
    assert pairs == {(t, p): int(cm[i, j]) for i, t in enumerate(["left", "right"])
                     for j, p in enumerate(["left", "right"]) if i != j and cm[i, j]}
    _png(out / "confusion_matrix.png")
    w, h = _png(out / "misclassified.png")
    assert h > 100 and w > h
    for name in ("predictions.csv", "confusion_matrix.png", "per_class.json", "misclassified.png"):
        assert name in proc.stdout  # the summary names every file
    assert "precision" in proc.stdout and ("left -> right" in proc.stdout or "right -> left" in proc.stdout)
    # 2 classes: no top-k accuracy row ("top-5 1.0000", later "top-2") nor key, only what the model computed
    assert "top-1 accuracy" in proc.stdout and "top-5" not in proc.stdout and "top-2" not in proc.stdout
    assert "top5" not in r and not any("acc5" in k for k in r["metrics"])


def _switching_video(path: Path, half: int = 24) -> float:
    """A video whose disc moves left for ``half`` frames, then right: returns the switch time in seconds."""
    from flashvid.data.demo import make_demo_sequence

    spans = make_demo_sequence(path, ("left", "right"), frames_each=half, height=64, width=64, fps=15)
    return spans[0][2]


def test_timeline_changes_label_at_the_switch(left_right: SimpleNamespace, tmp_path: Path) -> None:
    video = tmp_path / "left_then_right.mp4"
    switch = _switching_video(video)
    stride = 0.4
    [r] = left_right.model.predict([video], window=1.0, stride=stride, threshold=0.5, top_k=2)
    windows = r["windows"]
    assert r["duration"] == pytest.approx(2 * switch, abs=0.01)
    assert windows[0]["start"] == 0 and windows[-1]["end"] == pytest.approx(r["duration"], abs=1e-3)
    labels = [w["label"] for w in windows]
    assert labels[0] == "left" and labels[-1] == "right"
    changes = [k for k in range(1, len(labels)) if labels[k] != labels[k - 1]]
    assert len(changes) == 1, labels  # one change, from left to right
    k = changes[0]
    at = (windows[k - 1]["start"] + windows[k - 1]["end"] + windows[k]["start"] + windows[k]["end"]) / 4
    assert abs(at - switch) <= stride, (at, switch, labels)
    segs = r["segments"]
    assert [s["label"] for s in segs] == ["left", "right"]
    assert segs[0]["start"] == 0 and segs[-1]["end"] == pytest.approx(r["duration"])
    assert segs[0]["end"] == pytest.approx(segs[1]["start"]) == pytest.approx(at)
    assert sum(s["windows"] for s in segs) == len(windows)
    for w in windows:
        assert w["top_k"][0]["label"] == w["label"] and len(w["top_k"]) == 2

    from flashvid.timeline import timeline_png

    w, h = _png(timeline_png(r, tmp_path / "timeline.png"))
    assert w > 2 * h


def test_timeline_picture_labels_fit_their_segments() -> None:
    """Labels of short segments were drawn at full width and overlapped their neighbours: each drawn label now lies
    inside its own segment (shortened with an ellipsis, or left out when not even one letter fits)."""
    from flashvid.timeline import timeline_figure

    spans = [(0.0, 0.15, "counterclockwise"), (0.15, 0.3, "clockwise"), (0.3, 0.9, "counterclockwise"),
             (0.9, 6.0, "counterclockwise"), (6.0, 10.0, "left")]
    windows = [{"start": a, "end": b, "label": name, "score": 0.9,
                "top_k": [{"label": name, "score": 0.9}, {"label": "right", "score": 0.1}]} for a, b, name in spans]
    result = {"path": "long.mp4", "duration": 10.0, "window": 1.0, "stride": 1.0, "threshold": 0.5,
              "windows": windows, "segments": [{"start": a, "end": b, "label": name, "score": 0.9, "windows": 1}
                                               for a, b, name in spans]}
    fig = timeline_figure(result)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    bar = fig.axes[1]
    drawn = [(t.get_text(), t.get_window_extent(renderer)) for t in bar.texts]
    assert ("counterclockwise" in [name for name, _ in drawn]) and ("left" in [name for name, _ in drawn])
    for name, box in drawn:
        x = bar.transData.inverted().transform(((box.x0 + box.x1) / 2, 0))[0]
        start, end, full = next(s for s in spans if s[0] <= x <= s[1])
        x0, x1 = (bar.transData.transform((t, 0))[0] for t in (start, end))
        assert x0 <= box.x0 and box.x1 <= x1, (name, box, start, end)  # inside its segment: no overlap
        assert name == full or (name.endswith("…") and full.startswith(name[:-1]))
    boxes = sorted(box.x0 for _, box in drawn)
    assert len(boxes) < len(spans)  # the 0.15 s segments cannot hold a letter


def test_timeline_streams_a_long_video_in_bounded_memory(left_right: SimpleNamespace, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows over a longer file: each decode asks for frames in increasing order, never one frame twice, and
    no batch holds more than its windows' frames."""
    from flashvid.data import decoding
    from flashvid.data.demo import render_motion, write_video
    from flashvid.timeline import DECODE_CHUNK, WindowStream, plan_windows

    video = tmp_path / "long.mp4"
    write_video(video, render_motion("left", 150, 32, 32, np.random.default_rng(0)), fps=15)  # 10 s
    cfg = left_right.model.data_config
    asked: list[list[int]] = []
    real_open = decoding.open_video

    def spying_open(path: str, decoder: str = "auto", num_threads: int = 1):
        reader = real_open(path, decoder, num_threads)
        frames_at = reader.frames_at

        def record(indices, *args, **kwargs):
            asked.append(list(indices))
            return frames_at(indices, *args, **kwargs)

        reader.frames_at = record
        return reader

    from flashvid.data.sources import VideoSample

    monkeypatch.setattr("flashvid.timeline.open_video", spying_open)
    stream = WindowStream([VideoSample(str(video), -1)], cfg.sampling, cfg.eval_transform(1), window=1.0,
                          stride=0.25, batch_size=4)
    items = list(stream)
    flat = [i for call in asked for i in call]
    assert flat == sorted(flat) and len(flat) == len(set(flat))  # sequential, each frame decoded once
    windows = plan_windows(decoding.probe(video), cfg.sampling, 1.0, 0.25)
    assert sum(len(it["windows"]) for it in items) == len(windows) == 37
    assert max(len(c) for c in asked) <= DECODE_CHUNK  # full-size frames held at once
    assert items[-1]["last"] and not any(it["last"] for it in items[:-1])
    assert items[0]["video"].shape == (4, cfg.num_frames, 3, cfg.crop_size, cfg.crop_size)


def test_save_predictions_writes_the_format_its_extension_names(left_right: SimpleNamespace,
                                                                tmp_path: Path) -> None:
    """``.csv`` used to be written as JSON: every format now round-trips, for files and for timelines."""
    from flashvid.predictions import load_predictions, save_predictions

    files = sorted((left_right.root / "test" / "left").iterdir())[:2] + [tmp_path / "missing.mp4"]
    results = left_right.model.predict(files, top_k=2)
    assert results[-1]["error"]
    csv_path = save_predictions(results, tmp_path / "p.csv")
    assert csv_path.read_text().splitlines()[0] == "path,label,score,top_k,error"
    for ext in (".json", ".jsonl", ".csv"):
        back = load_predictions(save_predictions(results, tmp_path / f"p{ext}"))
        assert [b["path"] for b in back] == [str(f) for f in files]
        for b, r in zip(back, results):
            assert b["label"] == r["label"] and b.get("error") == r.get("error")
            assert [t["label"] for t in b["top_k"]] == [t["label"] for t in r["top_k"]]
            assert [t["score"] for t in b["top_k"]] == pytest.approx([t["score"] for t in r["top_k"]], rel=1e-5)
    video = tmp_path / "switch.mp4"
    _switching_video(video, half=12)
    # the failed file first: the CSV still gets the timeline's columns
    timelines = left_right.model.predict([tmp_path / "missing.mp4", video], window=0.8, stride=0.4, top_k=2)
    for ext in (".json", ".jsonl", ".csv"):
        back = load_predictions(save_predictions(timelines, tmp_path / f"t{ext}"))
        assert back[0]["error"] == timelines[0]["error"]
        assert [(w["start"], w["end"], w["label"]) for w in back[1]["windows"]] == \
               [(w["start"], w["end"], w["label"]) for w in timelines[1]["windows"]]
        assert [s["label"] for s in back[1]["segments"]] == [s["label"] for s in timelines[1]["segments"]]
    with pytest.raises(ValueError, match=r"unknown extension '.txt'.*\.json, \.jsonl.*\.csv"):
        save_predictions(results, tmp_path / "p.txt")


def test_predict_cli_timelines_jsonl_progress_and_bad_extension(left_right: SimpleNamespace, tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "switch.mp4"
    _switching_video(video, half=12)
    out = tmp_path / "pred.jsonl"
    proc = flashvid(capfd, "predict", f"ckpt_path={left_right.ckpt}", f"inputs=[{video}]", "window=0.8", "stride=0.4",
                    "timeline_png=true", "progress=true", f"output={out}", f"hydra.run.dir={tmp_path / 'p'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [r] = [json.loads(line) for line in out.read_text().splitlines()]
    assert r["windows"] and r["segments"] and Path(r["timeline_png"]).parent == tmp_path / "pred_timelines"
    _png(Path(r["timeline_png"]))
    assert "files/s" in proc.stderr and "windows/s" in proc.stderr
    # an unknown extension fails at once, before the checkpoint is loaded or anything decoded
    bad = flashvid(capfd, "predict", f"ckpt_path={left_right.ckpt}", f"inputs=[{video}]",
                   f"output={tmp_path / 'p.txt'}", f"hydra.run.dir={tmp_path / 'q'}")
    assert bad.returncode == 2 and "unknown extension '.txt'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "p.txt").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (writes fail: no space left)")
@pytest.mark.parametrize("ext", [".jsonl", ".json"])
def test_predict_on_a_full_disk_prints_the_results_then_one_line(left_right: SimpleNamespace, tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture[str], ext: str) -> None:
    """``output=`` on a full disk (a link to /dev/full: every write fails with ENOSPC, as on a full file system)
    used to end in an OSError traceback, the results shown nowhere: now the table, then one line naming the path."""
    files = sorted((left_right.root / "test" / "left").iterdir())[:2]
    out = tmp_path / f"pred{ext}"
    out.symlink_to("/dev/full")
    proc = flashvid(capfd, "predict", f"ckpt_path={left_right.ckpt}", f"inputs=[{files[0]},{files[1]}]",
                    f"output={out}", f"hydra.run.dir={tmp_path / 'p'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"flashvid predict: error: cannot write {out}: No space left on device: free some space or choose another "
        "output=PATH (the results are printed above)"]
    assert all(f.name in proc.stdout for f in files) and "wrote" not in proc.stdout


@pytest.mark.parametrize("bad", ["window=0", "window=-1", "stride=0", "stride=-0.4", "stride=0.000001"])
def test_predict_cli_refuses_window_settings_no_video_can_use(left_right: SimpleNamespace, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str], bad: str) -> None:
    """Non-positive values used to reach every file ("could not be decoded", rc 3) and stride=0.000001 ran 90 s at
    1.2 GB on a 1.6 s file: now one line naming the option and the fix, before the checkpoint is loaded."""
    video = tmp_path / "switch.mp4"
    _switching_video(video, half=12)
    opts = {"window": "0.8", "stride": "0.4"}
    key, value = bad.split("=")
    opts[key] = value
    out = tmp_path / "pred.json"
    proc = flashvid(capfd, "predict", f"ckpt_path={left_right.ckpt}", f"inputs=[{video}]",
                    *(f"{k}={v}" for k, v in opts.items()), f"output={out}", f"hydra.run.dir={tmp_path / 'p'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = [x for x in proc.stderr.splitlines() if x.strip()]
    assert f"error: {key}={float(value):g}" in line, line
    assert "> 0 seconds" in line or "use at least one frame" in line, line
    assert "Traceback" not in proc.stderr and not out.exists()


def test_timeline_refuses_a_sub_frame_stride_and_too_many_windows_per_file(left_right: SimpleNamespace,
                                                                          tmp_path: Path) -> None:
    """A stride shorter than one frame of a file (15 fps here) only repeats frames, and a stride that cuts a file
    into more than MAX_WINDOWS windows holds them all until the file ends: that file is reported with the numbers
    and the fix (the other files go on), before any frame is decoded."""
    video = tmp_path / "switch.mp4"
    _switching_video(video, half=12)
    [refused] = left_right.model.predict([video], window=0.8, stride=0.05, top_k=2)
    assert refused["error"].startswith("stride=0.05 s is shorter than one frame of this 15 fps video (0.06667 s)")
    assert "use stride>=0.06667" in refused["error"] and not refused.get("windows")
    fine = left_right.model.predict([video], window=0.8, stride=1 / 15, top_k=2)[0]  # exactly one frame: allowed
    assert not fine.get("error") and len(fine["windows"]) > 10
    from flashvid.data.decoding import VideoInfo
    from flashvid.timeline import MAX_WINDOWS, WindowPlanError, plan_windows

    sampling = left_right.model.data_config.sampling
    two_days = VideoInfo(num_frames=30 * 3600 * 48, fps=30.0, width=64, height=64)
    with pytest.raises(WindowPlanError, match=rf"172800 windows .* over the limit of {MAX_WINDOWS} per file: use "
                                              r"stride>=1\.73"):
        plan_windows(two_days, sampling, 1.0, 1.0)
    assert len(plan_windows(two_days, sampling, 2.0, 2.0)) == 86400


def test_progress_bar_on_request_only(left_right: SimpleNamespace, capfd: pytest.CaptureFixture[str]) -> None:
    files = sorted((left_right.root / "test" / "right").iterdir())
    left_right.model.predict(files)
    assert "files/s" not in capfd.readouterr().err  # not a terminal, not asked
    results = left_right.model.predict(files, progress=True)
    err = capfd.readouterr().err
    assert "files/s" in err and f"{len(files)}/{len(files)}" in err and len(results) == len(files)
    assert torch.is_inference_mode_enabled() is False


def test_mean_class_accuracy_averages_the_classes_in_the_split(tmp_path: Path) -> None:
    """A test folder with a subset of the classes: a class with no videos that was predicted once used to enter
    the mean with recall 0 (torchmetrics' macro average): 0.5 instead of 0.75. The report's per-class recalls
    and the logged metric now agree."""
    from flashvid.metrics import MeanClassAccuracy
    from flashvid.reports import write_test_report

    target = torch.tensor([0, 0, 1, 1])
    probs = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1]), 4).float() * 0.7 + 0.075
    metric = MeanClassAccuracy(4)
    metric.update(probs, target)
    assert float(metric.compute()) == pytest.approx(0.75)
    records = {f"v{i}.mp4": (p, int(t)) for i, (p, t) in enumerate(zip(probs, target, strict=True))}
    summary = write_test_report(records, ["a", "b", "c", "d"], tmp_path, contact_sheet=0)
    assert summary["mean_class_accuracy"] == pytest.approx(0.75)
    assert [c["support"] for c in summary["per_class"]] == [2, 2, 0, 0]
    assert summary["confused_pairs"] == [{"true": "a", "predicted": "c", "count": 1, "share_of_true": 0.5}]
