"""Soak test of interrupted training: kill -9 a `flashvid train` at random moments, resume it each time, and check
that it ends exactly as an uninterrupted run (same validation metrics, same weights).

    python scripts/soak_resume.py --kills 20 --seed 1        # prints one RESULT line, exit 1 on a mismatch

A run that finishes before its next kill is compared, and a new one starts, until --kills kills are done.

Tiny model on generated 32 px videos, checkpoint_every_n_steps=1, one loader worker, 3 epochs. The test suite runs
the same driver with a few kills (tests/test_interruptions.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def make_data(root: Path) -> Path:
    from flashvid.data import make_demo_dataset

    return make_demo_dataset(root, motions=("left", "right"), videos_per_class={"train": 3, "val": 1},
                             num_frames=8, height=32, width=32)


def train_args(data: Path, run: Path, workers: int = 1, epochs: int = 3) -> list[str]:
    return [f"data.train_folder={data / 'train'}", f"data.val_folder={data / 'val'}", "model=tiny",
            "trainer.accelerator=cpu", "trainer.deterministic=true", "logger=none", "data.batch_size=2",
            "data.num_frames=4", "data.crop_size=32", f"data.num_workers={workers}", f"trainer.max_epochs={epochs}",
            "checkpoint_every_n_steps=1", "callbacks.rich_progress_bar=null", "trainer.enable_model_summary=false",
            "trainer.num_sanity_val_steps=0", "test_after_training=false", f"hydra.run.dir={run}"]


def pace_args(marker: Path, train_sleep: float = 0.0, val_sleep: float = 0.0) -> list[str]:
    return ["+callbacks.pace._target_=pace.Pace", f"+callbacks.pace.marker={marker}",
            f"+callbacks.pace.train_sleep={train_sleep}", f"+callbacks.pace.val_sleep={val_sleep}"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FLASHVID_DEBUG")}
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(TESTS), os.environ.get("PYTHONPATH")]))
    e["PYTHONUNBUFFERED"] = "1"
    return e


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """`flashvid train ARGS` in a session of its own (a signal to its process group reaches the loader workers)."""
    return subprocess.Popen([sys.executable, "-m", "flashvid", "train", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = start(args, cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300, check=lambda text: True) -> bool:
    """Wait until ``path`` exists (and ``check(its text)``); False when the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                if check(path.read_text()):
                    return True
            except (OSError, ValueError):
                pass
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    raise TimeoutError(f"{path} never appeared")


def outcome(run_dir: Path) -> dict:
    """The final validation metrics and the last checkpoint's weights of a finished run."""
    import torch

    metrics = json.loads((run_dir / "metrics.json").read_text())
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {"final": metrics["final"], "global_step": metrics["global_step"], "state": state}


def compare(a: dict, b: dict) -> list[str]:
    """Differences between two outcomes (empty when they are the same run)."""
    import torch

    diffs = []
    if a["global_step"] != b["global_step"]:
        diffs.append(f"global_step {a['global_step']} != {b['global_step']}")
    for key in ("val/acc", "val/loss", "val/mean_class_acc"):
        x, y = a["final"].get(key), b["final"].get(key)
        if x is None or y is None or abs(x - y) > 1e-6:
            diffs.append(f"{key} {x} != {y}")
    for name, value in a["state"].items():
        if not torch.allclose(value.float(), b["state"][name].float(), atol=1e-6, rtol=1e-5):
            diffs.append(f"weights {name} differ")
            break
    return diffs


def kill_and_resume(data: Path, run_dir: Path, work: Path, kills: int, rng: random.Random,
                    max_delay: float = 2.0, log=print) -> dict:
    """kill -9 the run (and its workers) ``kills`` times at random moments after its first step, resuming each
    time; then let it finish. Returns the outcome and what happened at each kill."""
    events = []
    for i in range(kills):
        marker = work / f"{run_dir.name}-kill{i}"
        Path(f"{marker}.step").unlink(missing_ok=True)
        resume = ["resume=true"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []
        proc = start([*train_args(data, run_dir), *resume, *pace_args(marker, train_sleep=0.1)], work)
        started = wait_for(Path(f"{marker}.step"), proc)
        delay = rng.uniform(0, max_delay)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        step = Path(f"{marker}.step").read_text() if started else "-"
        events.append({"kill": i, "delay_s": round(delay, 3), "returncode": proc.returncode, "last_step": step})
        log(f"kill {i}: after {delay:.2f}s, step {step}, exit {proc.returncode}")
        if proc.returncode not in (-signal.SIGKILL, 0):
            raise RuntimeError(f"run failed before the kill (exit {proc.returncode}):\n{err[-3000:]}")
        if proc.returncode == 0:
            break  # finished before the kill
    resume = ["resume=true"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []
    final = run([*train_args(data, run_dir), *resume], work)
    if final.returncode != 0:
        raise RuntimeError(f"the final resume failed (exit {final.returncode}):\n{final.stderr[-3000:]}")
    return {**outcome(run_dir), "events": events}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20,
                        help="kills in all: a run that finishes is compared, and the next one starts afresh")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: random)")
    parser.add_argument("--max-delay", type=float, default=2.0, help="seconds after the first step to kill within")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="flashvid-soak-"))
    try:
        data = make_data(work / "data")
        ref = run(train_args(data, work / "reference"), work)
        if ref.returncode != 0:
            print(ref.stderr[-3000:], file=sys.stderr)
            return 1
        reference = outcome(work / "reference")
        results, t0, total = [], time.monotonic(), 0
        while total < args.kills:
            r = len(results)
            got = kill_and_resume(data, work / f"round{r}", work, args.kills - total, rng, args.max_delay)
            diffs = compare(got, reference)
            kills = len([e for e in got["events"] if e["returncode"] != 0])
            total += max(kills, 1)
            results.append({"round": r, "kills": kills, "equal": not diffs, "differences": diffs,
                            "events": got["events"]})
            print(f"round {r}: {kills} kills, {'equal to the uninterrupted run' if not diffs else diffs}")
        kills = sum(r["kills"] for r in results)
        ok = all(r["equal"] for r in results)
        print(f"RESULT soak_resume seed={seed} runs={len(results)} kills={kills} equal={ok} "
              f"val/acc={reference['final'].get('val/acc')} time={time.monotonic() - t0:.0f}s")
        if args.json:
            args.json.write_text(json.dumps({"seed": seed, "equal": ok, "rounds": results}, indent=2))
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
