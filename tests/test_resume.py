"""Interruption and resume: kill -9 mid-epoch, Ctrl-C / SIGTERM, and atomic checkpoint writes.

Runs that must die do so in child processes (real signals, real files); the uninterrupted reference run and the
resumed runs happen in the test process with the same seed, data and deterministic settings.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from badvideos import build_run, make_clean_dataset
from lightning.pytorch.callbacks import Callback

from flashvid.schedules import warmup_then_decay

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# 6 clips per class x 2 classes, batch 2: 6 steps per epoch, 12 steps in 2 epochs
STEPS_PER_EPOCH, EPOCHS = 6, 2

CHILD = r'''
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from lightning.pytorch.callbacks import Callback
from badvideos import build_run

class Stall(Callback):
    """At step {at}, tell the parent (ready file) and keep going slowly, or stop dead, until it sends a signal."""
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == {at}:
            Path({ready!r}).write_text(str(trainer.global_step))
            time.sleep({pause})
        elif trainer.global_step > {at}:
            time.sleep(0.2)

trainer, model, dm = build_run({data!r}, {run!r}, extra_callbacks=(Stall(),))
trainer.fit(model, dm)
print("FINISHED WITHOUT BEING STOPPED")
'''


def _child(tmp_path: Path, data: Path, run: Path, at: int, pause: float) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS), at=at, ready=str(ready), pause=pause, data=str(data),
                                   run=str(run)))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    deadline = time.monotonic() + 240
    while not ready.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited early ({proc.returncode}):\n{out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("child never reached the signal point")
        time.sleep(0.05)
    return proc, ready


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory) -> Path:
    return make_clean_dataset(tmp_path_factory.mktemp("clean"))


class _Snapshots(Callback):
    """The weights after every training step of the reference run."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.states[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


@pytest.fixture(scope="module")
def reference(clean_data, tmp_path_factory) -> dict:
    """The uninterrupted run: final validation metrics and weights, and the weights after each step."""
    snaps = _Snapshots()
    trainer, model, dm = build_run(clean_data, tmp_path_factory.mktemp("ref"), extra_callbacks=(snaps,))
    handlers_before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    trainer.fit(model, dm)
    handlers_after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert trainer.global_step == STEPS_PER_EPOCH * EPOCHS
    return {"metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "state": {k: v.clone() for k, v in model.state_dict().items()}, "steps": snaps.states,
            "handlers": (handlers_before, handlers_after)}


def test_a_fit_leaves_the_signal_handlers_as_it_found_them(reference) -> None:
    """After a fit in this process, Ctrl-C and SIGTERM are handled as before it (the graceful-shutdown callback put
    Lightning's SIGTERM notifier back after Lightning had restored the default: the process then ignored SIGTERM,
    and a multiprocessing Pool forked from it hung in terminate())."""
    before, after = reference["handlers"]
    assert after == before


def _assert_same_run(trainer, model, reference: dict) -> None:
    assert trainer.global_step == STEPS_PER_EPOCH * EPOCHS
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert metrics.keys() == reference["metrics"].keys()  # what metrics.json's "final" holds: every key
    for key in metrics:
        assert metrics[key] == pytest.approx(reference["metrics"][key], abs=1e-6), key
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, reference["state"][name], atol=1e-6, rtol=1e-5, msg=name)


def test_kill9_mid_epoch_resume_matches_uninterrupted_run(clean_data, reference, tmp_path, caplog) -> None:
    """kill -9 mid-epoch (no handler can run), then resume from last.ckpt: the run ends exactly as the
    uninterrupted one (same metrics and weights). Needs the loader position, RNG states and progress restored."""
    run = tmp_path / "run"
    proc, _ = _child(tmp_path, clean_data, run, at=9, pause=300)  # last.ckpt is written at step 8 (every 4)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 8  # mid-epoch 2 (steps 7-12): 2 of its 6 batches done
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "position": 4, "seed": 0, "length": 12}]

    trainer, model, dm = build_run(clean_data, run)
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        trainer.fit(model, dm, ckpt_path=str(last))
    _assert_same_run(trainer, model, reference)
    assert "learning-rate schedule" not in caplog.text  # the same budget: the same schedule, nothing to say


class _Steps(Callback):
    """Each training step's learning rate (as a share of its group's base rate) and loss."""

    def __init__(self) -> None:
        self.factors: dict[int, float] = {}
        self.losses: dict[int, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        group = trainer.optimizers[0].param_groups[0]
        self.factors[trainer.global_step] = group["lr"] / group.get("initial_lr", group["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step - 1] = float(outputs["loss"])


def test_max_steps_stop_then_resume_matches_uninterrupted_run_without_a_schedule(clean_data, tmp_path) -> None:
    """A run stopped mid-epoch by trainer.max_steps and resumed for the full budget is the uninterrupted run, step
    for step, when the learning rate does not depend on the budget (a constant rate): the loader position, RNG
    states and progress saved at a max_steps stop are a kill's. (With a schedule, see the next test.)"""
    fixed = dict(scheduler="constant", warmup_ratio=0.0)
    ref_steps, steps = _Steps(), _Steps()
    trainer, ref, dm = build_run(clean_data, tmp_path / "ref", extra_callbacks=(ref_steps,), **fixed)
    trainer.fit(ref, dm)
    run = tmp_path / "run"
    trainer, model, dm = build_run(clean_data, run, max_steps=4, extra_callbacks=(steps,), **fixed)  # mid-epoch 1
    trainer.fit(model, dm)
    assert trainer.global_step == 4
    trainer, model, dm = build_run(clean_data, run, extra_callbacks=(steps,), **fixed)
    trainer.fit(model, dm, ckpt_path=str(run / "checkpoints" / "last.ckpt"))
    assert trainer.global_step == STEPS_PER_EPOCH * EPOCHS
    assert steps.losses == pytest.approx(ref_steps.losses, abs=1e-6)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, ref.state_dict()[name], atol=1e-6, rtol=1e-5, msg=name)


def test_resume_with_a_larger_budget_follows_the_resized_schedule_and_says_so(clean_data, tmp_path, caplog) -> None:
    """The LR schedule is sized from the run's budget (trainer.max_steps, else max_epochs): a run stopped by
    max_steps=4 ran a 4-step cosine down to its floor, so resumed for 12 steps it cannot be 12 steps trained in one
    go. The resume says so in one line, and every resumed step follows the 12-step schedule (was: silent, and the
    first resumed step ran at the old schedule's floor)."""
    run = tmp_path / "run"
    trainer, model, dm = build_run(clean_data, run, max_steps=4)
    trainer.fit(model, dm)
    assert trainer.global_step == 4
    steps = _Steps()
    trainer, model, dm = build_run(clean_data, run, extra_callbacks=(steps,))
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        trainer.fit(model, dm, ckpt_path=str(run / "checkpoints" / "last.ckpt"))
    total = STEPS_PER_EPOCH * EPOCHS
    assert trainer.global_step == total
    h = model.hparams
    factor = warmup_then_decay(total, int(total * h.warmup_ratio), h.min_lr_ratio, h.scheduler)
    assert sorted(steps.factors) == list(range(4, total))
    for step, value in steps.factors.items():
        assert value == pytest.approx(factor(step), rel=1e-6), step
    said = [r.getMessage() for r in caplog.records if "learning-rate schedule" in r.getMessage()]
    assert len(said) == 1, said
    assert "at step 4" in said[0] and f"4 -> {total} steps" in said[0] and "Ctrl-C" in said[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_saves_checkpoint_and_exits_cleanly(clean_data, reference, tmp_path, signum) -> None:
    """Ctrl-C / SIGTERM: the step in flight finishes, last.ckpt is saved, the process exits 128+signal without a
    traceback and the report says 'interrupted'. The checkpoint holds exactly the reference run's weights at its
    step (it was taken between steps, not inside one), so resuming it is the kill -9 case above."""
    run = tmp_path / "run"
    proc, _ = _child(tmp_path, clean_data, run, at=3, pause=1.0)  # no step checkpoint yet (every 4 steps)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err and "FINISHED" not in out
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    step = ckpt["global_step"]
    assert step in (3, 4)
    for name, value in ckpt["state_dict"].items():
        torch.testing.assert_close(value, reference["steps"][step][name], atol=1e-6, rtol=1e-5, msg=name)
    position = ckpt["callbacks"]["ExactResume"]["train_loader"]["position"]
    assert position == 2 * step  # batch size 2, first epoch
    report = (run / "failures.json").read_text()
    assert '"status": "interrupted"' in report


ATOMIC_CHILD = r'''
import sys, time
from pathlib import Path
import torch
from flashvid.checkpoint import AtomicCheckpointIO

class StallWhileSaving(torch.Tensor):
    """Pickling this tensor (inside torch.save, with the output file open) signals the parent and hangs."""
    def __reduce_ex__(self, protocol):
        Path({ready!r}).touch()
        time.sleep(300)
        return super().__reduce_ex__(protocol)

io = AtomicCheckpointIO()
target = Path({target!r})
io.save_checkpoint({{"state_dict": {{"w": torch.arange(4.0)}}, "global_step": 1}}, target)
big = {{"state_dict": {{"w": torch.zeros(2_000_000), "x": torch.ones(3).as_subclass(StallWhileSaving)}},
        "global_step": 2}}
io.save_checkpoint(big, target)
'''


def test_checkpoint_write_is_atomic_under_kill9(tmp_path) -> None:
    """A kill -9 in the middle of rewriting last.ckpt leaves the previous, loadable checkpoint in place (an
    in-place write would leave a truncated file), and the stale temporary file is never taken for a checkpoint."""
    from flashvid.checkpoint import find_resume_checkpoint, load_checkpoint

    target = tmp_path / "checkpoints" / "last.ckpt"
    ready = tmp_path / "ready"
    script = tmp_path / "atomic_child.py"
    script.write_text(ATOMIC_CHILD.format(ready=str(ready), target=str(target)))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "child never started the second save"
        time.sleep(0.02)
    temps = [p for p in target.parent.iterdir() if p.name != target.name]
    assert temps and all(p.name.startswith(".") for p in temps)  # the new checkpoint is being written aside
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    ckpt = load_checkpoint(target)
    assert ckpt["global_step"] == 1 and torch.equal(ckpt["state_dict"]["w"], torch.arange(4.0))
    assert find_resume_checkpoint(tmp_path) == target


def _scheduler_at(total: int, steps: int, warmup_ratio: float = 0.1, shape: str = "cosine", state=None):
    """A real optimizer and scheduler over ``total`` steps, stepped ``steps`` times or loaded from ``state``."""
    from flashvid.schedules import warmup_decay_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)
    sched = warmup_decay_scheduler(opt, total, warmup_ratio, 0.01, shape)
    for _ in range(steps):
        opt.step()
        sched.step()
    if state is not None:
        opt.load_state_dict(state[0])
        sched.load_state_dict(state[1])
    return opt, sched


def test_a_schedule_change_is_reported_only_when_the_steps_taken_ran_at_other_rates(caplog) -> None:
    """The line names what changed; the resumed step runs at the new schedule's rate whether or not the past
    steps differ (a constant schedule whose warm-up is over ran the same rates under either budget: no line)."""
    cases = [(dict(total=4), dict(total=12), "sized for 4 -> 12 steps, warm-up 0 -> 1 steps; trainer.max_steps"),
             (dict(total=12), dict(total=12, shape="linear"), "shape cosine -> linear)"),
             (dict(total=10, warmup_ratio=0.2, shape="constant"), dict(total=20, warmup_ratio=0.1, shape="constant"),
              None)]
    for old, new, said in cases:
        opt, sched = _scheduler_at(steps=4, **old)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="flashvid"):
            opt, sched = _scheduler_at(steps=0, state=(opt.state_dict(), sched.state_dict()), **new)
        factor = warmup_then_decay(new["total"], int(new["total"] * new.get("warmup_ratio", 0.1)), 0.01,
                                   new.get("shape", "cosine"))
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * factor(4)), (old, new)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == (1 if said else 0), lines
        if said:
            assert lines[0].startswith("flashvid: resuming at step 4 with another learning-rate schedule")
            assert said in lines[0]
