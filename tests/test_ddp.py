"""``flashvid train trainer=ddp`` through the command line on the CPU: two processes (gloo) on tiny real videos.

Evaluation must count each video once under any number of ranks: Lightning's ``DistributedSampler`` pads an uneven
split by repeating videos, so the val/test splits here have an odd number of files. The reference is the same
checkpoint evaluated in one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from badvideos import write_good

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"train": (4, 4), "val": (3, 2), "test": (2, 2)}  # (left, right); test also gets one broken file


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    rng = np.random.default_rng(0)
    for split, counts in COUNTS.items():
        for motion, n in zip(("left", "right"), counts, strict=True):
            for i in range(n):
                write_good(root / split / motion / f"{motion}_{i}.mp4", motion, rng, num_frames=8)
    # 5 test files: rank 0 decodes 3, rank 1 the 2 at odd positions of the sorted list, this one among them
    (root / "test/left/left_0_broken.mp4").touch()
    # (8 train videos: 2 full batches of 2 per rank, so every train file is seen despite drop_last)
    return root


def test_ddp_train_on_two_cpu_processes_counts_each_video_once(ddp_data: Path, tmp_path: Path) -> None:
    """Two gloo processes train, validate and test through the CLI into one run directory; val/test metrics
    equal a one-process evaluation of the same checkpoint (5 val and 5 test files: padding would score 6), and
    the broken file, decoded on one rank only, is listed once in failures.json."""
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FLASHVID_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    args = [f"data.train_folder={ddp_data / 'train'}", f"data.val_folder={ddp_data / 'val'}",
            f"data.test_folder={ddp_data / 'test'}", "model=tiny", "data.num_frames=4", "data.crop_size=32",
            "data.batch_size=2", "data.num_workers=0", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0",
            "logger=none", "callbacks=model_checkpoint", "trainer=ddp", "trainer.accelerator=cpu",
            "trainer.devices=2", "model.max_failed_fraction=0.5", f"hydra.run.dir={run}"]
    # its own session, so a hang kills both ranks (rank 1 is rank 0's child), not only rank 0
    proc = subprocess.Popen([sys.executable, "-m", "flashvid", "train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"DDP run hung for 300 s\n{stdout[-3000:]}\n{stderr[-5000:]}")
    assert proc.returncode == 0, f"{stdout[-3000:]}\n{stderr[-5000:]}"
    assert "Starting with 2 processes" in stdout + stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one run directory, not one per rank
    metrics = json.loads((run / "metrics.json").read_text())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]

    from flashvid import Trainer, VideoClassificationData, VideoClassifier

    best = run / "checkpoints" / "best.ckpt"
    assert torch.load(best, map_location="cpu", weights_only=True)["flashvid"]["labels"] == ["left", "right"]
    model = VideoClassifier.load_from_checkpoint(best, map_location="cpu", weights_only=True)
    dm = VideoClassificationData.from_folders(ddp_data / "train", ddp_data / "val", ddp_data / "test",
                                              batch_size=2, num_workers=0)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(tmp_path / "one"))
    val = trainer.validate(model, datamodule=dm, verbose=False)[0]
    test = trainer.test(model, datamodule=dm, verbose=False)[0]
    for name in ("val/acc", "val/acc5", "val/mean_class_acc"):
        assert metrics["final"][name] == pytest.approx(val[name], abs=1e-6), (name, metrics["final"], val)
    for name in ("test/acc", "test/acc5", "test/mean_class_acc"):
        assert metrics["test"][name] == pytest.approx(test[name], abs=1e-6), (name, metrics["test"], test)
    assert metrics["final"]["val/loss"] == pytest.approx(val["val/loss"], rel=1e-4)
    assert metrics["test"]["test/loss"] == pytest.approx(test["test/loss"], rel=1e-4)
    n_val, n_test = sum(COUNTS["val"]), sum(COUNTS["test"])
    assert (metrics["final"]["val/acc"] * n_val) == pytest.approx(round(metrics["final"]["val/acc"] * n_val))
    assert (metrics["test"]["test/acc"] * n_test) == pytest.approx(round(metrics["test"]["test/acc"] * n_test))

    failures = json.loads((run / "failures.json").read_text())
    broken = str(ddp_data / "test/left/left_0_broken.mp4")
    assert [f["path"] for f in failures["failed"]] == [broken]
    # found by rank 1 (its log has the warning, rank 0's does not), reported by rank 0
    assert broken in (run / "train_ddp_process_1.log").read_text() and broken not in (run / "train.log").read_text()
    assert failures["num_seen"] == sum(map(sum, COUNTS.values())) + 1 == metrics["failed_files"]["num_seen"]
