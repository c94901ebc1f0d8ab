"""Hostile interruptions and checkpoints, through the command line (issue 13): checkpoints that carry code, kills
and signals at awkward moments (an epoch's last step, validation, the whole process group with loader workers),
resume sequences with max_steps, moved and shared run directories, full disks, broken checkpoints.

The kill tests run `flashvid train` in child processes (tests/pace.py marks their progress) and compare the resumed
run with an uninterrupted one: same validation metrics, same weights. The driver is scripts/soak_resume.py.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lightning  # noqa: F401  (imported here, not first inside a test's main(): see below)
import pytest
import torch

# Lightning's console log handlers take the sys.stderr of the moment it is imported. First imported inside a test
# that captures stderr (capsys), they kept that test's capture, closed after it: the next test's "Seed set to 42"
# was a "--- Logging error ---" traceback in its stderr, failing four one-line-error checks when this module ran
# alone (in the whole suite another module imported Lightning at collection).

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import soak_resume as soak  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """2 classes x 3 train + 1 val videos, 32 px: 3 steps per epoch at batch 2."""
    return soak.make_data(tmp_path_factory.mktemp("interrupt-data"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The uninterrupted run (one loader worker, 3 epochs), in this process (the interrupted runs are children)."""
    run = tmp_path_factory.mktemp("interrupt-ref") / "run"
    assert train_in_process(*soak.train_args(data, run)) == 0
    return soak.outcome(run)


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


def test_new_run_over_a_previous_run_is_refused_and_overwrite_starts_over(data, tmp_path, capsys) -> None:
    """Issue 20.2: a train without resume=true in the directory of a finished or killed run stopped its checkpoints
    and metrics being replaced (global_step 2 -> 1); it is refused in one line naming resume=true and
    overwrite=true. overwrite=true deletes the old outputs first (nothing merged); a directory holding only what a
    start writes (Hydra's folder and log, config.yaml) is not a previous run."""
    run = tmp_path / "run"
    args = [a for a in soak.train_args(data, run, workers=0) if "max_epochs" not in a]
    assert train_in_process(*args, "trainer.max_steps=2") == 0
    last, metrics = run / "checkpoints" / "last.ckpt", run / "metrics.json"
    before = (last.read_bytes(), metrics.read_text())
    capsys.readouterr()
    assert train_in_process(*args, "trainer.max_steps=1") == 2
    err = capsys.readouterr().err
    assert f"the run directory {run} holds a previous run (checkpoints/, csv/" in err and "Traceback" not in err
    assert "resume=true" in err and "overwrite=true" in err and len(err.strip().splitlines()) == 1
    assert (last.read_bytes(), metrics.read_text()) == before
    assert train_in_process(*args, "trainer.max_steps=1", "resume=true", "overwrite=true") == 2
    assert "choose one" in capsys.readouterr().err

    (run / "notes-of-the-old-run.txt").write_text("old")
    assert train_in_process(*args, "trainer.max_steps=1", "overwrite=true") == 0
    assert json.loads(metrics.read_text())["global_step"] == 1
    assert torch.load(last, weights_only=True)["global_step"] == 1
    assert not (run / "notes-of-the-old-run.txt").exists()
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    assert len([r for r in rows if r.get("train/loss")]) == 1  # the new run's one step only

    fresh = tmp_path / "started-before"  # what a start that failed on a config mistake leaves
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / "train.log").write_text("an earlier start\n")
    (fresh / "config.yaml").write_text("seed: 1\n")
    fresh_args = [a if not a.startswith("hydra.run.dir") else f"hydra.run.dir={fresh}" for a in args]
    assert train_in_process(*fresh_args, "trainer.max_steps=1") == 0


RO_CHILD = r"""
set -e
mount -t tmpfs -o size=4m tmpfs {ro}
mkdir -p {ro}/run/.hydra {ro}/run/checkpoints
echo "an earlier run" > {ro}/run/train.log
mount -o remount,ro {ro}
set +e
{python} -m flashvid train {args} hydra.run.dir={ro}/new; echo "RC $?"
{python} -m flashvid train {args} hydra.run.dir={ro}/run resume=true; echo "RC $?"
"""


def test_unwritable_run_directory_is_one_line_before_hydra_writes(data, tmp_path, capsys) -> None:
    """Issue 20.14a: a run directory that cannot be written gave a raw OSError (new run) or Hydra's "Unable to
    configure handler 'file'" (resume): one line naming the directory and hydra.run.dir=, before Hydra writes.
    As root chmod does not stop writes, so: a path below a regular file (works as root), and, where a user
    namespace can mount one, a real read-only tmpfs for both a new run and a resume."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    run = blocker / "run"
    args = [a for a in soak.train_args(data, run, workers=0) if not a.startswith("hydra.run.dir")]
    assert train_in_process(*args, f"hydra.run.dir={run}") == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"flashvid train: error: cannot write in the run directory {run} ({blocker} is a file, "
                           "not a folder). Choose a writable one with hydra.run.dir=PATH (to resume a run from a "
                           "read-only copy, copy it first)")

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a read-only mount")
    ro = tmp_path / "ro"
    ro.mkdir()
    script = RO_CHILD.format(ro=ro, python=sys.executable, args=" ".join(args))
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env=soak.env())
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot mount a read-only tmpfs in a user namespace here: {proc.stderr.strip()}")
    assert proc.stdout.split() == ["RC", "2", "RC", "2"], proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    for line, where in zip(lines, (ro / "new", ro / "run")):
        assert line.startswith(f"flashvid train: error: cannot write in the run directory {where} (read-only file "
                               "system") and "hydra.run.dir=PATH" in line


@pytest.fixture(scope="module")
def ema_reference(data, tmp_path_factory) -> Path:
    """An uninterrupted run with an EMA of the weights and mixup (one loader worker, as the soak; 3 epochs)."""
    run = tmp_path_factory.mktemp("ema-ref") / "run"
    assert train_in_process(*soak.train_args(data, run, workers=1, ema=0.9, mixup=0.8)) == 0
    return run


@pytest.mark.slow
def test_resumes_with_ema_keep_the_final_metrics_and_the_csv_history(data, ema_reference, tmp_path) -> None:
    """Issues 20.4 and 20.5, with EMA and mixup: a run stopped by Ctrl-C mid-epoch and resumed ends with the
    uninterrupted run's weights, metrics.json and metrics.csv (the CSV logger deleted the history before the
    resumed step; the Ctrl-C checkpoint missed its step in the EMA and its step's CSV row); a
    resume of the finished run (as after a kill after its last checkpoint) keeps its metrics.json (it validated
    the raw weights instead of the EMA's and dropped train/loss, train/acc and lr) and its metrics.csv."""
    reference = soak.outcome(ema_reference)
    args = soak.train_args(data, tmp_path / "run", workers=1, ema=0.9, mixup=0.8)
    stop = ["+callbacks.stop._target_=pace.InterruptAt", "+callbacks.stop.step=4"]
    assert train_in_process(*args, *stop) == 130  # Ctrl-C in epoch 2: last.ckpt at step 4
    assert train_in_process(*args, "resume=true") == 0
    assert soak.compare(soak.outcome(tmp_path / "run"), reference) == []

    finished = tmp_path / "finished"
    shutil.copytree(ema_reference, finished)
    (finished / "metrics.json").unlink()
    finished_args = [a if not a.startswith("hydra.run.dir") else f"hydra.run.dir={finished}" for a in args]
    assert train_in_process(*finished_args, "resume=true") == 0
    got = soak.outcome(finished)
    assert {"train/loss", "train/acc", "val/acc"} <= set(got["final"])
    assert soak.compare(got, reference) == []


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

    got = soak.kill_and_resume(data, run, work, kills=2, rng=random.Random(7), max_delay=1.0, log=lambda m: None,
                               finish=lambda args: train_in_process(*args))  # the last resume: in this process
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
