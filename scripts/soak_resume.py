"""Soak test of interrupted training: kill -9 a `flashvid train` at random moments, resume it each time, and check
that it ends exactly as an uninterrupted run: the same weights, the same metrics.json and the same CSV history.

    python scripts/soak_resume.py --kills 20 --seed 1        # prints one RESULT line, exit 1 on a mismatch

A run that finishes before its next kill is compared, and a new one starts, until --kills kills are done.

Tiny model on generated 32 px videos, checkpoint_every_n_steps=1, one loader worker, 3 epochs, an EMA of the weights
and mixup (--ema 0 / --mixup 0 turn them off), the CSV logger writing every step. The test suite runs the same
driver with a few kills (tests/test_interruptions.py).
"""

from __future__ import annotations

import argparse
import csv
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


def train_args(data: Path, run: Path, workers: int = 1, epochs: int = 3, ema: float = 0.0,
               mixup: float = 0.0) -> list[str]:
    """The run's command line: the CSV logger writes every step; ``ema``: the EMA decay (0: none); ``mixup``: its
    alpha (0: none)."""
    return [f"data.train_folder={data / 'train'}", f"data.val_folder={data / 'val'}", "model=tiny",
            "trainer.accelerator=cpu", "trainer.deterministic=true", "logger=csv", "trainer.log_every_n_steps=1",
            "data.batch_size=2", "data.num_frames=4", "data.crop_size=32", f"data.num_workers={workers}",
            f"trainer.max_epochs={epochs}", "checkpoint_every_n_steps=1", "callbacks.rich_progress_bar=null",
            "trainer.enable_model_summary=false", "trainer.num_sanity_val_steps=0", "test_after_training=false",
            f"hydra.run.dir={run}", *([f"model.ema_decay={ema}"] if ema else []),
            *([f"data.augmentation.mixup_alpha={mixup}"] if mixup else [])]


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
    """A finished run's metrics.json (its own paths written as RUN), CSV history and last checkpoint's weights."""
    import torch

    text = (run_dir / "metrics.json").read_text().replace(json.dumps(str(run_dir))[1:-1], "RUN")
    metrics = json.loads(text)
    csv_file = run_dir / "csv" / "metrics.csv"
    rows = list(csv.DictReader(csv_file.open(newline=""))) if csv_file.is_file() else None
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {"metrics": metrics, "final": metrics["final"], "global_step": metrics["global_step"], "csv": rows,
            "state": state}


def _same(x, y) -> bool:
    """Equal, floats (and numbers written as text) within 1e-6."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    try:
        return abs(float(x) - float(y)) <= 1e-6 or x == y
    except (TypeError, ValueError):
        return x == y


def compare(a: dict, b: dict) -> list[str]:
    """Differences between two outcomes (empty when they are the same run): weights, metrics.json, CSV history."""
    import torch

    diffs = []
    for name, value in a["state"].items():
        if not torch.allclose(value.float(), b["state"][name].float(), atol=1e-6, rtol=1e-5):
            diffs.append(f"weights {name} differ")
            break
    if not _same(a["metrics"], b["metrics"]):
        keys = sorted(set(a["metrics"]) | set(b["metrics"]))
        diffs.append("metrics.json differs in " + ", ".join(
            k for k in keys if not _same(a["metrics"].get(k), b["metrics"].get(k))))
    if not _same(a["csv"], b["csv"]):
        diffs.append(f"metrics.csv differs ({len(a['csv'] or [])} rows, {len(b['csv'] or [])} in the reference)")
    return diffs


def kinds(diffs: list[str]) -> dict[str, bool]:
    """Which of the three outcomes are equal."""
    return {"weights": not any(d.startswith("weights") for d in diffs),
            "metrics_json": not any(d.startswith("metrics.json") for d in diffs),
            "csv": not any(d.startswith("metrics.csv") for d in diffs)}


def continue_args(run_dir: Path) -> list[str]:
    """resume=true when the run has a checkpoint; else, over what a kill before it left, overwrite=true."""
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return ["resume=true"]
    return ["overwrite=true"] if run_dir.exists() else []


def kill_and_resume(data: Path, run_dir: Path, work: Path, kills: int, rng: random.Random,
                    max_delay: float = 2.0, log=print, finish=None, **options) -> dict:
    """kill -9 the run (and its workers) ``kills`` times at random moments after its first step, resuming each
    time; then let it finish: in a child process, or by ``finish(args)`` (its exit status; the test suite resumes
    in its own process, one interpreter start less). ``options``: more train_args. Returns the outcome and what
    happened at each kill."""
    events = []
    for i in range(kills):
        marker = work / f"{run_dir.name}-kill{i}"
        Path(f"{marker}.step").unlink(missing_ok=True)
        resume = continue_args(run_dir)
        proc = start([*train_args(data, run_dir, **options), *resume, *pace_args(marker, train_sleep=0.1)], work)
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
    args = [*train_args(data, run_dir, **options), *continue_args(run_dir)]
    if finish is not None:
        if (status := finish(args)) != 0:
            raise RuntimeError(f"the final resume failed (exit {status})")
        return {**outcome(run_dir), "events": events}
    final = run(args, work)
    if final.returncode != 0:
        raise RuntimeError(f"the final resume failed (exit {final.returncode}):\n{final.stderr[-3000:]}")
    return {**outcome(run_dir), "events": events}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20,
                        help="kills in all: a run that finishes is compared, and the next one starts afresh")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: random)")
    parser.add_argument("--max-delay", type=float, default=2.0, help="seconds after the first step to kill within")
    parser.add_argument("--ema", type=float, default=0.9, help="EMA decay of the weights (0: no EMA)")
    parser.add_argument("--mixup", type=float, default=0.8, help="mixup alpha (0: no mixup)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    options = {"ema": args.ema, "mixup": args.mixup}
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="flashvid-soak-"))
    try:
        data = make_data(work / "data")
        ref = run(train_args(data, work / "reference", **options), work)
        if ref.returncode != 0:
            print(ref.stderr[-3000:], file=sys.stderr)
            return 1
        reference = outcome(work / "reference")
        results, t0, total = [], time.monotonic(), 0
        while total < args.kills:
            r = len(results)
            got = kill_and_resume(data, work / f"round{r}", work, args.kills - total, rng, args.max_delay,
                                  **options)
            diffs = compare(got, reference)
            kills = len([e for e in got["events"] if e["returncode"] != 0])
            total += max(kills, 1)
            results.append({"round": r, "kills": kills, "equal": not diffs, "differences": diffs,
                            "events": got["events"], **kinds(diffs)})
            print(f"round {r}: {kills} kills, {'equal to the uninterrupted run' if not diffs else diffs}",
                  flush=True)
        kills = sum(r["kills"] for r in results)
        ok = all(r["equal"] for r in results)
        equal = {k: sum(r[k] for r in results) for k in ("weights", "metrics_json", "csv")}
        print(f"RESULT soak_resume seed={seed} runs={len(results)} kills={kills} ema={args.ema} "
              f"mixup={args.mixup} equal={ok} " + " ".join(f"{k}={n}/{len(results)}" for k, n in equal.items())
              + f" val/acc={reference['final'].get('val/acc')} time={time.monotonic() - t0:.0f}s")
        if args.json:
            args.json.write_text(json.dumps({"seed": seed, "equal": ok, "rounds": results}, indent=2))
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
