"""``flashvid doctor`` on the bad-video corpus: every file probed by decoding, every problem reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from badvideos import Corpus, corpus_fixture, make_clean_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return corpus_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def report(corpus):
    from flashvid import VideoClassificationData
    from flashvid.doctor import diagnose_data

    return diagnose_data(VideoClassificationData.from_folders(corpus.train, corpus.val), progress=False)


def test_every_corpus_file_is_probed_with_the_right_verdict(corpus, report) -> None:
    """Broken files are unreadable with their reason (truncated and garbled ones included: frames are decoded,
    not just headers read); odd-but-valid ones are readable with their real size."""
    probes = {f.path: f for f in report.files}
    assert set(probes) == {str(p) for p in corpus.all_paths()}
    for item in corpus.items.values():
        p = probes[str(item.path)]
        assert p.ok == (item.expect == "ok"), (item.name, p.reason)
        if not p.ok:
            assert item.reason in p.reason.lower(), (item.name, p.reason)
    odd = {i.name: probes[str(i.path)] for i in corpus.odd()}
    assert (odd["uhd_3840x2160"].width, odd["uhd_3840x2160"].height) == (3840, 2160)
    assert odd["portrait_9x16"].height > odd["portrait_9x16"].width
    assert odd["one_frame"].num_frames == 1
    assert odd["long_20min"].duration == pytest.approx(1200, rel=0.01)
    assert (odd["rotation_metadata"].width, odd["rotation_metadata"].height) == (32, 40)  # displayed upright


def test_dataset_level_findings(corpus, report) -> None:
    """Empty class, class without readable videos, duplicate across splits, group leakage, too many unreadable
    train files (exit 1); the JSON is self-contained and machine-readable."""
    text = "\n".join(report.warnings)
    assert "class 'empty' has no videos in train" in text
    assert "class 'broken_only' has 2 train files and none readable" in text
    dup_paths = {f["path"] for d in report.duplicates for f in d["files"]}
    assert dup_paths == {str(corpus.train / "left/v_left_g02_c01.mp4"), str(corpus.val / "left/v_left_g09_c01.mp4")}
    assert [(g["label"], g["group"]) for g in report.group_leakage] == [("left", "_g01_")]
    assert report.exit_code == 1 and "training would stop" in report.errors[0]
    d = json.loads(json.dumps(report.to_dict()))
    assert d["splits"]["train"]["per_class"]["empty"] == {"files": 0, "readable": 0}
    assert d["splits"]["val"]["readable"] == 5
    assert len(d["unreadable"]) == len(corpus.bad()) and all(u["reason"] for u in d["unreadable"])
    assert d["splits"]["train"]["width"]["max"] == 3840


def test_cli_json_and_exit_codes(corpus, tmp_path, capsys) -> None:
    """The argparse entry: 1 on the corpus at the default 5% tolerance, 0 with warnings when more is tolerated,
    2 with a message for a missing folder; --json writes the report."""
    from flashvid.doctor import cli

    out = tmp_path / "doctor.json"
    assert cli(["--train-folder", str(corpus.train), "--val-folder", str(corpus.val), "--json", str(out),
                "--no-progress"]) == 1
    assert json.loads(out.read_text())["exit_code"] == 1
    assert "cannot train" in capsys.readouterr().out
    assert cli(["--train-folder", str(corpus.train), "--max-failed-fraction", "0.5", "--no-progress"]) == 0
    assert "ready to train (see warnings)" in capsys.readouterr().out
    assert cli(["--train-folder", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_empty_split_and_no_classes_cannot_train(tmp_path) -> None:
    """No classes, or a split with no (readable) file: exit 1 with the reason."""
    from flashvid.data import VideoSample
    from flashvid.doctor import diagnose

    data = make_clean_dataset(tmp_path / "d", train_per_class=1, val_per_class=0)
    train = [VideoSample(str(p), 0) for p in sorted((data / "train/left").iterdir())]
    r = diagnose({"train": train, "val": []}, ["left"], progress=False)
    assert r.exit_code == 1 and any("val split has no videos" in e for e in r.errors)
    r = diagnose({"train": [VideoSample(str(tmp_path / "gone.mp4"), 0)]}, [], progress=False)
    assert any(e.startswith("no classes") for e in r.errors)
    assert any("no readable video" in e for e in r.errors)


def test_main_instantiates_the_hydra_data_config(corpus, tmp_path) -> None:
    """The `flashvid doctor` subcommand path: cfg.data is instantiated like for training, options under
    cfg.doctor, tolerance from cfg.model.max_failed_fraction."""
    from omegaconf import OmegaConf

    from flashvid.commands.doctor import run_doctor

    out = tmp_path / "r.json"
    cfg = OmegaConf.create({
        "data": {"_target_": "flashvid.data.VideoClassificationData.from_folders",
                 "train_folder": str(corpus.train), "val_folder": str(corpus.val), "num_workers": 0},
        "model": {"max_failed_fraction": 0.5},
        "doctor": {"json": str(out), "progress": False},
    })
    assert run_doctor(cfg) == 0
    assert json.loads(out.read_text())["ok"] is True


def test_main_reports_a_data_option_error_in_one_line(tmp_path, capsys) -> None:
    """A val_split that cannot split (every class one recording group) used to print Hydra's multi-line
    "Error in call to target" wrapper: now the datamodule's own message, which names the fix, on one line."""
    from omegaconf import OmegaConf

    from flashvid.commands.doctor import run_doctor

    data = make_clean_dataset(tmp_path / "d", train_per_class=2, val_per_class=0)
    cfg = OmegaConf.create({
        "data": {"_target_": "flashvid.data.VideoClassificationData.from_folders",
                 "train_folder": str(data / "train"), "val_split": 0.5, "group_pattern": "_train_",
                 "num_workers": 0},
        "doctor": {"progress": False},
    })
    assert run_doctor(cfg) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flashvid doctor: error: data: val_split found no group to hold out") and "\n" not in err
    assert "group_pattern=None" in err and "Error in call to target" not in err


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop the file-permission override")
def test_unreadable_file_is_reported_when_permissions_apply(tmp_path) -> None:
    """chmod 000: root reads it anyway (CAP_DAC_OVERRIDE), so the doctor runs in a child without that
    capability, where permissions apply as for any user; the file is reported as permission denied."""
    data = make_clean_dataset(tmp_path / "d", train_per_class=2, val_per_class=0)
    locked = data / "train/left/left_train_00.mp4"
    locked.chmod(0)
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps",
         "-dac_override,-dac_read_search", sys.executable, "-m", "flashvid.doctor", "--train-folder",
         str(data / "train"), "--json", str(out), "--no-progress", "--max-failed-fraction", "0.5"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bad = json.loads(out.read_text())["unreadable"]
    assert [(b["path"], "permission denied" in b["reason"]) for b in bad] == [(str(locked), True)]


def test_one_video_under_two_labels_is_a_warning(tmp_path) -> None:
    """Byte-identical copies in two class folders, and one file listed under two labels (a link into another
    class's folder, or a list file naming it twice): the doctor names the files and the classes."""
    from flashvid import VideoClassificationData
    from flashvid.data.sources import VideoSample
    from flashvid.doctor import diagnose, diagnose_data

    data = make_clean_dataset(tmp_path / "data", train_per_class=2, val_per_class=1)
    train = data / "train"
    shutil.copyfile(train / "left/left_train_00.mp4", train / "right/copied_from_left.mp4")
    os.symlink(train / "left/left_train_01.mp4", train / "right/linked_from_left.mp4")
    report = diagnose_data(VideoClassificationData.from_folders(train, data / "val"), progress=False, workers=1)
    text = "\n".join(report.warnings)
    assert "identical videos in different classes: train/left/left_train_00.mp4 (left) = " \
           "train/right/copied_from_left.mp4 (right)" in text, text
    assert "one file with 2 labels (left, right): train/left: train/left/left_train_01.mp4, train/right: " \
           "train/right/linked_from_left.mp4" in text, text
    assert report.exit_code == 0
    # a list naming one file under two labels is refused by from_csv (test_data_sources); samples built by hand
    twice = str(train / "left/left_train_00.mp4")
    samples = [VideoSample(twice, 0), VideoSample(twice, 1), VideoSample(str(train / "right/right_train_00.mp4"), 1)]
    report = diagnose({"train": samples}, ["left", "right"], progress=False, workers=1)
    assert any(w.startswith("one file with 2 labels (left, right)") for w in report.warnings), report.warnings


def test_prepare_is_advised_only_where_the_lead_in_costs(tmp_path: Path) -> None:
    """The demo's 96x96 files (its defaults) hold one keyframe each (2.1 s): a lead-in of 0.3 Mpx, nothing to
    prepare. A 400x300 file with one keyframe in 6 s (21.6 Mpx of lead-in at most) gets the advice."""
    from badvideos import _lavfi, _x264

    from flashvid import VideoClassificationData
    from flashvid.data import make_demo_dataset
    from flashvid.doctor import diagnose_data

    demo_root = make_demo_dataset(tmp_path / "demo", videos_per_class={"train": 2, "val": 1, "test": 1})
    demo = diagnose_data(VideoClassificationData.from_folders(demo_root / "train"), progress=False)
    assert not [w for w in demo.warnings if "flashvid prepare" in w], demo.warnings
    for label in ("a", "b"):
        (tmp_path / "gop" / label).mkdir(parents=True)
        _lavfi(tmp_path / "gop" / label / "long_gop.mp4", "testsrc=s=400x300:r=30:d=6", *_x264("-g", "300"))
    report = diagnose_data(VideoClassificationData.from_folders(tmp_path / "gop"), progress=False)
    assert [w for w in report.warnings if "2 of 2 readable files" in w and "flashvid prepare" in w], report.warnings
    assert sorted(report.to_dict()["prepare_advised"]) == sorted(f.path for f in report.files)
    assert demo.to_dict()["prepare_advised"] == []


def test_frame_store_is_advised_when_a_clip_costs_the_workers_more_than_the_gpu_allows(tmp_path: Path) -> None:
    """Noisy high-bitrate 320x240 files (no ``prepare`` needed: short GOPs, small frames) with 8x32 clips: a clip
    decodes many times slower than its store would (tiny stored frames). Doctor times both on this machine and
    advises the store only when the workers then fall short of the GPU's rate."""
    from badvideos import _lavfi, _x264

    from flashvid import VideoClassificationData
    from flashvid.doctor import diagnose_data

    for label in ("a", "b"):
        (tmp_path / "noisy" / label).mkdir(parents=True)
        for i in range(2):
            noisy = f"testsrc=s=320x240:r=30:d=2,noise=alls=90:allf=t+u:all_seed={i}"
            _lavfi(tmp_path / "noisy" / label / f"n{i}.mp4", noisy,
                   *_x264("-g", "15", "-qp", "4"))

    def doctor(gpu_clips_per_s: float):
        dm = VideoClassificationData.from_folders(tmp_path / "noisy", num_frames=8, crop_size=32, num_workers=1)
        return diagnose_data(dm, progress=False, gpu_clips_per_s=gpu_clips_per_s)

    fast_gpu = doctor(1e9)
    cost = fast_gpu.clip_cost
    assert cost is not None and cost.files == 4 and cost.video_ms > 2 * cost.store_ms > 0
    [advice] = [w for w in fast_gpu.warnings if "prepare.format=frames" in w]
    assert f"{cost.video_ms:.0f} ms" in advice and "1 loader worker delivers" in advice
    assert fast_gpu.to_dict()["training_clip_cpu_ms"]["video_ms"] == cost.video_ms
    slow_gpu = doctor(1.0)  # one worker keeps up: no advice, the cost is still reported
    assert slow_gpu.clip_cost is not None and not [w for w in slow_gpu.warnings if "prepare.format=frames" in w]


def test_frame_store_is_advised_when_the_workers_would_be_busy_most_of_the_time() -> None:
    """Workers that could just deliver the GPU's rate still starve it: on the H200, 8 workers whose copies' clips
    cost ~20 ms (400 clips/s, ~80% busy at 325) trained at 0.76-0.87 of model-only, 10 (500 clips/s) at 0.87-0.98.
    The advice asks for :data:`LOADER_HEADROOM` to spare (it compared with the GPU's rate alone)."""
    from flashvid.data.clip_cost import LOADER_HEADROOM, ClipCost, store_advice

    copy = ClipCost(video_ms=20.0, store_ms=8.0, files=8)
    assert 300 < 8 * 1000 / 20 < LOADER_HEADROOM * 300 <= 10 * 1000 / 20
    advice = store_advice(copy, workers=8, gpu_clips_per_s=300)
    assert advice is not None and "8 loader workers deliver at most 400 clips/s" in advice
    assert store_advice(copy, workers=10, gpu_clips_per_s=300) is None
    assert store_advice(ClipCost(20.0, 12.0, 8), workers=8, gpu_clips_per_s=300) is None  # a store saves too little


class _ThreadsSeen:
    """A train transform that notes how many torch threads it runs under (then crops as the default would)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return video[..., :32, :32]


class _WorkerThreads(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> int:
        return torch.get_num_threads()


def test_clip_cost_is_timed_on_the_threads_a_loader_worker_has(tmp_path: Path) -> None:
    """Doctor times a training clip as a loader worker makes it: on one torch thread (PyTorch's workers), not on
    this process's default (was: every core's threads, which on a 2-core machine with other work made a 256p
    copy's clip cost 150 ms instead of ~27 ms and the store advice's figures five times too high); the process's
    own thread count is left as it was."""
    from badvideos import write_good

    from flashvid import VideoClassificationData
    from flashvid.data.clip_cost import training_clip_cost

    rng = np.random.default_rng(0)
    paths = [write_good(tmp_path / c / f"{c}_{i}.mp4", c, rng, num_frames=8)
             for c in ("left", "right") for i in range(2)]
    seen = _ThreadsSeen()
    dm = VideoClassificationData.from_folders(tmp_path, num_frames=4, crop_size=32, num_workers=0,
                                              transforms={"train": seen})
    worker = next(iter(torch.utils.data.DataLoader(_WorkerThreads(), num_workers=1))).item()
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a process with more than a worker's threads (CI has 2 cores)
    try:
        cost = training_clip_cost(dm, [str(p) for p in paths])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert cost is not None and cost.files >= 2
    assert seen.seen and set(seen.seen) == {worker} == {1}
