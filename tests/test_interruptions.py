"""Hostile interruptions and checkpoints, through the command line (issue 13): checkpoints that carry code, kills
and signals at awkward moments (an epoch's last step, validation, the whole process group with loader workers),
resume sequences with max_steps, moved and shared run directories, full disks, broken checkpoints.

The kill tests run `flashvid train` in child processes (tests/pace.py marks their progress) and compare the resumed
run with an uninterrupted one: same validation metrics, same weights. The driver is scripts/soak_resume.py.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import soak_resume as soak  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """2 classes x 3 train + 1 val videos, 32 px: 3 steps per epoch at batch 2."""
    return soak.make_data(tmp_path_factory.mktemp("interrupt-data"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The uninterrupted run (one loader worker, 3 epochs)."""
    work = tmp_path_factory.mktemp("interrupt-ref")
    proc = soak.run(soak.train_args(data, work / "run"), work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return soak.outcome(work / "run")


def train_in_process(*args: str) -> int:
    from flashvid.cli import main

    return main(["train", *args])


def test_checkpoint_carrying_code_is_refused_by_predict_and_test(data, tmp_path, capsys) -> None:
    """Issue 13.1: a checkpoint whose pickle runs code (__reduce__) is refused with one line, exit 2; the code
    never runs under `flashvid predict` or `flashvid test`."""
    from flashvid.cli import main

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": "tiny_r2plus1d", "x": Payload()}}, evil)
    video = next((data / "val").rglob("*.mp4"))
    rc_predict = main(["predict", f"ckpt_path={evil}", f"inputs=[{video}]", f"hydra.run.dir={tmp_path / 'p'}"])
    err_predict = capsys.readouterr().err
    rc_test = main(["test", f"ckpt_path={evil}", f"data.test_folder={data / 'val'}", f"hydra.run.dir={tmp_path / 't'}"])
    err_test = capsys.readouterr().err
    assert not marker.exists()
    for rc, err in ((rc_predict, err_predict), (rc_test, err_test)):
        assert rc == 2
        assert "refusing to load" in err and str(evil) in err and "Traceback" not in err


def test_max_steps_sequence_resumes_and_follows_a_moved_run_directory(data, tmp_path, capsys) -> None:
    """Issues 13.6, 13.10, 13.12 and the stale temporary files: max_steps shorter than an epoch (was: EarlyStopping
    RuntimeError, no checkpoint), then resumes ending at an epoch's last step and mid-epoch (was: the next resume
    stopped one batch short and failed on every later try), in a run directory moved between resumes (was:
    last-v1.ckpt / best-v1.ckpt, then the old last.ckpt picked)."""
    run = tmp_path / "run"
    args = [a for a in soak.train_args(data, run, workers=0) if not a.startswith("hydra.run.dir")]
    assert train_in_process(*args, f"hydra.run.dir={run}", "trainer.max_steps=2") == 0  # < 1 epoch (3 steps)
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert train_in_process(*args, f"hydra.run.dir={run}", "trainer.max_steps=3", "resume=true") == 0  # epoch end
    moved = tmp_path / "moved"
    shutil.move(run, moved)
    stale = moved / "checkpoints" / ".last.ckpt.999999999.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert train_in_process(*args, f"hydra.run.dir={moved}", "trainer.max_steps=4", "resume=true") == 0  # mid-epoch
    assert not stale.exists()
    assert train_in_process(*args, f"hydra.run.dir={moved}", "resume=true") == 0
    metrics = json.loads((moved / "metrics.json").read_text())
    assert metrics["global_step"] == 9 and metrics["epochs"] == 3 and "val/acc" in metrics["final"]
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert metrics["best_checkpoint"] == str(moved / "checkpoints" / "best.ckpt")
    capsys.readouterr()

    # a corrupt last.ckpt beside a good best.ckpt: one line that names the file to use instead
    last = moved / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])
    assert train_in_process(*args, f"hydra.run.dir={moved}", "resume=true", "trainer.max_epochs=4") == 2
    err = capsys.readouterr().err
    assert f"checkpoint '{last}' is unreadable" in err and "truncated" in err
    assert f"ckpt_path={moved / 'checkpoints' / 'best.ckpt'}" in err and "Traceback" not in err


def test_second_train_on_a_locked_run_directory_fails_at_once(data, tmp_path, capsys) -> None:
    """Issue 13.11: a second `flashvid train` on a run directory in use stops before writing anything."""
    from flashvid.rundir import locked_run_dir

    run = tmp_path / "run"
    with locked_run_dir(run):
        rc = train_in_process(*soak.train_args(data, run, workers=0))
    err = capsys.readouterr().err
    assert rc == 2 and f"the run directory {run} is in use by another flashvid train (pid {os.getpid()})" in err
    assert not (run / "config.yaml").exists() and not (run / "checkpoints").exists()


@pytest.mark.slow
def test_signals_and_kills_end_as_the_uninterrupted_run(data, reference, tmp_path) -> None:
    """Issues 13.7, 13.8, 13.9 and the randomized kill test, on one run with a loader worker:
    SIGTERM to the whole process group mid-epoch in the second of three epochs (workers ignore it; the main process
    saves and exits 143), resume; SIGTERM during validation (the epoch finishes, exit 143), resume; kill -9 of the
    process group at random moments (fixed seed), resume after each; the run ends with the uninterrupted run's
    validation metrics and weights."""
    run, work = tmp_path / "run", tmp_path
    last = run / "checkpoints" / "last.ckpt"

    marker = work / "term"
    proc = soak.start([*soak.train_args(data, run), *soak.pace_args(marker, train_sleep=0.5)], work)
    assert soak.wait_for(Path(f"{marker}.step"), proc, check=lambda t: int(t) >= 4)  # epoch 2 of 3
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "worker" not in err.lower()
    step = torch.load(last, weights_only=True)["global_step"]
    assert 4 <= step < 6

    marker = work / "val"
    proc = soak.start([*soak.train_args(data, run), "resume=true", *soak.pace_args(marker, val_sleep=1.0)], work)
    assert soak.wait_for(Path(f"{marker}.val"), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert torch.load(last, weights_only=True)["global_step"] == 6  # the epoch ended, with its validation

    got = soak.kill_and_resume(data, run, work, kills=2, rng=random.Random(7), max_delay=1.0, log=lambda m: None)
    assert soak.compare(got, reference) == []


DISK_CHILD = r'''
import os, subprocess, sys, torch
from pathlib import Path
from flashvid.checkpoint import AtomicCheckpointIO, CheckpointWriteError
from flashvid.rundir import RunDirectoryError, locked_run_dir
full, ro = Path(sys.argv[1]), Path(sys.argv[2])
io = AtomicCheckpointIO()
io.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "global_step": 1}, full / "last.ckpt")
try:
    io.save_checkpoint({"state_dict": {"w": torch.zeros(400_000)}, "global_step": 2}, full / "last.ckpt")
except CheckpointWriteError as e:
    print("SAVE:", e)
print("LEFT:", sorted(p.name for p in full.iterdir()))
print("STEP:", torch.load(full / "last.ckpt", weights_only=True)["global_step"])
try:
    with locked_run_dir(ro / "run"):
        pass
except RunDirectoryError as e:
    print("RO:", e)
'''


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux) to mount a small tmpfs")
def test_full_disk_and_read_only_run_directory_messages(tmp_path) -> None:
    """A checkpoint write on a full disk (a real 1 MiB tmpfs, mounted in a private user namespace) says "disk full"
    and leaves the previous last.ckpt loadable and no temporary file; a read-only run directory is named."""
    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    script = tmp_path / "disk_child.py"
    script.write_text(DISK_CHILD)
    shell = (f"mount -t tmpfs -o size=1m tmpfs {full} && mount -t tmpfs -o ro,size=1m tmpfs {ro} && "
             f"exec {sys.executable} {script} {full} {ro}")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=120,
                          env=soak.env())
    if proc.returncode != 0 and "mount" in proc.stderr and "ermission" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert f"SAVE: disk full while writing checkpoint {full / 'last.ckpt'}" in out
    assert "the previous last.ckpt is unchanged" in out
    assert "LEFT: ['last.ckpt']" in out and "STEP: 1" in out
    assert f"RO: cannot write in the run directory {ro / 'run'}" in out and "read-only" in out


def test_weights_only_file_as_checkpoint_names_the_fix(data, tmp_path, capsys) -> None:
    """A state_dict saved alone (not a training checkpoint) given to predict: one line pointing at
    model.pretrained=, no traceback; that advice works (the backbone's weights arrive, the head is new), and
    `train ckpt_path=` it is the same one line instead of Lightning's KeyError."""
    from flashvid import VideoClassifier
    from flashvid.cli import main

    old = VideoClassifier("tiny_r2plus1d", num_classes=3)
    for name in ("weights.pt", "weights.ckpt"):
        sd = tmp_path / name
        torch.save(old.state_dict(), sd)
        rc = main(["predict", f"ckpt_path={sd}", f"inputs=[{sd}]", f"hydra.run.dir={tmp_path / 'p'}"])
        err = capsys.readouterr().err
        assert rc == 2 and "holds only weights" in err and f"model.pretrained={sd}" in err and "Traceback" not in err

        run = tmp_path / f"run-{name}"
        args = [a for a in soak.train_args(data, run, workers=0) if "max_epochs" not in a] + ["trainer.max_steps=1"]
        assert train_in_process(*args, f"ckpt_path={sd}") == 2
        err = capsys.readouterr().err
        assert "holds only weights" in err and f"model.pretrained={sd}" in err and len(err.strip().splitlines()) == 1

        assert train_in_process(*args, f"model.pretrained={sd}") == 0
        assert f"backbone weights from {sd}" in (run / "train.log").read_text()
    new = VideoClassifier("tiny_r2plus1d", num_classes=2, pretrained=str(sd))
    torch.testing.assert_close(new.backbone.model.blocks[0][0].weight, old.backbone.model.blocks[0][0].weight)


def test_pretrained_file_carrying_code_is_refused_in_one_line(data, tmp_path, capsys) -> None:
    """model.pretrained= a file whose pickle runs code: the same one-line refusal as ckpt_path=, exit 2, and the
    code never runs (it was Hydra's 'Error executing job' with an UnpicklingError, exit 1)."""
    from flashvid import VideoClassifier

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))

    evil = tmp_path / "evil.pth"
    torch.save({**VideoClassifier("tiny_r2plus1d", num_classes=2).backbone.model.state_dict(), "x": Payload()}, evil)
    args = [a for a in soak.train_args(data, tmp_path / "run", workers=0) if "max_epochs" not in a]
    assert train_in_process(*args, f"model.pretrained={evil}", "trainer.max_steps=1") == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and str(evil) in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_unwritable_predict_output_fails_before_decoding(data, tmp_path, capsys) -> None:
    """output= under a regular file (cannot be created): exit 2 at once with the fix, before loading or decoding."""
    from flashvid.cli import main

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    target = blocker / "predictions.json"
    ckpt = tmp_path / "missing-is-not-checked-first.ckpt"
    ckpt.write_bytes(b"")
    rc = main(["predict", f"ckpt_path={ckpt}", f"inputs=[{data / 'val'}]", f"output={target}",
               f"hydra.run.dir={tmp_path / 'p'}"])
    err = capsys.readouterr().err
    assert rc == 2 and f"cannot write {target}" in err and "output=PATH" in err


def test_checkpoint_of_other_classes_starts_a_new_training_with_model_pretrained(data, tmp_path, capsys) -> None:
    """ckpt_path= a checkpoint of other classes: one line suggesting model.pretrained=<checkpoint>; that suggestion
    works: the backbone's weights come from the checkpoint, the head is new and sized for the data's classes."""
    from flashvid import VideoClassifier

    old = VideoClassifier("tiny_r2plus1d", labels=["a", "b", "c"], data={"num_frames": 4, "crop_size": 32})
    ckpt = tmp_path / "three_classes.ckpt"
    torch.save({"state_dict": old.state_dict(), "hyper_parameters": dict(old.hparams),
                "pytorch-lightning_version": "2.6.0"}, ckpt)
    args = [a for a in soak.train_args(data, tmp_path / "run", workers=0) if "max_epochs" not in a]
    assert train_in_process(*args, f"ckpt_path={ckpt}", "trainer.max_steps=1") == 2
    err = capsys.readouterr().err
    assert f"model.pretrained={ckpt}" in err and "Traceback" not in err

    new = VideoClassifier("tiny_r2plus1d", labels=["left", "right"], pretrained=str(ckpt))
    old_sd, new_sd = old.state_dict(), new.state_dict()
    head = {k for k in new_sd if old_sd[k].shape != new_sd[k].shape}
    assert head and all(new_sd[k].shape[0] == 2 for k in head if k.endswith("weight"))
    for k in new_sd:
        if k not in head and k.startswith("backbone."):
            torch.testing.assert_close(new_sd[k], old_sd[k], msg=k)
    run2 = tmp_path / "run2"
    args2 = [a if not a.startswith("hydra.run.dir") else f"hydra.run.dir={run2}" for a in args]
    assert train_in_process(*args2, f"model.pretrained={ckpt}", "trainer.max_steps=1") == 0
    assert json.loads((run2 / "metrics.json").read_text())["labels"] == ["left", "right"]
